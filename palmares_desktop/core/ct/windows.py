"""CT window presets (DOMAIN.md §3) and their conversion to display limits (Qt-free).

A window is given as width/level in HU, as radiologists name it; viewers want the lower and
upper grey-scale limits, which are level ∓ width/2.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowPreset:
    name: str
    width: float  # HU
    level: float  # HU

    @property
    def limits(self) -> tuple[float, float]:
        """(lower, upper) HU shown from black to white."""
        return (self.level - self.width / 2.0, self.level + self.width / 2.0)

    def label(self) -> str:
        return f"{self.name.capitalize()} (W {self.width:g} / L {self.level:g})"


#: Study presets, in the order the GUI offers them; width/level in HU (DOMAIN.md §3).
WINDOW_PRESETS: dict[str, WindowPreset] = {
    p.name: p
    for p in (
        WindowPreset("mediastinum", 350, 50),
        WindowPreset("abdomen", 400, 50),
        WindowPreset("liver", 150, 30),
        WindowPreset("lung", 1500, -600),
        WindowPreset("bone", 1800, 400),
        WindowPreset("brain", 80, 40),
    )
}

#: The preset a CT opens with: soft tissue, where breast-cancer metastases are read first.
DEFAULT_WINDOW = "abdomen"


def window_limits(name: str) -> tuple[float, float]:
    """Display limits of a named preset; raises KeyError with the known names if unknown."""
    try:
        return WINDOW_PRESETS[name].limits
    except KeyError:
        raise KeyError(f"Unknown CT window {name!r}; known: {', '.join(WINDOW_PRESETS)}.") from None
