"""The ``stalwart`` command.

Only argument parsing lives here, with the standard library: each command imports what it
needs (rich, httpx: the ``cli`` extra) when it runs, so ``stalwart --version`` and
``import stalwart.cli`` stay light.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from .. import __version__
from ._plan import DEFAULT_DURATION, DEFAULT_WORKERS, MAX_DURATION, MAX_WORKERS, MIN_DURATION

N = TypeVar("N", int, float)

__all__ = ("main",)

EXIT_MISSING_EXTRA = 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``stalwart`` with ``argv`` (default: sys.argv[1:]); returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse only allows known ones


def _demo(args: argparse.Namespace) -> int:
    try:
        from ._demo import command
    except ModuleNotFoundError as exc:
        if exc.name not in ("rich", "httpx"):
            raise
        print(
            f"stalwart demo needs the 'cli' extra ({exc.name} is missing): "
            "pip install 'stalwart[cli]'",
            file=sys.stderr,
        )
        return EXIT_MISSING_EXTRA
    return command(args.duration, args.workers, as_json=args.json)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stalwart", description="Fault tolerance for Python services."
    )
    parser.add_argument("--version", action="version", version=f"stalwart {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser(
        "demo",
        help="watch a circuit breaker ride out a hanging upstream, live",
        description=(
            "Start a local upstream on 127.0.0.1 that answers, then hangs (accepts, reads, never "
            "answers), then recovers; call it from workers with and without a circuit breaker; "
            "show both sides live and judge the breaker at the end. Exit status 0 when the "
            "verdict holds, 1 when it does not, 130 when interrupted."
        ),
    )
    demo.add_argument(
        "--duration",
        type=_duration,
        default=DEFAULT_DURATION,
        metavar="SECONDS",
        help=f"length of the run; the phases scale with it (default {DEFAULT_DURATION:g}, "
        f"minimum {MIN_DURATION:g})",
    )
    demo.add_argument(
        "--workers",
        type=_workers,
        default=DEFAULT_WORKERS,
        metavar="N",
        help=f"concurrent workers per side (default {DEFAULT_WORKERS}, at most {MAX_WORKERS})",
    )
    demo.add_argument(
        "--json",
        action="store_true",
        help="print the summary as JSON on stdout (progress on stderr)",
    )
    return parser


def _bounded(
    parse: Callable[[str], N], low: N, high: N, what: str, unit: str = ""
) -> Callable[[str], N]:
    """An argparse type: ``parse`` the text and keep it within [low, high].

    argparse reports an ArgumentTypeError as "argument --duration: <message>", so the
    message names the option without repeating it here.
    """

    def convert(text: str) -> N:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(
                f"must be between {low:g} and {high:g}{unit}, got {text}"
            )
        return value

    return convert


_duration = _bounded(float, MIN_DURATION, MAX_DURATION, "seconds", " seconds")
_workers = _bounded(int, 1, MAX_WORKERS, "a whole number")
