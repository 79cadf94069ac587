"""A preview video of live results: the mesh from a fixed orbit camera beside a camera image.

Threads: :class:`PreviewVideo` runs one thread (``preview-video``) that owns its EGL context
and the H.264 encoder; :meth:`PreviewVideo.submit` may be called from any thread (the
inference worker's) and never blocks: when the thread falls behind by ``max_pending`` frames
a frame is dropped and counted.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

TILE = 360
"""Height of the preview in pixels (the mesh tile is square)."""
ORBIT = {"target": (0.0, 0.0, 0.0), "distance": 750.0, "azimuth": 30.0, "elevation": 10.0}
"""The fixed camera: the default rigs' head centre seen from the front-right, mm and degrees."""
FOV_Y = 30.0


class PreviewVideo:
    """Encodes one video frame per submitted result into an MP4 (H.264, yuv420p).

    Parameters
    ----------
    path : Path
        The ``.mp4`` to write.
    faces : np.ndarray
        (F, 3) int triangles of the template.
    fps : float
        Frame rate written in the container.
    banner : str, optional
        Text burnt into every frame (e.g. the UNTRAINED label), red.
    max_pending : int
        Frames waiting for the encoder before new ones are dropped.
    """

    def __init__(
        self,
        path: Path,
        faces: np.ndarray,
        fps: float,
        banner: str | None = None,
        max_pending: int = 64,
    ) -> None:
        self.path, self.faces, self.banner = Path(path), np.asarray(faces), banner
        self.fps = max(1, round(fps))
        self.frames = self.dropped = 0
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(max_pending)
        self._thread = threading.Thread(target=self._run, name="preview-video", daemon=True)
        self._thread.start()

    def submit(self, vertices: np.ndarray, image: np.ndarray | None, caption: str) -> None:
        """Queue one frame: (N, 3) mm vertices, a camera image (grey or BGR) and a caption."""
        try:
            self._queue.put_nowait((vertices, image, caption))
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 30.0) -> int:
        """Encode what is queued, finish the file and return the number of frames written."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("preview video did not finish within %.0f s", timeout)
        if self.error is not None:
            log.error("preview video failed: %s", self.error)
        return self.frames

    def _run(self) -> None:
        import av

        from render.camera_math import orbit_view, perspective
        from render.context import create_headless_context
        from render.offscreen import OffscreenRenderer

        container = stream = renderer = None
        try:
            renderer = OffscreenRenderer(TILE, TILE, ctx=create_headless_context(), samples=4)
            view = orbit_view(
                ORBIT["target"], ORBIT["distance"], ORBIT["azimuth"], ORBIT["elevation"]
            )
            projection = perspective(FOV_Y, 1.0, 100.0, 3000.0)
            while True:
                item = self._queue.get()
                if item is None:
                    break
                vertices, image, caption = item
                tile = renderer.render(
                    view, projection, vertices, self.faces, background=(40, 40, 48)
                )
                frame = self._compose(tile, image, caption)
                if container is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    container = av.open(str(self.path), "w")
                    stream = container.add_stream("libx264", rate=Fraction(self.fps, 1))
                    stream.width, stream.height = frame.shape[1], frame.shape[0]
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"preset": "ultrafast", "crf": "23"}
                video = av.VideoFrame.from_ndarray(frame, format="rgb24")
                for packet in stream.encode(video):
                    container.mux(packet)
                self.frames += 1
        except Exception as exc:  # reported by close(); the live run goes on without preview
            log.exception("preview video failed")
            self.error = exc
        finally:
            if container is not None:
                try:
                    for packet in stream.encode():
                        container.mux(packet)
                finally:
                    container.close()
            if renderer is not None:
                ctx = renderer.ctx
                renderer.release()
                ctx.release()

    def _compose(self, tile: np.ndarray, image: np.ndarray | None, caption: str) -> np.ndarray:
        """Mesh tile | camera image (height ``TILE``), captions burnt in; even size, RGB."""
        parts = [tile]
        if image is not None:
            rgb = (
                cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
                if image.ndim == 2
                else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            )
            w = max(2, round(rgb.shape[1] * TILE / rgb.shape[0]))
            parts.append(cv2.resize(rgb, (w, TILE), interpolation=cv2.INTER_AREA))
        frame = np.concatenate(parts, axis=1)
        width = frame.shape[1] - frame.shape[1] % 2
        pil = Image.fromarray(np.ascontiguousarray(frame[:, :width]))
        draw = ImageDraw.Draw(pil)
        draw.text((8, TILE - 20), caption, fill=(255, 255, 255))
        if self.banner:
            draw.rectangle((0, 0, width, 22), fill=(160, 0, 0))
            draw.text((8, 5), self.banner, fill=(255, 255, 255))
        return np.asarray(pil)


def caption_for(sequence: int, latency_ms: float, label: str) -> str:
    """The caption line of a preview frame."""
    lat = "?" if math.isnan(latency_ms) else f"{latency_ms:.0f} ms"
    return f"set {sequence}  latency {lat}  model {label}"
