"""Pure-Python core: computes everything. Never imports Qt, napari or vispy (import-linter contract)."""
