"""``voorbeelden`` command line: a thin layer that parses options and calls library functions.

Each subcommand lives in ``voorbeelden/commands/<name>.py`` (the command is the module name with ``-`` for
``_``) and declares what this file needs to build its parser: ``HELP`` (one line for the command list),
optionally ``DESCRIPTION`` and ``EPILOG``, ``add_arguments(parser)`` and ``run(args) -> exit code``.
Subcommands are discovered, so adding one never touches this file; parsers are built here, the same way for
every command.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import textwrap
from types import ModuleType
from typing import Any

import voorbeelden.commands as commands
from voorbeelden import __version__

_WIDTH = 100


def add_commands(sub: Any, package: ModuleType) -> None:
    """One subparser per module of ``package`` (``_``-prefixed modules skipped), built the same way for
    every command; a command that is itself a group (``voorbeelden bench NAME``) calls this for its own."""
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        p = sub.add_parser(
            info.name.replace("_", "-"),
            help=module.HELP,
            # Descriptions are one paragraph (wrapped here); epilogs are tables (kept as written).
            description=textwrap.fill(getattr(module, "DESCRIPTION", module.HELP), width=_WIDTH),
            epilog=getattr(module, "EPILOG", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(func=module.run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voorbeelden",
        description="Generate Dutch voorbeelden for a term with an LLM, and measure call strategies honestly.",
    )
    parser.add_argument("--version", action="version", version=f"voorbeelden-lab {__version__}")
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND"), commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    from voorbeelden.commands._options import check_utf8

    check_utf8(parser, sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        # Finished work is written as it completes (JSONL, reports); say so instead of a traceback.
        print("\ninterrupted: stopped on Ctrl-C; work finished so far is kept", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
