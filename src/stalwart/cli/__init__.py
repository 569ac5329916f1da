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
from pathlib import Path
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
        return _run_demo(args)
    if args.command == "proxy":
        from ._proxy import command

        return command(
            args.listen, args.upstream, control=args.control, name=args.name, seed=args.seed
        )
    if args.command == "serve":
        return _run_serve(args)
    if args.command == "sessions":
        from ._sessions import command as sessions

        return sessions(args)
    if args.command == "status":
        return _run_status(args)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse only allows known ones


def _run_serve(args: argparse.Namespace) -> int:
    try:
        from ._serve import command
    except ModuleNotFoundError as exc:
        if exc.name not in ("yaml", "uvicorn", "httpx"):
            raise
        print(
            f"stalwart serve needs the 'web' extra ({exc.name} is missing): "
            "pip install 'stalwart[web]'",
            file=sys.stderr,
        )
        return EXIT_MISSING_EXTRA
    return command(args.config, listen=args.listen, check_only=args.check)


def _run_status(args: argparse.Namespace) -> int:
    try:
        import httpx  # noqa: F401  (the cli extra)
    except ModuleNotFoundError:
        print("stalwart status needs the 'cli' extra: pip install 'stalwart[cli]'", file=sys.stderr)
        return EXIT_MISSING_EXTRA
    from ._status import command

    return command(
        args.url, as_json=args.json, watch=args.watch, count=args.count, key=args.key,
        timeout=args.timeout,
    )  # fmt: skip


