"""Create or pick the reader profile (who is working); remembered by core.profile."""

from __future__ import annotations

from qtpy.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from palmares_desktop.core.profile import (
    HUMAN_ROLES,
    ProfileError,
    ReaderProfile,
    list_profiles,
    make_profile,
)

NEW_PROFILE = "New reader…"


class ReaderDialog(QDialog):
    """Pick a remembered profile or type a new one; OK validates (site code form, name, role)."""

    def __init__(
        self, parent: QWidget | None = None, current: ReaderProfile | None = None, default_site: str = ""
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Who is reading?")
        self.setMinimumWidth(420)
        self._profiles = list_profiles()
        self._result: ReaderProfile | None = None

        intro = QLabel(
            "Every change to the study store is recorded with the reader who made it.\n"
            "Pick your profile or create one."
        )
        intro.setWordWrap(True)
        self.picker = QComboBox()
        self.picker.addItems([p.label() for p in self._profiles] + [NEW_PROFILE])
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. Anna Rossi")
        self.role = QComboBox()
        self.role.addItems(list(HUMAN_ROLES))
        self.site = QLineEdit()
        self.site.setPlaceholderText("e.g. IT03")
        self.site.setMaxLength(4)
        self.site.setText(default_site)
        self.error = QLabel()
        self.error.setStyleSheet("color: #c0392b;")
        self.error.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Profile", self.picker)
        form.addRow("Name", self.name)
        form.addRow("Role", self.role)
        form.addRow("Site code", self.site)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

        self.picker.currentIndexChanged.connect(self._picked)
        if current is not None and current in self._profiles:
            self.picker.setCurrentIndex(self._profiles.index(current))
        else:
            self.picker.setCurrentIndex(len(self._profiles))
        self._picked(self.picker.currentIndex())

    def _picked(self, index: int) -> None:
        existing = 0 <= index < len(self._profiles)
        if existing:
            profile = self._profiles[index]
            self.name.setText(profile.name)
            self.role.setCurrentText(profile.role)
            self.site.setText(profile.site_code)
        elif self._profiles:
            self.name.clear()
        for field in (self.name, self.role, self.site):
            field.setEnabled(not existing)
        self.error.clear()

    def fill(self, name: str, role: str, site_code: str) -> None:
        """Type a new profile into the form (used by tests and scripted starts)."""
        self.picker.setCurrentIndex(len(self._profiles))
        self.name.setText(name)
        self.role.setCurrentText(role)
        self.site.setText(site_code)

    def accept(self) -> None:
        try:
            self._result = make_profile(self.name.text(), self.role.currentText(), self.site.text())
        except ProfileError as exc:
            self.error.setText(str(exc))
            return
        super().accept()

    def profile(self) -> ReaderProfile | None:
        """The validated profile after OK, else None."""
        return self._result


def ask_profile(
    parent: QWidget | None = None, current: ReaderProfile | None = None, default_site: str = ""
) -> ReaderProfile | None:
    dialog = ReaderDialog(parent, current, default_site)
    return dialog.profile() if dialog.exec() == QDialog.DialogCode.Accepted else None
