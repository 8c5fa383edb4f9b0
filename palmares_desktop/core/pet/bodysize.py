"""Body-size quantities for SUV normalisation (DOMAIN.md §1): lean body mass, ideal body weight, BSA.

Units are in the names: weights in kg, heights in cm, areas in m². Sex is the DICOM PatientSex code:
"M", "F" or "O"; for "O" (other) the IBSI SUV manual uses the mean of the male and the female value.
Every function raises BodySizeError (a ValueError) with a plain sentence on unusable input, so the
SUV engine can turn it into a refusal reason instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable

from palmares_desktop.core.errors import PalmaresError

__all__ = [
    "SUV_NORMALISATIONS",
    "BodySizeError",
    "bmi_kg_per_m2",
    "bsa_dubois_m2",
    "ibw_kg",
    "lbm_james128_kg",
    "lbm_james_kg",
    "lbm_janmahasatian_kg",
]


class BodySizeError(PalmaresError, ValueError):
    """Weight, height or sex cannot be used for a body-size normalisation (message says why)."""


def _check_weight_height(weight_kg: float, height_cm: float) -> None:
    if weight_kg is None or not weight_kg > 0:
        raise BodySizeError(f"the patient weight ({weight_kg} kg) is missing or not positive")
    if height_cm is None or not height_cm > 0:
        raise BodySizeError(f"the patient height ({height_cm} cm) is missing or not positive")


def _by_sex(sex: str | None, male: Callable[[], float], female: Callable[[], float]) -> float:
    code = (sex or "").strip().upper()
    if code == "M":
        return male()
    if code == "F":
        return female()
    if code == "O":
        return (male() + female()) / 2.0
    raise BodySizeError(f"the patient sex ({sex!r}) is missing or not one of M, F, O")


def bmi_kg_per_m2(weight_kg: float, height_cm: float) -> float:
    """Body-mass index W / H_m² (kg/m²)."""
    _check_weight_height(weight_kg, height_cm)
    return weight_kg / (height_cm / 100.0) ** 2


def lbm_james_kg(
    weight_kg: float, height_cm: float, sex: str | None, male_coefficient: float = 120.0
) -> float:
    """Lean body mass by James (1976), kg: M 1.10W − 120(W/H)², F 1.07W − 148(W/H)² (H in cm).

    `male_coefficient=128` gives the "JAMES128" variant used by PERCIST and 3D Slicer.
    """
    _check_weight_height(weight_kg, height_cm)
    ratio_sq = (weight_kg / height_cm) ** 2
    lbm = _by_sex(
        sex,
        lambda: 1.10 * weight_kg - male_coefficient * ratio_sq,
        lambda: 1.07 * weight_kg - 148.0 * ratio_sq,
    )
    if lbm <= 0:
        # The James formula turns negative for very high BMI; a negative mass is no normalisation.
        raise BodySizeError(
            f"the James lean body mass is not positive ({lbm:.1f} kg) for this weight and height"
        )
    return lbm


def lbm_james128_kg(weight_kg: float, height_cm: float, sex: str | None) -> float:
    """Lean body mass, James with 128 in the male formula (PERCIST/3D Slicer "JAMES128"), kg."""
    return lbm_james_kg(weight_kg, height_cm, sex, male_coefficient=128.0)


def lbm_janmahasatian_kg(weight_kg: float, height_cm: float, sex: str | None) -> float:
    """Lean body mass by Janmahasatian (2005), kg: M 9270W/(6680 + 216·BMI), F 9270W/(8780 + 244·BMI)."""
    bmi = bmi_kg_per_m2(weight_kg, height_cm)
    return _by_sex(
        sex,
        lambda: 9270.0 * weight_kg / (6680.0 + 216.0 * bmi),
        lambda: 9270.0 * weight_kg / (8780.0 + 244.0 * bmi),
    )


def ibw_kg(weight_kg: float, height_cm: float, sex: str | None) -> float:
    """Ideal body weight, kg: M 48.0 + 1.06(H − 152), F 45.5 + 0.91(H − 152), capped at W.

    For sex "O" the male and female values are averaged first and the mean is capped: that is what
    the IBSI DRO_2_2 encodes (175 cm, 70 kg: mean 69.405 kg, while capping the male 72.38 kg first
    would give 68.215 kg and SUVbw 4.07 instead of 4.00).
    """
    _check_weight_height(weight_kg, height_cm)
    ibw = _by_sex(
        sex,
        lambda: 48.0 + 1.06 * (height_cm - 152.0),
        lambda: 45.5 + 0.91 * (height_cm - 152.0),
    )
    if ibw <= 0:
        raise BodySizeError(f"the ideal body weight is not positive ({ibw:.1f} kg) for this height")
    return min(ibw, weight_kg)


def bsa_dubois_m2(weight_kg: float, height_cm: float) -> float:
    """Body surface area by Du Bois & Du Bois (1916), m²: 0.007184 · W^0.425 · H^0.725."""
    _check_weight_height(weight_kg, height_cm)
    return 0.007184 * weight_kg**0.425 * height_cm**0.725


# SUV normalisation name -> (words, reference amount from (weight kg, height cm, sex): a mass in g, or an
# area in cm² for suvbsa). SUVx = SUVbw × reference / weight_g, i.e. A × reference / decayed dose.
SUV_NORMALISATIONS: dict[str, tuple[str, Callable[[float, float, str | None], float]]] = {
    "suvlbm_james": ("lean body mass, James", lambda w, h, s: lbm_james_kg(w, h, s) * 1e3),
    "suvlbm_james128": ("lean body mass, James 128", lambda w, h, s: lbm_james128_kg(w, h, s) * 1e3),
    "suvlbm_janmahasatian": (
        "lean body mass, Janmahasatian",
        lambda w, h, s: lbm_janmahasatian_kg(w, h, s) * 1e3,
    ),
    "suvibw": ("ideal body weight", lambda w, h, s: ibw_kg(w, h, s) * 1e3),
    "suvbsa": ("body surface area, Du Bois (cm²)", lambda w, h, s: bsa_dubois_m2(w, h) * 1e4),
}
