"""PALMARES Desktop: imaging annotation and radiomics workstation for the PALMARES-2 study."""

__version__ = "0.1.0"
