"""Argument types for the subcommands: every number and name is checked while the command line is parsed.

A value out of range must stop a command before it starts a simulator, opens a file or makes a call, and the
message must name the option and what it accepts. argparse does both when the check is the option's ``type``:
``voorbeelden batch: error: argument --max-retries: must be an integer >= 0, got '-1'`` and exit status 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable


def _range(lo: float | None, hi: float | None, lo_open: bool) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"<= {hi:g}")
    return " and ".join(parts)


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An integer in [lo, hi]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None  # type: ignore[assignment]
        if value is None or (lo is not None and value < lo) or (hi is not None and value > hi):
            rng = _range(lo, hi, False)
            raise argparse.ArgumentTypeError(f"must be an integer{' ' + rng if rng else ''}, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def number(
    lo: float | None = None, hi: float | None = None, *, lo_open: bool = False
) -> Callable[[str], float]:
    """A finite number in [lo, hi] (or (lo, hi] with ``lo_open``): nan and inf are never a setting."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        bad = (
            not math.isfinite(value)
            or (lo is not None and (value < lo or (lo_open and value == lo)))
            or (hi is not None and value > hi)
        )
        if bad:
            rng = _range(lo, hi, lo_open)
            raise argparse.ArgumentTypeError(
                f"must be a finite number{' ' + rng if rng else ''}, got {text!r}"
            )
        return value

    parse.__name__ = "number"
    return parse


positive = number(0, lo_open=True)
non_negative = number(0)
at_least_one = integer(1)
count = integer(0)


def one_of(names: Iterable[str] | Callable[[], Iterable[str]], what: str = "value") -> Callable[[str], str]:
    """One of ``names``; unlike ``choices=`` the message keeps a long list readable. ``names`` may be a
    function: it is then called when a value is checked, so ``--help`` never imports what lists the names."""

    def parse(text: str) -> str:
        allowed = tuple(names() if callable(names) else names)
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"unknown {what} {text!r}; use one of {', '.join(allowed)}")
        return text

    parse.__name__ = what
    return parse


class Given(argparse.Action):
    """Stores the value like ``store`` and remembers that the option was on the command line, so a command can
    refuse an option that has no effect in the mode it runs in (a default value is never "given")."""

    def __call__(
        self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: object, opt: object = None
    ) -> None:
        setattr(ns, self.dest, values)
        ns.__dict__.setdefault("_given", {})[self.dest] = opt


class GivenFlag(Given):
    """``store_true`` that remembers it was given (see :class:`Given`)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        kwargs.setdefault("default", False)
        super().__init__(option_strings, dest, nargs=0, **kwargs)  # type: ignore[arg-type]

    def __call__(
        self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: object, opt: object = None
    ) -> None:
        super().__call__(parser, ns, True, opt)


def given(args: argparse.Namespace) -> dict[str, str]:
    """The options declared with :class:`Given`/:class:`GivenFlag` that were on the command line:
    ``{dest: the option string used}``."""
    return dict(getattr(args, "_given", {}))


def check_utf8(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Exit 2 naming the argument and the byte when one is not valid UTF-8. Python hands such bytes over as
    lone surrogates (``\udcff`` for 0xff), which a later check would call "control characters"."""
    for n, arg in enumerate(argv, start=1):
        bad = next((c for c in arg if "\udc80" <= c <= "\udcff"), None)
        if bad is not None:
            shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            parser.error(
                f"argument {n} ({shown!r}) is not valid UTF-8 (byte 0x{ord(bad) - 0xDC00:02x}); "
                "give text in UTF-8 (a terminal or script in another encoding sends other bytes)"
            )


def profile_names() -> list[str]:
    """The simulator's profile names, in their defined order (imports the profiles, and numpy, when called)."""
    from voorbeelden.sim.profiles import PROFILES

    return list(PROFILES)


def add_embedded_sim_options(p: argparse._ActionsContainer, profile_help: str, time_scale_help: str) -> None:
    """``--sim-profile`` and ``--time-scale`` of the simulator a command starts when no endpoint is set."""
    p.add_argument(
        "--sim-profile",
        type=one_of(profile_names, "profile"),
        default="definitie-app",
        help=profile_help,
        action=Given,
    )
    p.add_argument("--time-scale", type=positive, default=0.1, help=time_scale_help, action=Given)
