"""Settings remembered between runs (QSettings) and the settings dialog (GUI thread)."""

from __future__ import annotations

from dataclasses import fields

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from app.studio.config import SOURCES, StudioConfig

ORGANIZATION = "tempeh"
APPLICATION = "tempeh-studio"
GROUP = "studio"


def open_settings() -> QSettings:
    """The user's studio settings (INI format under the user's config folder).

    On Linux that is ``$XDG_CONFIG_HOME/tempeh/tempeh-studio.ini``; tests point it elsewhere
    with ``QSettings.setPath`` or ``XDG_CONFIG_HOME``.
    """
    return QSettings(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION
    )


def load_config(settings: QSettings, default: StudioConfig | None = None) -> StudioConfig:
    """The stored :class:`StudioConfig` (defaults for keys never saved or unreadable)."""
    base = default or StudioConfig()
    values = {}
    settings.beginGroup(GROUP)
    try:
        for f in fields(StudioConfig):
            if not settings.contains(f.name):
                continue
            raw = settings.value(f.name)
            try:
                values[f.name] = float(raw) if f.type in ("float", float) else str(raw)
            except (TypeError, ValueError):
                continue
    finally:
        settings.endGroup()
    return base.updated(**values)


def save_config(settings: QSettings, config: StudioConfig) -> None:
    """Store ``config`` (written to disk by :meth:`QSettings.sync`)."""
    settings.beginGroup(GROUP)
    try:
        for f in fields(StudioConfig):
            settings.setValue(f.name, getattr(config, f.name))
    finally:
        settings.endGroup()
    settings.sync()


class _PathEdit(QWidget):
    """A line edit with a browse button (file or folder)."""

    def __init__(self, text: str, folder: bool, caption: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.edit = QLineEdit(text)
        self.folder, self.caption = folder, caption
        browse = QPushButton("…")
        browse.setFixedWidth(30)
        browse.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    def text(self) -> str:
        return self.edit.text().strip()

    def _browse(self) -> None:
        if self.folder:
            path = QFileDialog.getExistingDirectory(self, self.caption, self.text())
        else:
            path = QFileDialog.getOpenFileName(self, self.caption, self.text())[0]
        if path:
            self.edit.setText(path)


class SettingsDialog(QDialog):
    """Source, rig, model and device; :meth:`config` reads the edited values.

    Parameters
    ----------
    config : StudioConfig
        The values to start from.
    """

    def __init__(self, config: StudioConfig, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Studio settings")
        self._base = config
        self.source_box = QComboBox()
        labels = {"emulated": "Emulated rig (pylon emulator + synthetic performer)",
                  "basler": "Basler cameras", "replay": "Replay a take"}  # fmt: skip
        for s in SOURCES:
            self.source_box.addItem(labels[s], s)
        self.source_box.setCurrentIndex(SOURCES.index(config.source))
        self.rig_edit = _PathEdit(config.rig, False, "Rig file")
        self.rig_edit.edit.setToolTip("shipped rig name (default16, test4) or a rig file")
        self.size_edit = QLineEdit(config.size)
        self.size_edit.setPlaceholderText("WxH, empty: the rig's size")
        self.fps_box = QDoubleSpinBox()
        self.fps_box.setRange(1.0, 240.0)
        self.fps_box.setValue(config.fps)
        self.take_edit = _PathEdit(config.take, True, "Take folder")
        self.model_box = QComboBox()
        self.model_box.setEditable(True)
        self.model_box.addItems(["default"])
        self.model_box.setCurrentText(config.model)
        self.model_box.setToolTip(
            "'default' (the embedded model), a model/checkpoint file, or a model converted from "
            "the official TEMPEH weights (then also give the FLAME file)"
        )
        model_browse = QPushButton("…")
        model_browse.setFixedWidth(30)
        model_browse.clicked.connect(self._browse_model)
        model_row = QWidget()
        row = QHBoxLayout(model_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.model_box, 1)
        row.addWidget(model_browse)
        self.flame_edit = _PathEdit(config.flame, False, "FLAME model (generic_model.pkl)")
        self.device_box = QComboBox()
        self.device_box.setEditable(True)
        self.device_box.addItems(["cpu", "cuda", "cuda:1"])
        self.device_box.setCurrentText(config.device)
        self.takes_edit = _PathEdit(config.takes_dir, True, "Folder for new takes")
        self.codec_box = QComboBox()
        self.codec_box.addItems(["h264", "ffv1", "png"])
        self.codec_box.setCurrentText(config.codec)
        form = QFormLayout(self)
        form.addRow("Source", self.source_box)
        form.addRow("Rig", self.rig_edit)
        form.addRow("Image size", self.size_edit)
        form.addRow("Rate (sets/s)", self.fps_box)
        form.addRow("Replay take", self.take_edit)
        form.addRow("Model", model_row)
        form.addRow("FLAME file", self.flame_edit)
        form.addRow("Device", self.device_box)
        form.addRow("Takes folder", self.takes_edit)
        form.addRow("Recording codec", self.codec_box)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse_model(self) -> None:
        path = QFileDialog.getOpenFileName(self, "Model or checkpoint", "", "Models (*.pt *.pth)")[
            0
        ]
        if path:
            self.model_box.setCurrentText(path)

    def config(self) -> StudioConfig:
        """The edited settings."""
        return self._base.updated(
            source=str(self.source_box.currentData()),
            rig=self.rig_edit.text() or "default16",
            size=self.size_edit.text().strip(),
            fps=float(self.fps_box.value()),
            take=self.take_edit.text(),
            model=self.model_box.currentText().strip() or "default",
            flame=self.flame_edit.text(),
            device=self.device_box.currentText().strip() or "cpu",
            takes_dir=self.takes_edit.text(),
            codec=self.codec_box.currentText(),
        )
