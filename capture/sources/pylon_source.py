"""Basler cameras through pypylon: real devices and pylon's camera emulator.

The emulator is the same code path as real hardware with three differences the source knows
about (``platform.md``): cameras are made by ``PYLON_CAMEMU=N`` (read when the transport layer
enumerates), images come from per-camera folders (``ImageFileMode``), and timestamps are
always 0 (stored as ``None``; host monotonic stamps are always kept).

Threads: :meth:`PylonSource.start` starts one grab thread (``pylon-grab``) that triggers (in
software-trigger mode) and retrieves every camera's frames and passes them to the sink.
Everything else runs on the caller's thread.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from capture.camera import Rig
from capture.errors import CaptureError
from capture.frames import Frame
from capture.pattern import FrameProvider
from capture.sources import ErrorSink, FrameSink

log = logging.getLogger(__name__)

EMULATOR_SERIAL_PREFIX = "0815-"


class TriggerMode(enum.Enum):
    """How the cameras are synchronised."""

    FREE_RUN = "free_run"
    """Each camera runs at ``frame_rate`` (group by timestamps: PTP cameras)."""
    SOFTWARE = "software"
    """The source triggers every camera per set at ``frame_rate`` (emulator default)."""
    HARDWARE = "hardware"
    """FrameStart on Line1 from a pulse generator or master camera; group by frame counter."""


@dataclass(frozen=True)
class CameraSettings:
    """Settings applied to one camera; ``None`` leaves the camera's value alone.

    GigE-only nodes (packet size, delays) are applied only where the node exists.
    """

    pixel_format: str = "Mono8"
    exposure_us: float | None = None
    gain_db: float | None = None
    packet_size: int | None = None
    """``GevSCPSPacketSize`` bytes (jumbo frames: 8192+)."""
    inter_packet_delay: int | None = None
    """``GevSCPD`` ticks."""
    frame_transmission_delay: int | None = None
    """``GevSCFTD`` ticks."""
    offset_x: int | None = None
    """ROI ``OffsetX`` pixels (after binning); the ROI size is the rig camera's image size."""
    offset_y: int | None = None
    """ROI ``OffsetY`` pixels (after binning)."""
    binning_horizontal: int | None = None
    """``BinningHorizontal`` factor (1, 2, 3, 4 …), applied before the ROI."""
    binning_vertical: int | None = None
    """``BinningVertical`` factor."""

    def __post_init__(self) -> None:
        for name in ("offset_x", "offset_y"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 0):
                raise CaptureError(f"camera settings: {name} must be an integer >= 0, got {v!r}")
        for name in ("binning_horizontal", "binning_vertical"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise CaptureError(f"camera settings: {name} must be an integer >= 1, got {v!r}")


@dataclass(frozen=True)
class PylonConfig:
    """Configuration of a :class:`PylonSource` (saved as part of ``session.json``).

    Attributes
    ----------
    trigger : TriggerMode
        Synchronisation mode.
    frame_rate : float
        Target sets per second (software trigger) or camera frame rate (free run).
    settings : CameraSettings
        Applied to every camera.
    per_camera : Mapping[str, CameraSettings]
        Overrides by rig camera name.
    emulated : bool
        Use pylon's camera emulator: sets ``PYLON_CAMEMU`` to the rig size before enumerating.
    image_folders : tuple[str, ...]
        Emulator only: one folder of images per rig camera, played in name order, looping.
    grab_timeout_ms : int
        Longest wait for one frame or trigger-ready; bounds how long :meth:`stop` takes.
    """

    trigger: TriggerMode = TriggerMode.SOFTWARE
    frame_rate: float = 20.0
    settings: CameraSettings = field(default_factory=CameraSettings)
    per_camera: Mapping[str, CameraSettings] = field(default_factory=dict)
    emulated: bool = False
    image_folders: tuple[str, ...] = ()
    grab_timeout_ms: int = 200

    def for_camera(self, name: str) -> CameraSettings:
        """The settings for rig camera ``name``."""
        return self.per_camera.get(name, self.settings)


def _pylon() -> Any:
    try:
        from pypylon import pylon
    except ImportError as exc:  # pypylon is an optional runtime dependency of capture
        raise CaptureError(f"pypylon cannot be loaded: {exc}") from exc
    return pylon


def _set_node(cam: Any, name: str, value: Any, camera_name: str, required: bool = False) -> bool:
    """Set GenICam node ``name`` if it exists and is writable; returns whether it was set."""
    from pypylon import genicam

    node = cam.GetNodeMap().GetNode(name)
    if node is None or not genicam.IsWritable(node):
        if required:
            raise CaptureError(f"camera {camera_name!r}: node {name} is missing or read-only")
        log.debug("camera %s: node %s not available, skipped", camera_name, name)
        return False
    try:
        getattr(cam, name).Value = value
    except genicam.GenericException as exc:
        raise CaptureError(f"camera {camera_name!r}: cannot set {name}={value!r}: {exc}") from exc
    return True


def _node_max(cam: Any, size_node: str) -> int | None:
    """Width/Height available at offset 0 (``WidthMax``/``HeightMax``, else the node's Max)."""
    from pypylon import genicam

    node = cam.GetNodeMap().GetNode(f"{size_node}Max")
    try:
        if node is not None and genicam.IsReadable(node):
            return int(getattr(cam, f"{size_node}Max").Value)
        return int(getattr(cam, size_node).Max)
    except genicam.GenericException:
        return None


def write_provider_frames(
    provider: FrameProvider, rig: Rig, folder: str | PathLike[str], count: int
) -> tuple[str, ...]:
    """Write ``count`` provider sets as images into one folder per camera (``ImageFileMode``).

    Files are ``<folder>/<index>_<name>/<set:06d>.bmp``; the emulator plays them in name order
    and loops, so trigger ``k`` shows set ``k % count``. Uncompressed BMP, because the emulator
    decodes every file on every trigger and PNG decoding of textured 640×480 frames limits a
    16-camera rig to about 13 sets/s on two cores. Returns the folders in view order.
    """
    root = Path(folder)
    dirs = [root / f"{i:02d}_{cam.name}" for i, cam in enumerate(rig.cameras)]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    for s in range(count):
        images = provider(s)
        if len(images) != len(rig):
            raise CaptureError(
                f"frame provider returned {len(images)} images for {len(rig)} cameras"
            )
        for cam, d, img in zip(rig.cameras, dirs, images, strict=True):
            if img.shape[:2] != (cam.height, cam.width):
                raise CaptureError(
                    f"camera {cam.name!r}: provider image is {img.shape[1]}x{img.shape[0]}, "
                    f"the rig says {cam.width}x{cam.height}"
                )
            if not cv2.imwrite(str(d / f"{s:06d}.bmp"), img):
                raise CaptureError(f"cannot write {d / f'{s:06d}.bmp'}")
    return tuple(str(d) for d in dirs)


class PylonSource:
    """Frames from Basler cameras (real or emulated) matched to a rig by serial number.

    Opening (:meth:`open`, or implicitly :meth:`start`) raises :class:`CaptureError` before any
    streaming when a rig camera has no serial, a serial is not found, the number of cameras
    differs from the rig, or a camera cannot deliver the rig's image size.
    """

    def __init__(self, rig: Rig, config: PylonConfig | None = None) -> None:
        self._rig = rig
        self.config = config or PylonConfig()
        self._array: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._enabled = [True] * len(rig)
        self._lock = threading.Lock()
        if (
            self.config.emulated
            and self.config.image_folders
            and len(self.config.image_folders) != len(rig)
        ):
            raise CaptureError(
                f"{len(self.config.image_folders)} image folders for a rig of {len(rig)} cameras"
            )

    # ----------------------------------------------------------------- protocol

    @property
    def rig(self) -> Rig:
        """The rig (view order of ``Frame.camera_index``)."""
        return self._rig

    @property
    def cameras(self) -> tuple[str, ...]:
        """Rig camera names in view order."""
        return tuple(self._rig.names)

    @property
    def nominal_fps(self) -> float:
        """The configured frame rate."""
        return float(self.config.frame_rate)

    @property
    def finished(self) -> bool:
        """Cameras never finish."""
        return False

    def set_camera_enabled(self, index: int, enabled: bool) -> None:
        """Stop (or resume) triggering camera ``index`` (software trigger; fault injection).

        Thread-safe. A disabled camera delivers nothing, as a camera that lost its trigger.
        """
        with self._lock:
            self._enabled[index] = bool(enabled)

    # ----------------------------------------------------------------- open / close

    def open(self) -> None:
        """Enumerate, match serials, configure every camera and check image sizes."""
        if self._array is not None:
            return
        pylon = _pylon()
        n = len(self._rig)
        if self.config.emulated:
            os.environ["PYLON_CAMEMU"] = str(n)
        tl = pylon.TlFactory.GetInstance()
        devices = {d.GetSerialNumber(): d for d in tl.EnumerateDevices()}
        log.info("pylon found %d cameras: %s", len(devices), sorted(devices))
        for cam in self._rig.cameras:
            if not cam.serial:
                raise CaptureError(f"rig camera {cam.name!r} has no serial number to match")
            if cam.serial not in devices:
                raise CaptureError(
                    f"rig camera {cam.name!r}: serial {cam.serial!r} not found "
                    f"(found: {', '.join(sorted(devices)) or 'no cameras'})"
                )
        if len(devices) != n:
            raise CaptureError(
                f"rig {self._rig.name!r} has {n} cameras but {len(devices)} were found "
                f"({', '.join(sorted(devices))})"
            )
        array = pylon.InstantCameraArray(n)
        try:
            for i, cam in enumerate(self._rig.cameras):
                array[i].Attach(tl.CreateDevice(devices[cam.serial]))
                array[i].SetCameraContext(i)
            array.Open()
            for i in range(n):
                self._configure(array[i], i)
        except CaptureError:
            array.Close()
            raise
        except Exception as exc:  # pypylon raises several genicam exception types
            array.Close()
            raise CaptureError(f"cannot open cameras: {exc}") from exc
        self._array = array

    def _configure(self, dev: Any, index: int) -> None:
        cam = self._rig.cameras[index]
        s = self.config.for_camera(cam.name)
        name = cam.name
        _set_node(dev, "PixelFormat", s.pixel_format, name, required=True)
        # Binning first (it changes the maximum ROI), then the offsets to 0 so the size can
        # reach its maximum, then the size, then the offsets (each only where the node
        # exists and is writable).
        for node, value in (
            ("BinningHorizontal", s.binning_horizontal),
            ("BinningVertical", s.binning_vertical),
        ):
            if value is not None and not _set_node(dev, node, value, name):
                log.warning("camera %s: %s not available, binning %s ignored", name, node, value)
        offsets = (
            ("OffsetX", s.offset_x, "Width", cam.width),
            ("OffsetY", s.offset_y, "Height", cam.height),
        )
        for node, value, _, _ in offsets:
            if value is not None:
                _set_node(dev, node, 0, name)
        for node, value in (("Width", cam.width), ("Height", cam.height)):
            maximum = getattr(dev, node).Max
            if value > maximum:
                raise CaptureError(
                    f"camera {name!r} (serial {cam.serial}): rig image size "
                    f"{cam.width}x{cam.height} exceeds the sensor's {node} maximum {maximum}"
                )
            _set_node(dev, node, value, name)
        for node, value, size_node, size in offsets:
            if value is None:
                continue
            available = _node_max(dev, size_node)
            if available is not None and value + size > available:
                raise CaptureError(
                    f"camera {name!r} (serial {cam.serial}): ROI {node}={value} + {size_node} "
                    f"{size} exceeds the sensor's {available} pixels (after binning)"
                )
            if not _set_node(dev, node, value, name):
                log.warning("camera %s: %s not available, offset %s ignored", name, node, value)
        got = (dev.Width.Value, dev.Height.Value)
        if got != (cam.width, cam.height):
            raise CaptureError(
                f"camera {name!r} (serial {cam.serial}): delivers {got[0]}x{got[1]}, "
                f"the rig says {cam.width}x{cam.height}"
            )
        if s.exposure_us is not None and not _set_node(dev, "ExposureTime", s.exposure_us, name):
            _set_node(dev, "ExposureTimeAbs", s.exposure_us, name)
        if s.gain_db is not None:
            _set_node(dev, "Gain", s.gain_db, name)
        for node, value in (
            ("GevSCPSPacketSize", s.packet_size),
            ("GevSCPD", s.inter_packet_delay),
            ("GevSCFTD", s.frame_transmission_delay),
        ):
            if value is not None:
                _set_node(dev, node, value, name)
        if self.config.emulated and self.config.image_folders:
            folder = self.config.image_folders[index]
            if not Path(folder).is_dir():
                raise CaptureError(f"camera {name!r}: image folder {folder} does not exist")
            _set_node(dev, "TestImageSelector", "Off", name)
            _set_node(dev, "ImageFileMode", "On", name, required=True)
            _set_node(dev, "ImageFilename", str(folder), name, required=True)
        trig = self.config.trigger
        if trig is TriggerMode.FREE_RUN:
            _set_node(dev, "TriggerSelector", "FrameStart", name)
            _set_node(dev, "TriggerMode", "Off", name)
            _set_node(dev, "AcquisitionFrameRateEnable", True, name)
            if not _set_node(dev, "AcquisitionFrameRate", self.config.frame_rate, name):
                _set_node(dev, "AcquisitionFrameRateAbs", self.config.frame_rate, name)
        else:
            _set_node(dev, "TriggerSelector", "FrameStart", name, required=True)
            _set_node(dev, "TriggerMode", "On", name, required=True)
            source = "Software" if trig is TriggerMode.SOFTWARE else "Line1"
            _set_node(dev, "TriggerSource", source, name, required=True)

    def close(self) -> None:
        """Close the devices (after :meth:`stop`)."""
        if self._array is not None:
            self._array.Close()
            self._array = None

    # ----------------------------------------------------------------- streaming

    def start(self, sink: FrameSink, on_error: ErrorSink) -> None:
        """Open if needed, start grabbing and the grab thread."""
        if self._thread is not None:
            raise CaptureError("pylon source already started")
        self.open()
        pylon = _pylon()
        self._stop.clear()
        self._array.StartGrabbing(pylon.GrabStrategy_OneByOne)
        target = (
            self._run_software if self.config.trigger is TriggerMode.SOFTWARE else self._run_free
        )
        self._thread = threading.Thread(
            target=self._guard, args=(target, sink, on_error), name="pylon-grab", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the grab thread (≤ ~2 grab timeouts), stop grabbing and close the devices."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            if self._thread.is_alive():
                log.error("pylon grab thread did not stop within 5 s")
            self._thread = None
        if self._array is not None:
            self._array.StopGrabbing()
        self.close()

    def _guard(self, target: Any, sink: FrameSink, on_error: ErrorSink) -> None:
        try:
            target(sink)
        except Exception as exc:  # reported to the session, never lost in the thread
            log.exception("pylon grab thread failed")
            on_error(exc)

    def _frame(self, result: Any, index: int, trigger_id: int | None) -> Frame:
        host = time.monotonic_ns()
        image = result.GetArray()
        device_ts = int(result.TimeStamp)
        return Frame(
            image=image,
            camera_index=index,
            camera_name=self._rig.cameras[index].name,
            frame_id=int(result.BlockID),
            host_timestamp_ns=host,
            device_timestamp_ns=device_ts if device_ts else None,
            trigger_id=trigger_id,
        )

    def _run_software(self, sink: FrameSink) -> None:
        pylon = _pylon()
        timeout = self.config.grab_timeout_ms
        period = 1.0 / self.config.frame_rate if self.config.frame_rate > 0 else 0.0
        n = len(self._rig)
        next_t = time.monotonic()
        trigger_id = 0
        while not self._stop.is_set():
            with self._lock:
                enabled = [i for i in range(n) if self._enabled[i]]
            # Each wait is bounded by the grab timeout; checking the stop flag between cameras
            # keeps stop() fast even when several cameras stall.
            ready = []
            for i in enabled:
                if self._stop.is_set():
                    return
                if self._array[i].WaitForFrameTriggerReady(timeout, pylon.TimeoutHandling_Return):
                    ready.append(i)
            for i in ready:
                self._array[i].ExecuteSoftwareTrigger()
            for i in ready:
                if self._stop.is_set():
                    return
                result = self._array[i].RetrieveResult(timeout, pylon.TimeoutHandling_Return)
                if result is None or not result.IsValid():
                    log.warning("camera %s: no frame for trigger %d", self.cameras[i], trigger_id)
                    continue
                try:
                    if result.GrabSucceeded():
                        sink(self._frame(result, i, trigger_id))
                    else:
                        log.warning(
                            "camera %s: grab failed: %s", self.cameras[i], result.ErrorDescription
                        )
                finally:
                    result.Release()
            trigger_id += 1
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_t = time.monotonic()  # running behind: do not burst to catch up

    def _run_free(self, sink: FrameSink) -> None:
        pylon = _pylon()
        timeout = self.config.grab_timeout_ms
        first_block: dict[int, int] = {}
        while not self._stop.is_set() and self._array.IsGrabbing():
            result = self._array.RetrieveResult(timeout, pylon.TimeoutHandling_Return)
            if result is None or not result.IsValid():
                continue
            try:
                if not result.GrabSucceeded():
                    log.warning("grab failed: %s", result.ErrorDescription)
                    continue
                i = int(result.GetCameraContext())
                frame = self._frame(result, i, None)
                # Counters are compared relative to each camera's first frame (common start).
                base = first_block.setdefault(i, frame.frame_id)
                sink(
                    Frame(
                        frame.image,
                        i,
                        frame.camera_name,
                        frame.frame_id - base,
                        frame.host_timestamp_ns,
                        frame.device_timestamp_ns,
                    )
                )
            finally:
                result.Release()


def emulated_source(
    rig: Rig,
    provider: FrameProvider,
    folder: str | PathLike[str],
    *,
    count: int = 48,
    frame_rate: float = 20.0,
    settings: CameraSettings | None = None,
) -> PylonSource:
    """A software-triggered emulated rig playing ``count`` provider sets written to ``folder``."""
    folders = write_provider_frames(provider, rig, folder, count)
    config = PylonConfig(
        trigger=TriggerMode.SOFTWARE,
        frame_rate=frame_rate,
        settings=settings or CameraSettings(),
        emulated=True,
        image_folders=folders,
    )
    return PylonSource(rig, config)


def image_to_mono(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 view of an (H, W) or (H, W, 3) BGR image."""
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
