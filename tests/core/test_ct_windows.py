"""CT window presets are the study's (DOMAIN.md §3) and convert to display limits correctly."""

import pytest

from palmares_desktop.core.ct.windows import DEFAULT_WINDOW, WINDOW_PRESETS, window_limits


def test_presets_match_the_domain_reference():
    expected = {
        "brain": (80, 40),
        "lung": (1500, -600),
        "mediastinum": (350, 50),
        "abdomen": (400, 50),
        "liver": (150, 30),
        "bone": (1800, 400),
    }
    assert {name: (p.width, p.level) for name, p in WINDOW_PRESETS.items()} == expected
    assert DEFAULT_WINDOW in WINDOW_PRESETS


def test_limits_are_level_minus_and_plus_half_the_width():
    assert window_limits("lung") == (-1350.0, 150.0)
    assert window_limits("bone") == (-500.0, 1300.0)
    assert window_limits("brain") == (0.0, 80.0)
    assert WINDOW_PRESETS["liver"].label() == "Liver (W 150 / L 30)"
    with pytest.raises(KeyError, match="known: mediastinum"):
        window_limits("spine")
