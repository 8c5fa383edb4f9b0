"""The attribute lists behind `deid.py` (DICOM PS3.15 Annex E, Table E.1-1, applied as an allow-list).

Rather than listing every identifying attribute (Table E.1-1 has several hundred and vendors add
more), PALMARES keeps only what a CT/PET volume, its SUV and its reading need, and decides the rest
by value representation: every person name and every free-text value is dropped unless listed here
as safe; every sequence is dropped unless listed here; every instance UID is replaced; every date is
shifted. A new attribute that nobody thought about is therefore removed, not leaked.
"""

from __future__ import annotations

# fmt: off
# Value representations that hold free text (SH LO ST LT UT UC), application entity titles and URLs.
TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "AE", "UR"})
# Binary value representations: kept only for the pixel and lookup-table attributes below.
BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})

# Free-text attributes that describe the device or the reconstruction, never the person. Kept.
SAFE_TEXT = frozenset({
    "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "ConvolutionKernel", "FilterType",
    "ReconstructionMethod", "AttenuationCorrectionMethod", "ScatterCorrectionMethod", "Radiopharmaceutical",
    "RadiopharmaceuticalRoute", "RescaleType", "PositionReferenceIndicator", "CodeValue",
    "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning", "LongCodeValue", "LUTExplanation",
    "LUTLabel", "WindowCenterWidthExplanation",
})

# Sequences that carry geometry, PET/CT acquisition physics, codes or references by UID. Kept and
# cleaned recursively with the same rules; any other sequence is removed with its content.
SAFE_SEQUENCES = frozenset({
    # PET radiopharmaceutical and acquisition
    "RadiopharmaceuticalInformationSequence", "RadionuclideCodeSequence", "RadiopharmaceuticalCodeSequence",
    "AdministrationRouteCodeSequence", "EnergyWindowRangeSequence", "EnergyWindowInformationSequence",
    "RadiopharmaceuticalUsageSequence",
    # patient position (not identity)
    "PatientOrientationCodeSequence", "PatientOrientationModifierCodeSequence",
    "PatientGantryRelationshipCodeSequence",
    # anatomy and real-world value mapping (SUV units)
    "AnatomicRegionSequence", "AnatomicRegionModifierSequence", "PrimaryAnatomicStructureSequence",
    "RealWorldValueMappingSequence", "MeasurementUnitsCodeSequence", "QuantityDefinitionSequence",
    "ConceptNameCodeSequence", "ConceptCodeSequence", "ModalityLUTSequence", "VOILUTSequence",
    "ContrastBolusAgentSequence",
    # references between instances (their UIDs are replaced consistently)
    "ReferencedImageSequence", "SourceImageSequence", "DerivationImageSequence", "ReferencedSeriesSequence",
    "ReferencedInstanceSequence", "ReferencedSOPSequence", "PurposeOfReferenceCodeSequence",
    "DerivationCodeSequence",
    # CT acquisition details (enhanced and classic)
    "CTExposureSequence", "CTAcquisitionTypeSequence", "CTAcquisitionDetailsSequence",
    "CTTableDynamicsSequence", "CTPositionSequence", "CTGeometrySequence", "CTReconstructionSequence",
    "CTXRayDetailsSequence", "CTImageFrameTypeSequence", "IrradiationEventIdentificationSequence",
    # enhanced multi-frame geometry
    "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence", "PixelMeasuresSequence",
    "PlanePositionSequence", "PlaneOrientationSequence", "PixelValueTransformationSequence",
    "FrameVOILUTSequence", "FrameContentSequence", "FrameAnatomySequence", "DimensionIndexSequence",
    "DimensionOrganizationSequence", "PlanePositionVolumeSequence", "PlaneOrientationVolumeSequence",
    "TemporalPositionSequence",
    # enhanced PET
    "PETFrameTypeSequence", "PETFrameAcquisitionSequence", "PETDetectorMotionDetailsSequence",
    "PETPositionSequence", "PETFrameCorrectionFactorsSequence", "PETReconstructionSequence",
    "PETTableDynamicsSequence",
})

# Binary attributes that are image content (pixels, palettes, offset tables). Kept.
SAFE_BINARY = frozenset({
    "PixelData", "FloatPixelData", "DoubleFloatPixelData", "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths", "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData", "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData", "SegmentedBluePaletteColorLookupTableData", "LUTData",
})

