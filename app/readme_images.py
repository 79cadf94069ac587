"""Regenerate the README pictures by running the real commands: ``python -m app.readme_images``.

Writes into ``resources/readme/``:

- ``procedural_heads.png``: ``tempeh demo --png-only`` (the procedural head: neutral, smile,
  jaw open; front, three-quarter and side views);
- ``synth_preview.jpg``: ``tempeh synth --preview`` for one frame of the default 16-camera rig
  (images at 1/4 size, as TEMPEH's released data), with the registration projected into every
  view (saved as JPEG to keep the repository small);
- ``studio.jpg``: the studio window (``tempeh studio --screenshot``) live on the emulated rig
  with the shipped model, under ``xvfb-run``;
- ``live_preview.jpg``: the last frame of ``tempeh live --headless``'s preview video.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import tempfile
from pathlib import Path

import av
from PIL import Image

from app.cli import main

README_IMAGES = Path(__file__).resolve().parents[1] / "resources" / "readme"


def regenerate(out: Path = README_IMAGES) -> list[Path]:
    """Run the commands and return the pictures written."""
    out.mkdir(parents=True, exist_ok=True)
    if main(["demo", "--out", str(out), "--png-only"]) != 0:
        raise SystemExit("tempeh demo failed")
    with tempfile.TemporaryDirectory() as tmp:
        args = ["synth", "--rig", "default16", "--subjects", "1", "--sequences", "1"]
        args += ["--frames", "1", "--seed", "3", "--downscale", "4", "--preview"]
        if main([*args, "--no-progress", "--out", tmp]) != 0:
            raise SystemExit("tempeh synth failed")
        Image.open(Path(tmp) / "preview.png").convert("RGB").save(
            out / "synth_preview.jpg", quality=85
        )
        shot = Path(tmp) / "studio.png"
        studio = [sys.executable, "-m", "app.cli", "studio", "--source", "emulated"]
        studio += ["--size", "800x600", "--takes-dir", tmp, "--quit-after", "60"]
        screen = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24"]
        subprocess.run([*screen, *studio, "--screenshot", str(shot)], check=True)
        Image.open(shot).convert("RGB").save(out / "studio.jpg", quality=85)
        live = Path(tmp) / "live"
        args = ["live", "--headless", "--source", "emulated", "--size", "800x600"]
        if main([*args, "--seconds", "8", "--no-record", "--out", str(live)]) != 0:
            raise SystemExit("tempeh live failed")
        with av.open(str(live / "preview.mp4")) as video:
            last = collections.deque(video.decode(video=0), maxlen=1)[0]
        last.to_image().convert("RGB").save(out / "live_preview.jpg", quality=85)
    return [out / name for name in README_NAMES]


README_NAMES = ("procedural_heads.png", "synth_preview.jpg", "studio.jpg", "live_preview.jpg")


if __name__ == "__main__":
    for path in regenerate():
        print(f"wrote {path}")
    sys.exit(0)
