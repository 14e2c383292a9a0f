"""``voorbeelden`` command line: a thin layer that parses options and calls library functions.

Each subcommand lives in ``voorbeelden/commands/<name>.py`` and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` (a callable taking the parsed args and returning an exit code). Subcommands are
discovered, so adding one never touches this file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from voorbeelden import __version__


def build_parser() -> argparse.ArgumentParser:
    import voorbeelden.commands as commands

    parser = argparse.ArgumentParser(
        prog="voorbeelden",
        description="Generate Dutch voorbeelden for a term with an LLM, and measure call strategies honestly.",
    )
    parser.add_argument("--version", action="version", version=f"voorbeelden-lab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"voorbeelden.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
