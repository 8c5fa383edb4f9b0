"""The manual caliper's numbers (core/ct/caliper.py) on hand-checkable lines."""

from __future__ import annotations

import pytest

from palmares_desktop.core.ct.caliper import angle_between, line_from_points, reading


def test_length_is_the_euclidean_distance_in_mm():
    line = line_from_points([[10.0, 0.0, 0.0], [10.0, 30.0, 40.0]])
    assert line.length_mm == pytest.approx(50.0)  # a 3-4-5 triangle
    assert reading([line]).sentence() == "Caliper: 50.0 mm."


def test_two_perpendicular_lines_on_a_slice_read_as_long_and_short_axis():
    short = line_from_points([[5.0, -6.0, 0.0], [5.0, 6.0, 0.0]])  # 12 mm along y
    long = line_from_points([[5.0, 0.0, -15.0], [5.0, 0.0, 15.0]])  # 30 mm along x
    result = reading([short, long])
    assert result.long_axis_mm == pytest.approx(30.0) and result.short_axis_mm == pytest.approx(12.0)
    assert result.angle_deg == pytest.approx(90.0)
    assert "long axis 30.0 mm × short axis 12.0 mm" in result.sentence()


def test_a_hand_drawn_short_axis_within_ten_degrees_still_counts():
    long = line_from_points([[0.0, 0.0, 0.0], [0.0, 0.0, 40.0]])
    tilted = line_from_points([[0.0, -10.0, 20.0], [0.0, 10.0, 23.0]])  # 81.5 degrees to the long axis
    assert angle_between(long, tilted) == pytest.approx(81.47, abs=0.01)
    assert reading([long, tilted]).long_axis_mm == pytest.approx(40.0)
    oblique = line_from_points([[0.0, -10.0, 15.0], [0.0, 10.0, 25.0]])  # 63 degrees: not a pair
    assert reading([long, oblique]).long_axis_mm is None
    assert "40.0 mm, 22.4 mm" in reading([long, oblique]).sentence()


def test_lines_on_different_slices_are_not_a_pair():
    a = line_from_points([[0.0, 0.0, -10.0], [0.0, 0.0, 10.0]])
    b = line_from_points([[2.5, -5.0, 0.0], [2.5, 5.0, 0.0]])
    assert reading([a, b]).long_axis_mm is None


def test_malformed_points_are_refused():
    with pytest.raises(ValueError, match="two finite"):
        line_from_points([[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="two finite"):
        line_from_points([[0.0, 0.0, 0.0], [float("nan"), 0.0, 0.0]])
    assert "drag a line" in reading([]).sentence()
