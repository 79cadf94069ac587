"""Transport controls: Live / Record / Stop, and the replay bar with its timeline (GUI thread)."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QStyle, QWidget

from app.studio.player import SPEEDS, TakePlayer, TimelineModel


class TransportBar(QWidget):
    """Live, Record, Stop and Open take buttons; the owner connects their signals."""

    live_requested = Signal()
    record_toggled = Signal(bool)
    stop_requested = Signal()
    open_take_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.live_button = QPushButton("Live")
        self.record_button = QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.stop_button = QPushButton("Stop")
        self.open_button = QPushButton("Replay take…")
        self.state_label = QLabel("idle")
        self.live_button.clicked.connect(self.live_requested)
        self.record_button.toggled.connect(self.record_toggled)
        self.stop_button.clicked.connect(self.stop_requested)
        self.open_button.clicked.connect(self.open_take_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        for w in (self.live_button, self.record_button, self.stop_button, self.open_button):
            layout.addWidget(w)
        layout.addStretch(1)
        layout.addWidget(self.state_label)
        self.set_activity("idle")

    def set_activity(self, activity: str, detail: str = "") -> None:
        """Enable what makes sense in ``activity`` (an ``Activity`` value of the engine)."""
        busy = activity in ("starting", "stopping")
        self.live_button.setEnabled(activity in ("idle", "replay"))
        self.record_button.setEnabled(activity in ("live", "recording"))
        self.record_button.blockSignals(True)
        self.record_button.setChecked(activity == "recording")
        self.record_button.blockSignals(False)
        self.stop_button.setEnabled(activity not in ("idle",) and not busy)
        self.open_button.setEnabled(not busy and activity != "recording")
        color = {"recording": "#ff4040", "live": "#4cc34c", "replay": "#4cc3ff"}.get(activity, "")
        self.state_label.setText(activity.upper() + (f"  {detail}" if detail else ""))
        self.state_label.setStyleSheet(f"color: {color}; font-weight: bold;" if color else "")


class TimelineWidget(QWidget):
    """The sets of a take along time: ticks (orange: incomplete), gaps in red, a cursor.

    Clicking or dragging emits ``scrubbed(position)`` with the nearest set.
    """

    scrubbed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(28)
        self.model: TimelineModel | None = None
        self.position = 0

    def set_model(self, model: TimelineModel | None) -> None:
        """Show a take's timeline (None clears it)."""
        self.model = model
        self.position = 0
        self.update()

    def set_position(self, position: int) -> None:
        """Move the cursor to set ``position``."""
        if position != self.position:
            self.position = position
            self.update()

    def _x(self, t: float) -> float:
        m = self.model
        span = m.duration_s if m is not None and m.duration_s > 0 else 1.0
        return 4.0 + (self.width() - 8.0) * t / span

    def position_at_x(self, x: float) -> int:
        """The set nearest to widget x coordinate ``x``."""
        m = self.model
        if m is None or not len(m.times_s):
            return 0
        span = m.duration_s if m.duration_s > 0 else 1.0
        return m.position_at((x - 4.0) / max(1.0, self.width() - 8.0) * span)

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        h = self.height()
        p.fillRect(self.rect(), QColor("#1d1e21"))
        m = self.model
        if m is None or not len(m.times_s):
            p.setPen(QColor("#777"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no take")
            return
        for a, b in m.gaps:
            p.fillRect(
                QRectF(self._x(a), 2, max(2.0, self._x(b) - self._x(a)), h - 4),
                QColor(200, 40, 40, 160),
            )
        ok, bad = QPen(QColor("#6a8")), QPen(QColor("#f90"))
        for t, complete in zip(m.times_s, m.complete, strict=True):
            p.setPen(ok if complete else bad)
            x = self._x(float(t))
            p.drawLine(int(x), 6, int(x), h - 6)
        if 0 <= self.position < len(m.times_s):
            p.setPen(QPen(QColor("#fff"), 2))
            x = self._x(float(m.times_s[self.position]))
            p.drawLine(int(x), 0, int(x), h)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._scrub(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._scrub(event)

    def _scrub(self, event: QMouseEvent) -> None:
        if self.model is not None and len(self.model.times_s):
            pos = self.position_at_x(event.position().x())
            self.set_position(pos)
            self.scrubbed.emit(pos)


class ReplayBar(QWidget):
    """Play / pause, step, speed and the timeline of the take being replayed.

    Talks to a :class:`~app.studio.player.TakePlayer` (thread-safe) given by :meth:`set_player`;
    :meth:`refresh` (on the main window's timer) follows its position.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.player: TakePlayer | None = None
        style = self.style()
        self.back_button = QPushButton(
            style.standardIcon(QStyle.StandardPixmap.SP_MediaSeekBackward), ""
        )
        self.back_button.setToolTip("step one set back")
        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.fwd_button = QPushButton(
            style.standardIcon(QStyle.StandardPixmap.SP_MediaSeekForward), ""
        )
        self.fwd_button.setToolTip("step one set forward")
        self.speed_box = QComboBox()
        for s in SPEEDS:
            self.speed_box.addItem(f"{s:g}×", s)
        self.speed_box.setCurrentIndex(SPEEDS.index(1.0))
        self.timeline = TimelineWidget()
        self.label = QLabel("no take")
        self.label.setMinimumWidth(190)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        for w in (self.back_button, self.play_button, self.fwd_button, self.speed_box):
            layout.addWidget(w)
        layout.addWidget(self.timeline, 1)
        layout.addWidget(self.label)
        self.back_button.clicked.connect(lambda: self._step(-1))
        self.fwd_button.clicked.connect(lambda: self._step(1))
        self.play_button.toggled.connect(self._play)
        self.speed_box.currentIndexChanged.connect(self._speed)
        self.timeline.scrubbed.connect(self._seek)
        self.set_player(None)

    def set_player(self, player: TakePlayer | None) -> None:
        """Control ``player`` (None disables the bar)."""
        self.player = player
        for w in (self.back_button, self.play_button, self.fwd_button, self.speed_box):
            w.setEnabled(player is not None)
        self.timeline.set_model(None if player is None else player.timeline)
        if player is not None:
            player.set_speed(float(self.speed_box.currentData()))
        self.refresh()

    def refresh(self) -> None:
        """Follow the player's position and state."""
        p = self.player
        if p is None:
            self.label.setText("no take")
            return
        st = p.status()
        self.timeline.set_position(st.position)
        self.play_button.blockSignals(True)
        self.play_button.setChecked(st.playing)
        self.play_button.setText("Pause" if st.playing else "Play")
        self.play_button.blockSignals(False)
        m = p.timeline
        t = float(m.times_s[st.position]) if len(m.times_s) else 0.0
        self.label.setText(
            f"set {st.position + 1}/{st.count}  {t:5.2f}/{m.duration_s:.2f} s"
            + (f"  {len(m.gaps)} gaps" if m.gaps else "")
        )

    def _play(self, on: bool) -> None:
        if self.player is not None:
            (self.player.play if on else self.player.pause)()
        self.refresh()

    def _step(self, delta: int) -> None:
        if self.player is not None:
            self.player.step(delta)
            self.refresh()

    def _seek(self, position: int) -> None:
        if self.player is not None:
            self.player.seek(position)

    def _speed(self, index: int) -> None:
        if self.player is not None:
            self.player.set_speed(float(self.speed_box.itemData(index)))
