"""`LevelView`: a lazy array-like over a backend's region reader, sliced like a numpy array.

napari and our own code slice slide levels as `level[y0:y1, x0:x1]`; this turns such a slice
into one region read (level pixel coordinates), so only the tiles the region touches are decoded.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

RegionReader = Callable[[int, int, int, int], np.ndarray]  # (x, y, width, height) -> (h, w, 3) uint8


class LevelView:
    """(height, width, 3) uint8 level; `__getitem__` supports ints and steps-of-1 slices on y and x."""

    dtype = np.dtype("uint8")
    ndim = 3

    def __init__(self, height: int, width: int, read: RegionReader) -> None:
        self.shape = (height, width, 3)
        self._read = read

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        whole = self._read(0, 0, self.shape[1], self.shape[0])
        return whole.astype(dtype) if dtype else whole

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (3 - len(key))
        (y0, y1, ys), (x0, x1, xs) = (_bounds(k, n) for k, n in zip(key[:2], self.shape[:2], strict=True))
        region = self._read(x0, y0, x1 - x0, y1 - y0) if y1 > y0 and x1 > x0 else np.zeros((0, 0, 3), "u1")
        region = region.reshape(max(y1 - y0, 0), max(x1 - x0, 0), 3)[::ys, ::xs]
        if isinstance(key[0], int | np.integer):
            region = region[0]
            return region[0][key[2]] if isinstance(key[1], int | np.integer) else region[:, key[2]]
        if isinstance(key[1], int | np.integer):
            return region[:, 0][:, key[2]]
        return region[:, :, key[2]]


def _bounds(key, size: int) -> tuple[int, int, int]:
    if isinstance(key, int | np.integer):
        index = int(key) + size if key < 0 else int(key)
        if not 0 <= index < size:
            raise IndexError(f"index {key} is outside a level of size {size}")
        return index, index + 1, 1
    start, stop, step = key.indices(size)
    if step < 1:
        raise IndexError("slide levels are read with positive steps only")
    return start, max(stop, start), step
