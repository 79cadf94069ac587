"""``tempeh rig``: check and convert camera calibrations.

``tempeh rig check FILE_OR_FOLDER [--units mm|m|cm] [--json]`` prints the rig report (exit 1
when it lists problems); ``tempeh rig convert IN OUT [--units ...]`` rewrites a rig in the
format of ``OUT``. A shipped rig name (``default16``, ``test4``) is accepted wherever a path is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

UNITS = ("mm", "cm", "m")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``rig`` command group to the ``tempeh`` parser."""
    p = subparsers.add_parser("rig", help="check and convert camera calibrations")
    sub = p.add_subparsers(dest="rig_command", metavar="RIG_COMMAND", required=True)
    check = sub.add_parser("check", help="validate a rig and report its geometry")
    check.add_argument(
        "path", help="rig file (.json/.yaml/.yml/.xml/.tka), .tka folder or shipped rig name"
    )
    check.add_argument("--units", choices=UNITS, help="unit of translations the file lacks")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(handler=_check)
    convert = sub.add_parser("convert", help="convert a rig to the format of OUT")
    convert.add_argument("input", help="rig file, .tka folder or shipped rig name")
    convert.add_argument("output", help="output .json/.yaml/.yml/.xml file or .tka folder")
    convert.add_argument("--units", choices=UNITS, help="unit of translations the input lacks")
    convert.set_defaults(handler=_convert)


def _resolve(arg: str) -> Path:
    from capture.default_rigs import SHIPPED_RIGS, shipped_rig_path

    path = Path(arg)
    if not path.exists() and arg in SHIPPED_RIGS:
        return shipped_rig_path(arg)
    return path


def _check(args: argparse.Namespace) -> int:
    from capture.rig_io import read_rig
    from capture.rig_report import check_rig, format_report

    path = _resolve(args.path)
    report = check_rig(read_rig(path, args.units))
    if args.json:
        print(json.dumps({"path": str(path), **report.to_dict()}, indent=2))
    else:
        print(f"{path}:")
        print(format_report(report))
    return 0 if report.ok else 1


def _convert(args: argparse.Namespace) -> int:
    from capture.rig_io import read_rig, write_rig

    rig = read_rig(_resolve(args.input), args.units)
    write_rig(rig, args.output)
    print(f"wrote {args.output} ({len(rig)} cameras)")
    return 0
