"""``stalwart proxy``: a chaos proxy in front of a real server, switched over HTTP.

Runs one :class:`~stalwart.chaos.ChaosProxy` (and, with ``--control``, a
:class:`~stalwart.chaos.ControlServer`) on the main thread's event loop until SIGINT or
SIGTERM, then closes every connection and exits 0. Standard library only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from ..chaos._control import ControlServer, _hostport
from ..chaos._proxy import ChaosProxy

__all__ = ("TOKEN_ENV", "command")

TOKEN_ENV = "STALWART_PROXY_TOKEN"
"""When set, changing faults over HTTP needs ``Authorization: Bearer <its value>``."""
EXIT_CANNOT_LISTEN = 1


def command(
    listen: tuple[str, int],
    upstream: tuple[str, int],
    *,
    control: tuple[str, int] | None,
    name: str,
    seed: int | None,
) -> int:
    """Run the proxy until SIGINT/SIGTERM; returns the exit status."""
    try:
        return asyncio.run(_serve(listen, upstream, control, name, seed))
    except OSError as exc:  # a port in use, most often
        print(f"stalwart proxy: cannot listen: {exc}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN


async def _serve(
    listen: tuple[str, int],
    upstream: tuple[str, int],
    control: tuple[str, int] | None,
    name: str,
    seed: int | None,
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with ChaosProxy(upstream, listen=listen, name=name, seed=seed) as proxy:
        print(f"proxy {name!r}: {_hostport(proxy.address)} -> {_hostport(upstream)}", flush=True)
        if control is None:
            print(
                "control: off (add --control 127.0.0.1:8474 to switch faults over HTTP)",
                flush=True,
            )
            await stop.wait()
        else:
            token = os.environ.get(TOKEN_ENV) or None
            async with ControlServer([proxy], listen=control, token=token) as server:
                guarded = f" (token from ${TOKEN_ENV} required to change faults)" if token else ""
                print(f"control: {server.url}/proxies/{name}{guarded}", flush=True)
                await stop.wait()
        print("stopping: closing every connection", flush=True)
    return 0