def _run_demo(args: argparse.Namespace) -> int:
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
    ops_port = None if args.no_ops else args.ops_port
    return command(
        args.duration,
        args.workers,
        as_json=args.json,
        ops_port=ops_port,
        open_dashboard=args.open,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stalwart", description="Fault tolerance for Python services."
    )
    parser.add_argument("--version", action="version", version=f"stalwart {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser(
        "demo",
        help="watch a circuit breaker ride out an outage made by the chaos proxy, live",
        description=(
            "Start a healthy HTTP upstream on 127.0.0.1 and a chaos proxy per side in front of "
            "it; call it from workers with and without a circuit breaker while the proxies go "
            "from forwarding to blackhole (accept, never answer) to reset (every connection "
            "reset) and back; show both sides live and judge the breaker at the end. Exit "
            "status 0 when the verdict holds, 1 when it does not, 130 when interrupted."
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
    demo.add_argument(
        "--ops-port",
        type=_bounded(int, 0, 65535, "a port number"),
        default=0,
        metavar="PORT",
        help="serve the ops app (/health, /breakers, /metrics, /events) on 127.0.0.1:PORT "
        "while the demo runs, to watch them change during the outage; 0 picks a free port "
        "(default 0; needs the 'web' extra, skipped without it)",
    )
    demo.add_argument(
        "--no-ops",
        action="store_true",
        help="do not serve the ops app",
    )
    demo.add_argument(
        "--open",
        action="store_true",
        help="open the ops dashboard in your browser as the outage begins (on a desktop); "
        "its URL is printed either way",
    )
    proxy = commands.add_parser(
        "proxy",
        help="a TCP chaos proxy in front of a real server, faults switched over HTTP",
        description=(
            "Listen on a loopback address and forward every connection to UPSTREAM; with "
            "--control, serve an HTTP/JSON endpoint there to switch the proxy's faults "
            "(latency, blackhole, reset, refuse, bandwidth ...; see docs/chaos.md). Runs until "
            "SIGINT or SIGTERM, then closes every connection and exits 0. With "
            "STALWART_PROXY_TOKEN set, changing faults needs 'Authorization: Bearer <token>'."
        ),
    )
    proxy.add_argument(
        "--listen",
        type=_loopback_address,
        required=True,
        metavar="HOST:PORT",
        help="where clients connect: a loopback address (port 0 picks a free one)",
    )
    proxy.add_argument(
        "--upstream",
        type=_upstream_address,
        required=True,
        metavar="HOST:PORT",
        help="the real server to forward to",
    )
    proxy.add_argument(
        "--control",
        type=_loopback_address,
        default=None,
        metavar="HOST:PORT",
        help="serve the HTTP/JSON control endpoint here, a loopback address (e.g. "
        "127.0.0.1:8474); off when not given",
    )
    proxy.add_argument(
        "--name",
        type=_name,
        default="proxy",
        help="the proxy's name in the control endpoint's URLs (default 'proxy')",
    )
    proxy.add_argument(
        "--seed",
        type=_bounded(int, -(2**63), 2**63 - 1, "a whole number"),
        default=None,
        metavar="N",
        help="seed for the jitter draws, so a run repeats",
    )
    from ._sessions import add_parser as add_sessions

    add_sessions(commands)
    serve = commands.add_parser(
        "serve",
        help="the ops app (health, breakers, metrics) for checks described in a YAML file",
        description=(
            "Run the checks CONFIG describes in the background and serve /health (with "
            "/health/live, /health/ready, /health/detailed), /breakers, /metrics and /events "
            "with uvicorn until SIGINT or SIGTERM. Every key of the file is checked first: a "
            "bad one is an error naming it (exit 2). See examples/ops.yaml."
        ),
    )
    serve.add_argument("config", type=Path, metavar="CONFIG.yaml", help="the checks to run")
    serve.add_argument(
        "--listen",
        default=None,
        metavar="HOST:PORT",
        help="where to serve, overriding the file's 'listen' (default 127.0.0.1:8080)",
    )
    serve.add_argument(
        "--check",
        action="store_true",
        help="only check the file and print what would be served (secrets masked)",
    )
    status = commands.add_parser(
        "status",
        help="a running ops app's health checks and breakers, in one table",
        description=(
            "Read URL/health/detailed and URL/breakers of a running ops app (URL is where it "
            "is mounted, e.g. http://127.0.0.1:8000/ops) and print each check with its state, "
            "last latency and last error, and each breaker with its state and the time it "
            "stays open. Exit status 0 healthy, 1 degraded, 2 unhealthy, unknown or "
            "unreachable."
        ),
    )
    status.add_argument("url", metavar="URL", help="the ops app's address")
    status.add_argument("--json", action="store_true", help="print the reading as JSON")
    status.add_argument(
        "--watch",
        type=_bounded(float, 0.1, 3600.0, "seconds"),
        nargs="?",
        const=2.0,
        default=None,
        metavar="SECONDS",
        help="read again every SECONDS (default 2), redrawn in place, until Ctrl-C",
    )
    status.add_argument(
        "--count",
        type=_bounded(int, 1, 1_000_000, "a whole number"),
        default=None,
        metavar="N",
        help="with --watch: stop after N readings",
    )
    status.add_argument(
        "--key",
        default=None,
        help="the ops app's API key, to see error texts (default: $STALWART_OPS_KEY)",
    )
    status.add_argument(
        "--timeout",
        type=_bounded(float, 0.1, 300.0, "seconds"),
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for the ops app (default 5)",
    )
    return parser


def _address(field: str, *, loopback: bool) -> Callable[[str], tuple[str, int]]:
    """An argparse type for HOST:PORT; ``loopback`` also refuses other hosts."""

    def convert(text: str) -> tuple[str, int]:
        from .._errors import ConfigError
        from ..chaos._runner import parse_address

        try:
            host, port = parse_address(text, field=field, loopback=loopback)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(exc.problem) from None
        if port == 0 and not loopback:
            raise argparse.ArgumentTypeError(f"needs a port in 1..65535, got {text!r}")
        return host, port

    return convert


def _name(text: str) -> str:
    if not text or "/" in text or text != text.strip():
        raise argparse.ArgumentTypeError(f"must be non-empty, without '/' or spaces, got {text!r}")
    return text


_loopback_address = _address("listen", loopback=True)
_upstream_address = _address("upstream", loopback=False)


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
