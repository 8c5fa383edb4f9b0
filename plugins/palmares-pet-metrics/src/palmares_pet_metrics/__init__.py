"""PET metrics at several thresholds per lesion, a PALMARES Desktop feature family."""

__version__ = "0.1.0"
