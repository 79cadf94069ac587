"""Write a synthetic dataset in exactly the TEMPEH/FaMoS split layout (tempeh-reference §1.2).

Layout under the output folder ``DIR``::

    images/<subject>/<sequence>/<frame>/<sequence>.<frame>.<camera>.png   (1/downscale size)
    calibrations/<subject>/<sequence>/<camera>.tka                        (full resolution)
    scans/<subject>/<sequence>/<sequence>.<frame>.npy                     ((M, 3) float32 mm)
    scans/<subject>/<sequence>/<sequence>.<frame>.extra.npy               ((M,) bool, see below)
    registrations/<subject>/<sequence>/<sequence>.<frame>.ply             (metres)
    lists/{train,val,test}.json                                            ([subj, seq, frame])
    rig.json                                                               (canonical rig, mm)
    synth.json                                                             (the SynthConfig)

As in the released TEMPEH data the images are pre-downsampled (default by 4) while the
``.tka`` files describe the full-resolution cameras; the dataset reader resizes images to the
stage's resize factor relative to the full calibration size. Frames are 6-digit strings.

Cameras. ``.tka`` holds only radial ``(k1, k2)``: tangential terms and ``k3`` of the source rig
are dropped (logged) and the rig actually used is the one read back from the written
``.tka`` files, so images, ``rig.json`` and calibrations agree exactly. Images are rendered with
:class:`render.multiview.MultiViewRenderer` (lens distortion, seeded :class:`Appearance` per
subject and sequence); scans with :func:`inference.scans.simulate_scan`; the performer with
:class:`inference.performer.Performer` (identity per subject, motion per sequence).

Each scan has its point tags beside it: True where the point lies on a surface the template lacks
(the hair cap, the shoulders; :class:`inference.scans.Scan`), so an evaluation can measure the
scan distance on the head alone. Real scans have no such file.

Subjects are split by subject into train / val / test lists (``test_fraction`` and
``val_fraction`` of the subjects, taken from the end; with one subject everything is train).

Writing is resumable: a frame whose image, scan and registration files all exist is skipped;
files are written to a temporary name and renamed, so an interrupted run leaves no partial file.
Frames can be written by several processes at once (``workers``); every frame is seeded by its
own subject, sequence and frame indices, so the files do not depend on the count or the order.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import pickle
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from capture.atomic import write_atomically, write_text_atomically
from capture.camera import Camera, Rig, depth, project
from capture.errors import ConfigError, RenderError
from capture.rig_json import write_rig_json
from capture.rig_tka import read_rig_tka, write_rig_tka
from inference.dataset import scan_tags_path
from inference.head_data import HeadModelData, HeadTemplate
from inference.mesh_io import write_mesh
from inference.performer import Performer, PerformerPose, euler_to_axis_angle
from inference.scans import ScanConfig, simulate_scan
from render.appearance import Appearance
from render.multiview import MultiViewRenderer

log = logging.getLogger(__name__)

SEQUENCE_NAMES = (
    "anger",
    "bareteeth",
    "blow_cheeks",
    "cheeks_in",
    "eyebrow",
    "happiness",
    "head_rotation_left_right",
    "head_rotation_up_down",
    "jaw",
    "kissing",
    "lip_corners_down",
    "lips_back",
    "lips_up",
    "mouth_down",
    "mouth_extreme",
    "mouth_middle",
    "mouth_open",
    "mouth_side",
    "mouth_up",
    "rolling_lips",
    "smile_closed",
    "sadness",
    "surprise",
    "fear",
    "disgust",
    "sentences",
)
"""FaMoS-like sequence names, used in order."""


@dataclass(frozen=True)
class SynthConfig:
    """What :func:`write_synthetic_dataset` writes (saved as ``synth.json``).

    Attributes
    ----------
    rig : str
        Shipped rig name or path (for the record; the rig itself is passed in).
    model : str
        ``"procedural"`` or a FLAME path (for the record).
    subjects, sequences, frames : int
        Counts; frame ``k`` of a sequence is numbered ``k * frame_step``.
    seed : int
        Master seed: identities, motion, appearance, scans.
    downscale : int
        Images are written at the calibration size divided by this (the ``.tka`` stays full size).
    rgb : bool
        RGB images; grayscale (like FaMoS stereo cameras) otherwise.
    fps : float
        Frame rate of the performance, Hz.
    frame_step : int
        Frame-number spacing of the written frames.
    test_fraction, val_fraction : float
        Fractions of subjects held out for test and validation (disjoint from training).
    scan : ScanConfig
        Scan simulation settings.
    static : bool
        Every frame of a sequence shows the pose of time 0 (a still head); only the sensor
        noise and speckle of each frame differ (jitter measurements).
    yaw_deg : float or None
        Fixed head yaw, degrees, replacing the performer's; its sign alternates by subject
        (``+`` for even subjects). Pitch and roll still move.
    translation_mm : tuple of float or None
        Fixed head translation (x, y, z), mm, replacing the performer's (e.g. near the edge of
        the capture volume).
    """

    rig: str = "default16"
    model: str = "procedural"
    subjects: int = 1
    sequences: int = 1
    frames: int = 1
    seed: int = 0
    downscale: int = 4
    rgb: bool = False
    fps: float = 30.0
    frame_step: int = 5
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    scan: ScanConfig = field(default_factory=ScanConfig)
    static: bool = False
    yaw_deg: float | None = None
    translation_mm: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("subjects", "sequences", "frames", "downscale", "frame_step"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", field=name)


@dataclass(frozen=True)
class SynthSummary:
    """What a run did: frame counts, time, bytes written, output folder."""

    out: Path
    frames_written: int
    frames_skipped: int
    seconds: float
    bytes_on_disk: int
    splits: dict[str, int]


def subject_names(count: int) -> list[str]:
    """Subject folder names ``SYNTH_000`` … (sorted order = creation order)."""
    return [f"SYNTH_{i:03d}" for i in range(count)]


def sequence_names(count: int) -> list[str]:
    """The first ``count`` FaMoS-like names, then ``sequence_<k>``."""
    return [SEQUENCE_NAMES[i] if i < len(SEQUENCE_NAMES) else f"sequence_{i}" for i in range(count)]


def split_subjects(subjects: list[str], config: SynthConfig) -> dict[str, list[str]]:
    """Disjoint train/val/test subject lists; test and val are taken from the end."""
    n = len(subjects)
    tf, vf = config.test_fraction, config.val_fraction
    n_test = min(n, max(1, round(tf * n))) if tf > 0 and (n >= 2 or tf >= 1) else 0
    n_val = min(n - n_test, max(1, round(vf * n))) if vf > 0 and n >= 3 else 0
    n_train = n - n_test - n_val
    return {
        "train": subjects[:n_train],
        "val": subjects[n_train : n_train + n_val],
        "test": subjects[n_train + n_val :],
    }


def tka_rig(rig: Rig, folder: Path) -> Rig:
    """Write ``rig`` as ``.tka`` into ``folder`` and return the rig read back (full size).

    Tangential terms and ``k3`` cannot be stored in ``.tka``; they are dropped first.
    """
    cams = []
    dropped = [c.name for c in rig if np.any(c.dist[2:] != 0.0) or c.K[0, 1] != 0.0]
    if dropped:
        log.info("dropping tangential/k3/skew terms (not in .tka) of cameras %s", dropped)
    for cam in rig:
        K = cam.K.copy()
        K[0, 1] = 0.0
        dist = np.array([cam.dist[0], cam.dist[1], 0.0, 0.0, 0.0])
        cams.append(Camera(cam.name, cam.width, cam.height, K, dist, cam.R, cam.t, cam.serial))
    write_rig_tka(Rig(tuple(cams), rig.name, {}), folder)
    back = read_rig_tka(folder)
    serials = {c.name: c.serial for c in rig}
    return Rig(
        tuple(dataclasses.replace(c, serial=serials.get(c.name, "")) for c in back),
        rig.name,
        back.metadata,
    )


def material_weights(template: HeadTemplate) -> np.ndarray:
    """(N, 4) per-vertex region weights for :mod:`render.appearance` from template regions.

    Lips and scalp come from the ``lips``/``scalp`` regions; each eyeball gets a radial eye
    profile around its front-most canonical vertex (sclera 0.3, iris 0.7, pupil 0.95). Neither
    template has an eyebrow region, so brows are placed by :func:`eyebrow_weights` in a band
    above each eye region.
    """
    n = template.num_vertices
    mat = np.zeros((n, 4), dtype=np.float32)
    regions = template.regions
    if "lips" in regions:
        mat[regions["lips"], 1] = 1.0
    if "scalp" in regions:
        mat[regions["scalp"], 3] = 1.0
    for name in ("left_eyeball", "right_eyeball"):
        if name not in regions or not len(regions[name]):
            continue
        idx = regions[name]
        v = template.vertices[idx]
        r = np.linalg.norm(v - v[np.argmax(v[:, 2])], axis=1)
        mat[idx, 2] = np.where(r < 2.0, 0.95, np.where(r < 6.0, 0.7, 0.3))
    mat[:, 0] = eyebrow_weights(template)
    return mat


def eyebrow_weights(
    template: HeadTemplate, gap_mm: float = 3.0, height_mm: float = 9.0, fade_mm: float = 3.0
) -> np.ndarray:
    """(N,) float32 soft eyebrow weights: a band above each eye region, on the front of the face.

    A vertex belongs to the band of an eye region when its canonical x lies within the region's
    x range (extended by ``fade_mm``) and its y lies ``gap_mm`` to ``gap_mm + height_mm`` above
    the region's top; weights fade linearly over ``fade_mm`` at the band's borders. Eyeballs and
    vertices behind the region (more than 15 mm deeper than its mean) are excluded.
    """
    v = template.vertices
    weights = np.zeros(len(v), dtype=np.float32)
    regions = template.regions
    excluded = np.zeros(len(v), dtype=bool)
    for name in ("left_eyeball", "right_eyeball"):
        if name in regions:
            excluded[regions[name]] = True
    for name in ("left_eye_region", "right_eye_region"):
        if name not in regions or not len(regions[name]):
            continue
        eye = v[regions[name]]
        x0, x1 = eye[:, 0].min(), eye[:, 0].max()
        y0 = eye[:, 1].max() + gap_mm
        y1 = y0 + height_mm

        def ramp(value: np.ndarray, lo: float, hi: float) -> np.ndarray:
            inside = np.minimum(value - lo, hi - value) / fade_mm
            return np.clip(inside + 1.0, 0.0, 1.0)

        w = ramp(v[:, 0], x0, x1) * ramp(v[:, 1], y0, y1)
        w[(v[:, 2] < eye[:, 2].mean() - 15.0) | excluded] = 0.0
        weights = np.maximum(weights, w.astype(np.float32))
    return weights


def open_view_renderer(rig: Rig, downscale: int, rgb: bool) -> MultiViewRenderer:
    """The renderer :func:`render_views` draws with (create and use on one thread)."""
    return MultiViewRenderer(rig, downscale=downscale, channels=3 if rgb else 1)


def render_views(
    renderer: MultiViewRenderer,
    vertices: np.ndarray,
    template: HeadTemplate,
    material: np.ndarray,
    appearance_seed: int,
    frame: int,
) -> np.ndarray:
    """Render one image per camera, with lens distortion and a seeded appearance.

    The single place that calls the renderer (:class:`render.multiview.MultiViewRenderer`).

    Returns
    -------
    np.ndarray
        (V, H, W) uint8 grayscale or (V, H, W, 3) uint8 RGB, at the renderer's downscale.
    """
    out = renderer.render(
        vertices,
        template.faces,
        canonical=template.vertices,
        material=material,
        appearance=Appearance.random(appearance_seed),
        frame=frame,
    )
    return out.images


def _paths(out: Path, subject: str, sequence: str, frame: str, names: list[str]) -> dict:
    img_dir = out / "images" / subject / sequence / frame
    scan = out / "scans" / subject / sequence / f"{sequence}.{frame}.npy"
    return {
        "images": [img_dir / f"{sequence}.{frame}.{name}.png" for name in names],
        "scan": scan,
        "scan_extra": scan_tags_path(scan),
        "registration": out / "registrations" / subject / sequence / f"{sequence}.{frame}.ply",
    }


def write_synthetic_dataset(
    rig: Rig,
    model: HeadModelData,
    out: str | Path,
    config: SynthConfig,
    progress: bool = True,
    preview: bool = False,
    workers: int | None = 1,
) -> SynthSummary:
    """Render, scan and register a synthetic performance into ``out`` (see module docstring).

    Parameters
    ----------
    rig : Rig
        Full-resolution cameras, world mm.
    model : HeadModelData
        The head (procedural or FLAME), mm.
    out : str or Path
        Output folder (created; existing complete frames are skipped).
    config : SynthConfig
        Counts, seeds and options.
    progress : bool
        Show a tqdm progress bar.
    preview : bool
        Also write ``preview.png``: a contact sheet of all views of the first frame with the
        projected registration overlaid.
    workers : int or None
        Processes that render frames side by side (each with its own GL context); None:
        :func:`default_workers`. The files are the same byte for byte whatever the count:
        every frame is seeded by its own indices.

    Returns
    -------
    SynthSummary

    Raises
    ------
    ConfigError
        ``workers`` below 1, or ``out`` was written with other settings (see ``RESIZABLE``).
    RenderError
        A worker process died (killed, out of memory); the frames finished so far are kept.
    """
    from tqdm import tqdm

    workers = default_workers() if workers is None else workers
    if int(workers) < 1:
        raise ConfigError(f"must be >= 1, got {workers}", field="workers")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    subjects = subject_names(config.subjects)
    sequences = sequence_names(config.sequences)
    frames = [f"{k * config.frame_step:06d}" for k in range(config.frames)]
    splits = split_subjects(subjects, config)
    cfg = json.loads(json.dumps(dataclasses.asdict(config)))
    _check_resume(out / "synth.json", cfg)
    write_text_atomically(out / "synth.json", json.dumps(cfg, indent=2) + "\n")
    bar = tqdm(
        total=len(subjects) * len(sequences) * len(frames), disable=not progress, unit="frame"
    )
    jobs: list[_FrameJob] = []
    skipped = 0
    for si, subject in enumerate(subjects):
        for qi, sequence in enumerate(sequences):
            used = tka_rig(rig, out / "calibrations" / subject / sequence)
            if si == 0 and qi == 0:
                write_rig_json(used, out / "rig.json")
            for frame in frames:
                paths = _paths(out, subject, sequence, frame, used.names)
                files = [
                    *paths["images"],
                    paths["scan"],
                    paths["scan_extra"],
                    paths["registration"],
                ]
                if all(p.is_file() for p in files):
                    skipped += 1
                else:
                    jobs.append(_FrameJob(si, qi, int(frame), used, paths))
    bar.update(skipped)
    for _ in _write_frames(jobs, model, config, workers):
        bar.update(1)
    bar.close()
    lists = {
        name: [[s, q, f] for s in subs for q in sequences for f in frames]
        for name, subs in splits.items()
    }
    for name, items in lists.items():
        write_text_atomically(out / "lists" / f"{name}.json", json.dumps(items) + "\n")
    if preview:
        write_preview(out, subjects[0], sequences[0], frames[0], out / "preview.png")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    summary = SynthSummary(
        out=out,
        frames_written=len(jobs),
        frames_skipped=skipped,
        seconds=time.perf_counter() - start,
        bytes_on_disk=size,
        splits={k: len(v) for k, v in lists.items()},
    )
    log.info("synth: %s", summary)
    return summary


@dataclass(frozen=True)
class _FrameJob:
    """One frame to write: its subject, sequence and frame number, the rig read back from the
    sequence's ``.tka`` files, and the paths of its files (:func:`_paths`)."""

    subject: int
    sequence: int
    frame: int
    rig: Rig
    paths: dict


