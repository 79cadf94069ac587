"""Regenerate the README pictures by running the real commands: ``python -m app.readme_images``.

Writes into ``resources/readme/``:

- ``procedural_heads.png``: ``tempeh demo --png-only`` (the procedural head: neutral, smile,
  jaw open; front, three-quarter and side views);
- ``synth_preview.jpg``: ``tempeh synth --preview`` for one frame of the default 16-camera rig
  (images at 1/4 size, as TEMPEH's released data), with the registration projected into every
  view (saved as JPEG to keep the repository small).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

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
    return [out / "procedural_heads.png", out / "synth_preview.jpg"]


if __name__ == "__main__":
    for path in regenerate():
        print(f"wrote {path}")
    sys.exit(0)
