"""The ``tempeh`` command line.

Each command group lives in its own module under ``app/`` with a ``register(subparsers)``
function; handlers import heavy packages (torch, moderngl, Qt) lazily so ``tempeh --help`` is
fast and headless commands never load Qt. Errors derived from :class:`StudioError` are printed
as one clear line and exit with status 2; nothing else is caught.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from capture.errors import StudioError

COMMAND_MODULES = (
    "app.cmd_info",
    "app.cmd_rig",
    "app.cmd_head",
    "app.cmd_capture",
    "app.cmd_synth",
    "app.cmd_model",
    "app.cmd_train",
    "app.cmd_export",
    "app.cmd_pipeline",
    "app.cmd_studio",
)
"""Modules that add subcommands, in the order they appear in ``--help``."""


def package_version() -> str:
    """The installed version of the ``tempeh-studio`` distribution."""
    try:
        return version("tempeh-studio")
    except PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="tempeh",
        description="Real-time multi-view head capture studio (TEMPEH-compatible).",
    )
    parser.add_argument("--version", action="version", version=f"tempeh {package_version()}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tempeh`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except StudioError as exc:
        print(f"tempeh {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