class _FrameWriter:
    """Renders, scans and registers frames of one dataset; owns a GL context, so it is made,
    used and closed on one thread (one per worker process)."""

    def __init__(self, model: HeadModelData, config: SynthConfig) -> None:
        self.model, self.config = model, config
        self.material = material_weights(model.template)
        self._renderer: MultiViewRenderer | None = None

    def __call__(self, job: _FrameJob) -> None:
        config, template, paths = self.config, self.model.template, job.paths
        if self._renderer is None or not self._renderer.rig.equals(
            job.rig.scaled(config.downscale)
        ):
            self.close()
            self._renderer = open_view_renderer(job.rig, config.downscale, config.rgb)
        seq_seed = config.seed * 1000003 + job.subject * 1009 + job.sequence
        performer = Performer(
            self.model, seed=seq_seed, subject_seed=config.seed * 7919 + job.subject
        )
        pose = _posed(performer, config, job.subject, job.frame)
        verts = performer.pose_vertices(pose)
        images = render_views(self._renderer, verts, template, self.material, seq_seed, job.frame)
        for path, img in zip(paths["images"], images, strict=True):
            write_atomically(path, lambda p, img=img: Image.fromarray(img).save(p, format="PNG"))
        rng = np.random.default_rng([config.seed, job.subject, job.sequence, job.frame])
        scan = simulate_scan(
            job.rig, verts, template, pose.translation, rng, config.scan, self._renderer.ctx
        )
        write_atomically(paths["scan"], lambda p: _save_npy(p, scan.points))
        write_atomically(paths["scan_extra"], lambda p: _save_npy(p, scan.is_extra, bool))
        write_atomically(
            paths["registration"], lambda p: write_mesh(p, verts, template.faces, units="m")
        )

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.release()
            self._renderer = None


