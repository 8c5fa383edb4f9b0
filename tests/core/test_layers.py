"""The one dependency rule: core imports and works with no Qt, napari or vispy installed."""

import subprocess
import sys
import textwrap


def test_core_imports_without_any_gui_toolkit():
    # A meta-path finder makes every GUI toolkit unimportable, as on a machine without them.
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        BLOCKED = ("PySide6", "PyQt5", "PyQt6", "qtpy", "napari", "vispy", "superqt", "magicgui")

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{name} is not installed")
                return None

        sys.meta_path.insert(0, Block())
        import palmares_desktop.core as core
        names = [m.name for m in pkgutil.walk_packages(core.__path__, "palmares_desktop.core.")]
        for name in names:
            importlib.import_module(name)
        assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED]
        print(len(names))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 5