# Attributes whose value representation alone would keep them but which Table E.1-1 removes (X),
# including the patient characteristics PALMARES chooses not to retain (only sex, age, size and
# weight are: they are what SUVbw/SUVlbm/SUVbsa need).
REMOVE = frozenset({
    "PatientBirthTime", "PregnancyStatus", "SmokingStatus", "PatientSexNeutered", "LastMenstrualDate",
    "PatientAlternativeCalendar", "ResponsiblePersonRole", "PatientBodyMassIndex",
    "DeidentificationMethodCodeSequence",  # rebuilt from scratch: it must describe what WE did
})

# Type 2 attributes that Table E.1-1 empties (Z) rather than removes, so the object stays valid.
EMPTY = frozenset({
    "PatientBirthDate", "AccessionNumber", "StudyID", "ReferringPhysicianName", "ContrastBolusAgent",
})

# Set by the de-identifier after the walk (top level only).
REPLACED = frozenset({
    "PatientName", "PatientID", "PatientIdentityRemoved", "DeidentificationMethod",
    "LongitudinalTemporalInformationModified", "SeriesDescription", "StudyDescription",
})

# DT attributes that are versions of coding resources, not moments in the patient's life: not shifted.
NOT_PATIENT_DATES = frozenset({"ContextGroupVersion", "ContextGroupLocalVersion"})

# UIDs that name a kind of thing (SOP classes, transfer syntaxes, coding schemes), not an
# instance: kept. Anything under the DICOM standard root is kept too.
STANDARD_UID_ROOT = "1.2.840.10008."
CLASS_UID_SUFFIXES = ("ClassUID", "SyntaxUID")
CLASS_UID_KEYWORDS = frozenset({"CodingSchemeUID", "ContextUID", "MappingResourceUID"})

# Private attributes needed for SUV (DOMAIN.md §1), kept only with the right private creator:
# (creator, group, element offset in the block) -> value representation.
SAFE_PRIVATE = {
    ("Philips PET Private Group", 0x7053, 0x00): "DS",  # SUV scale factor
    ("Philips PET Private Group", 0x7053, 0x09): "DS",  # activity concentration scale factor
    ("GEMS_PETD_01", 0x0009, 0x0D): "DT",  # PET scan datetime (decay reference); shifted like any date
}
# The same tags at their usual fixed position, for files that omit the private creator.
SAFE_PRIVATE_WITHOUT_CREATOR = {(0x7053, 0x1000): "DS", (0x7053, 0x1009): "DS", (0x0009, 0x100D): "DT"}

# Kept texts written by the device or the software, not typed about the patient: a coincidence of
# one of their words with a part of the patient's name ("Gauss" kernel, "demo-1.0" software) is not
# a leak, so the leak check ignores them for name parts (never for full names and IDs).
DEVICE_TEXT = frozenset({
    "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "ConvolutionKernel", "FilterType",
    "ReconstructionMethod", "AttenuationCorrectionMethod", "ScatterCorrectionMethod", "RescaleType",
    "CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "LongCodeValue", "LUTLabel",
    "WindowCenterWidthExplanation", "DeidentificationMethod",
})

# Defined terms of coded attributes (ImageType, CorrectedImage, Units, ...): a value made only of
# these words (or of DESCRIPTION_VOCABULARY) is the standard's vocabulary, the same for every patient,
# so it is kept even when it equals a part of the patient's name (a patient "Other", ImageType OTHER).
DEFINED_TERMS = frozenset({
    "ORIGINAL", "DERIVED", "PRIMARY", "SECONDARY", "OTHER", "AXIAL", "LOCALIZER", "REFORMATTED",
    "VOLUME", "HELIX", "HELICAL", "PROJECTION", "EMISSION", "TRANSMISSION", "RECON", "IMAGE", "STATIC",
    "DYNAMIC", "GATED", "WHOLE", "BODY", "DECY", "ATTN", "SCAT", "DTIM", "RADL", "DCAL", "NORM", "CLN",
    "BQML", "CNTS", "GML", "PROPCNTS", "NONE", "START", "ADMIN", "LINEAR", "AREA", "VALUE", "SERIES",
    "STANDARD", "CHEST", "ABDOMEN", "PELVIS", "HEAD", "NECK", "BRAIN", "LUNG", "LIVER", "SPINE", "MOTION",
    "YES", "NO", "MONOCHROME1", "MONOCHROME2", "FFS", "FFP", "HFS", "HFP", "FEET", "FIRST", "UNKNOWN",
})

# Identifying attributes whose ORIGINAL values the leak check looks for in everything written.
IDENTIFYING_KEYWORDS = (
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthDate",
    "PatientBirthName", "PatientMotherBirthName", "AccessionNumber", "InstitutionName",
    "InstitutionAddress", "InstitutionalDepartmentName", "ReferringPhysicianName",
    "PerformingPhysicianName", "OperatorsName", "NameOfPhysiciansReadingStudy", "RequestingPhysician",
    "PhysiciansOfRecord", "MedicalRecordLocator", "PatientAddress", "PatientTelephoneNumbers",
)