def default_workers() -> int:
    """Frame-writing processes to use by default: one per core, at most 8 (each holds the head
    model and a GL context, about 0.5 GB)."""
    return max(1, min(8, os.cpu_count() or 1))


_worker_writer: _FrameWriter | None = None
"""The frame writer of a worker process (set by :func:`_start_worker`)."""


def _start_worker(setup: Path) -> None:
    global _worker_writer
    import torch

    torch.set_num_threads(1)  # the processes share the cores; one thread each
    # the parent's own pickle of (model, config), in its private temporary folder
    model, config = pickle.loads(setup.read_bytes())
    _worker_writer = _FrameWriter(model, config)


def _write_in_worker(job: _FrameJob) -> None:
    assert _worker_writer is not None, "worker started without _start_worker"
    _worker_writer(job)


def _write_frames(
    jobs: list[_FrameJob], model: HeadModelData, config: SynthConfig, workers: int
) -> Iterator[None]:
    """Write ``jobs``, yielding once per finished frame; in ``workers`` spawned processes
    when there is more than one (and more than one job). A failed frame stops the run with its
    error (the frames already written stay: every file is written atomically)."""
    workers = min(int(workers), len(jobs))
    if workers <= 1:
        writer = _FrameWriter(model, config)
        try:
            for job in jobs:
                writer(job)
                yield
        finally:
            writer.close()
        return
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # a spawned worker is re-running the caller's main module: without this it would
        # start workers of its own and never read the job its parent is sending
        raise ConfigError(
            "a synth worker process is starting and re-ran the script that called "
            "write_synthetic_dataset; put that script's main code under "
            "`if __name__ == '__main__':` (or pass workers=1)",
            field="workers",
        )
    # The model goes through a file, not the pool's start arguments: a worker that dies while
    # starting would leave the parent blocked writing megabytes into its pipe.
    with tempfile.TemporaryDirectory(prefix="tempeh-synth-") as folder:
        setup = Path(folder) / "setup.pickle"
        setup.write_bytes(pickle.dumps((model, config), protocol=pickle.HIGHEST_PROTOCOL))
        try:
            # spawn, not fork: a forked child would inherit the parent's GL and torch threads
            with ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(setup,),
            ) as pool:
                pending = [pool.submit(_write_in_worker, job) for job in jobs]
                try:
                    for done in as_completed(pending):
                        done.result()  # the first frame that failed stops the run with its error
                        yield
                finally:
                    for future in pending:
                        future.cancel()
        except (BrokenProcessPool, BrokenPipeError) as exc:
            raise RenderError(
                f"a synth worker process died ({type(exc).__name__}: {exc}); the frames "
                "finished so far are kept: run again to resume (with fewer workers if memory ran "
                "out; a calling script needs an `if __name__ == '__main__':` guard)"
            ) from exc


