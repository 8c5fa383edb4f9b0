"""The demo study: an analytic torso phantom (`phantom`), its PET/CT DICOM export (`dicom_writer`),
H&E-like slides (`slide_writer`), and the demo store built through the real import path (`demo_store`)."""
