"""Whole-slide images: level access (`reader`) and registration in the store (`registry`)."""

from palmares_desktop.core.slides.reader import SlideError, SlideInfo, level_array, level_arrays, open_slide

__all__ = ["SlideError", "SlideInfo", "level_array", "level_arrays", "open_slide"]