RESIZABLE = ("subjects", "sequences", "frames")
"""Settings a resumed run may change (it then adds or lists more frames)."""


def _posed(performer: Performer, config: SynthConfig, subject: int, frame: int) -> PerformerPose:
    """The performer's pose for ``frame`` with the config's overrides applied."""
    pose = performer.frame(0.0 if config.static else frame / config.fps)
    changes = {}
    if config.yaw_deg is not None:
        yaw = config.yaw_deg * (1.0 if subject % 2 == 0 else -1.0)
        changes["yaw_deg"] = yaw
        changes["global_pose"] = euler_to_axis_angle(
            *np.deg2rad([yaw, pose.pitch_deg, pose.roll_deg])
        )
    if config.translation_mm is not None:
        changes["translation"] = np.asarray(config.translation_mm, dtype=np.float64)
    return dataclasses.replace(pose, **changes) if changes else pose


def _check_resume(path: Path, cfg: dict) -> None:
    """Refuse to resume a folder written with other settings (frames would not match)."""
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the existing config: {exc}", path=path) from exc
    defaults = dataclasses.asdict(SynthConfig())
    for key, value in cfg.items():
        # a key added to SynthConfig later is absent from older folders: its default applies
        if key not in RESIZABLE and old.get(key, defaults.get(key)) != value:
            raise ConfigError(
                f"folder was written with {key}={old.get(key)!r}, now {value!r}; "
                "use another --out or the same settings",
                path=path,
                field=key,
            )


