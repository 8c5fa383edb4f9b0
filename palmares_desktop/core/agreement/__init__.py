"""Reader agreement (DOMAIN.md §8): overlap and surface distances of masks, ICC of features."""

from palmares_desktop.core.agreement.bland_altman import BlandAltman, bland_altman
from palmares_desktop.core.agreement.icc import FeatureICC, feature_iccs, koo_li_band, robust_features
from palmares_desktop.core.agreement.overlap import AgreementError, MaskAgreement, mask_agreement

__all__ = [
    "AgreementError",
    "BlandAltman",
    "FeatureICC",
    "MaskAgreement",
    "bland_altman",
    "feature_iccs",
    "koo_li_band",
    "mask_agreement",
    "robust_features",
]
