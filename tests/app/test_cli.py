"""The ``tempeh`` command line as a user runs it: a real subprocess of the installed script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from app.cli import main, package_version


def tempeh(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("tempeh", path=os.path.dirname(sys.executable)) or "tempeh"
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_help_lists_the_subcommands() -> None:
    result = tempeh("--help")
    assert result.returncode == 0, result.stderr
    for command in ("info", "rig", "head", "demo"):
        assert command in result.stdout


def test_version_matches_the_distribution() -> None:
    result = tempeh("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"tempeh {package_version()}"
    assert package_version() == "0.1.0"


def test_info_json_reports_versions_devices_gl_and_cameras() -> None:
    env = dict(os.environ, PYLON_CAMEMU="3")
    result = tempeh("info", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["packages"]["torch"].startswith("2.13.0")
    assert report["torch_devices"][0].startswith("cpu")
    assert report["opengl"] and not report["opengl"].startswith("unavailable (")
    assert report["basler"]["cameras"] == 3
    assert report["basler"]["emulated"] == "3"


def test_headless_commands_never_import_qt() -> None:
    code = (
        "import sys; from app.cli import build_parser; build_parser(); "
        "print(any(m.startswith('PySide6') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_unknown_command_exits_with_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