def _save_npy(path: Path, values: np.ndarray, dtype: type = np.float32) -> None:
    with open(path, "wb") as fh:
        np.save(fh, np.asarray(values, dtype=dtype))


def write_preview(
    out: Path, subject: str, sequence: str, frame: str, target: Path, columns: int = 4
) -> Path:
    """Contact sheet of every view of one written frame with the registration's vertices drawn.

    Reads the frame back from ``out`` (images, ``.tka``, registration), so it also checks the
    written layout: dots land on the head when images and calibrations agree.

    Returns
    -------
    Path
        ``target`` (PNG).
    """
    from capture.rig_tka import read_rig_tka
    from inference.mesh_io import read_mesh

    full = read_rig_tka(out / "calibrations" / subject / sequence)
    verts, _ = read_mesh(_paths(out, subject, sequence, frame, full.names)["registration"])
    tiles = []
    for cam, path in zip(
        full, _paths(out, subject, sequence, frame, full.names)["images"], strict=True
    ):
        img = Image.open(path).convert("RGB")
        small = cam.scaled(cam.width / img.width) if img.width != cam.width else cam
        uv = project(small, verts)
        front = depth(small, verts) > 0
        draw = ImageDraw.Draw(img)
        for u, v in uv[front][:: max(1, len(uv) // 3000)]:
            draw.point((float(u), float(v)), fill=(0, 255, 0))
        draw.text((4, 4), cam.name, fill=(255, 255, 0))
        tiles.append(img)
    w, h = tiles[0].size
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w, rows * h))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * w, (i // columns) * h))
    target.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(target)
    log.info("wrote preview %s", target)
    return target


class PerformerFrames:
    """A frame provider for the emulated cameras: the synthetic performer filmed by ``rig``.

    Calling it with a set index returns one image per rig camera (``capture.pattern``'s
    ``FrameProvider`` protocol), rendered with lens distortion and a seeded appearance at time
    ``set_index / fps``. The GL context is created on the first call, on the calling thread, and
    must be used and released (:meth:`close`) on that thread.

    Parameters
    ----------
    rig : capture.camera.Rig
        Cameras at the size the emulator delivers.
    model_data : HeadModelData
        The head to animate (procedural or FLAME).
    seed : int
        Motion, identity and appearance seed.
    fps : float
        Sets per second of the emulated capture (the performer's clock).
    rgb : bool
        RGB images instead of grayscale.
    """

    def __init__(
        self,
        rig: Rig,
        model_data: HeadModelData,
        seed: int = 0,
        fps: float = 20.0,
        rgb: bool = False,
    ) -> None:
        if fps <= 0:
            raise ConfigError(f"fps must be positive, got {fps}", field="fps")
        self.rig, self.fps, self.rgb, self.seed = rig, float(fps), rgb, int(seed)
        self.template = model_data.template
        self.material = material_weights(self.template)
        self.performer = Performer(model_data, seed=seed, subject_seed=seed)
        self._renderer: MultiViewRenderer | None = None

    def __call__(self, set_index: int) -> list[np.ndarray]:
        if self._renderer is None:
            self._renderer = open_view_renderer(self.rig, 1, self.rgb)
        vertices = self.performer.vertices(set_index / self.fps)
        images = render_views(
            self._renderer, vertices, self.template, self.material, self.seed, set_index
        )
        return list(images)

    def close(self) -> None:
        """Release the GL context (on the thread that rendered)."""
        if self._renderer is not None:
            self._renderer.release()
            self._renderer = None