# The words a study or series description may consist of to be kept (Clean Descriptors option):
# modality, anatomy, phase, reconstruction and tracer vocabulary in English and Italian. A
# description with any other word (a name, an ID, a place) is replaced by a generated one.
DESCRIPTION_VOCABULARY = frozenset({
    "CT", "TC", "TAC", "PET", "PT", "PETCT", "TOMOGRAPHY", "TOMOGRAFIA", "COMPUTED", "COMPUTERIZZATA",
    "EMISSION", "POSITRON", "WB", "WHOLE", "BODY", "WHOLEBODY", "TOTAL", "TOTALBODY", "TOTALE", "CORPO",
    "INTERO", "SKULL", "VERTEX", "THIGH", "THIGHS", "AC", "NAC", "CTAC", "NOAC", "MAC", "ATTN", "CORRECTED",
    "CORRETTA", "UNCORRECTED", "MIP", "MPR", "MINIP", "VR", "AXIAL", "AX", "AXIALE", "ASSIALE", "CORONAL",
    "COR", "CORONALE", "SAGITTAL", "SAG", "SAGITTALE", "OBLIQUE", "2D", "3D", "RECON", "RECONSTRUCTION",
    "RICOSTRUZIONE", "STD", "STANDARD", "SOFT", "TISSUE", "SOFTTISSUE", "BONE", "BONES", "OSSO", "OSSA",
    "LUNG", "LUNGS", "POLMONE", "POLMONI", "PARENCHIMA", "MEDIASTINUM", "MEDIASTINO", "MEDIASTINAL",
    "BRAIN", "ENCEFALO", "CRANIO", "HEAD", "NECK", "COLLO", "CHEST", "THORAX", "TORACE", "THORACIC",
    "ABDOMEN", "ADDOME", "ABDOMINAL", "ABD", "PELVIS", "PELVI", "PELVIC", "PEL", "LIVER", "FEGATO",
    "EPATICO", "BREAST", "BREASTS", "MAMMELLA", "MAMMELLE", "SPINE", "RACHIDE", "LIMB", "LIMBS", "LEG",
    "LEGS", "ARM", "ARMS", "EXTREMITY", "EXTREMITIES", "ARTI", "THIN", "THICK", "SLICE", "SLICES", "STRATO",
    "STRATI", "MM", "CM", "SPIRAL", "HELICAL", "ELICOIDALE", "CONTRAST", "CONTRASTO", "MDC", "CON", "SENZA",
    "WITH", "WITHOUT", "W", "WO", "IV", "ORAL", "EV", "ARTERIAL", "ARTERIOSA", "VENOUS", "VENOSA", "PORTAL",
    "PORTALE", "PORTALVENOUS", "DELAYED", "TARDIVA", "LATE", "EARLY", "PHASE", "FASE", "BASALE", "BASAL",
    "PRE", "POST", "NATIVE", "PLAIN", "LOW", "DOSE", "LOWDOSE", "LD", "FDG", "F18", "18F", "FLUORO",
    "FLUORODEOXYGLUCOSE", "PSMA", "GA68", "68GA", "DOTATATE", "DOTATOC", "CHOLINE", "COLINA", "FES", "FLT",
    "STATIC", "STATICA", "DYNAMIC", "DINAMICA", "GATED", "OSEM", "TOF", "PSF", "QCLEAR", "VPFX", "VPHD",
    "SHARPIR", "IR", "FBP", "ITERATIVE", "ASIR", "ASIRV", "SAFIRE", "ADMIRE", "IDOSE", "KERNEL", "FILTER",
    "WINDOW", "FINESTRA", "AND", "E", "ED", "PLUS", "TO", "OF", "THE", "FOR", "PER", "IMAGE", "IMAGES",
    "IMMAGINI", "SERIES", "SERIE", "ORIGINAL", "PRIMARY", "DERIVED", "SECONDARY", "SCOUT", "TOPOGRAM",
    "LOCALIZER", "SURVIEW", "STAGING", "RESTAGING", "FOLLOWUP", "FOLLOW", "UP", "BASELINE", "STUDY",
    "ESAME", "EXAM", "ONCOLOGY", "ONCOLOGIA", "ONCOLOGICO", "TUMOR", "TUMORE", "TUMOUR", "METASTASES",
    "METASTASI", "SUV", "BQML", "QUANT", "QUANTITATIVE",
})
# fmt: on
