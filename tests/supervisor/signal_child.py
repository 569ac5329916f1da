"""A supervised agent in its own process, for the SIGTERM test: connects to argv[2],
prints "connected", and runs until a signal closes it (argv[1]: async or blocking)."""

from __future__ import annotations

import asyncio
import sys

from stalwart.supervisor import BlockingSupervisor, Supervisor

OPTIONS = {
    "handle_signals": True,
    "goodbye": {"type": "disconnect", "reason": "shutdown"},
    "heartbeat": {"type": "heartbeat"},
    "heartbeat_interval": 0.05,
}


async def run_async(url: str) -> None:
    async with Supervisor([url], **OPTIONS) as sup:
        await sup.wait_connected()
        print("connected", flush=True)
        async for message in sup:  # ends when the signal has closed it
            print("received", message, flush=True)


def run_blocking(url: str) -> None:
    with BlockingSupervisor([url], **OPTIONS) as sup:
        sup.wait_connected()
        print("connected", flush=True)
        for message in sup:
            print("received", message, flush=True)


if __name__ == "__main__":
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "async":
        asyncio.run(run_async(url))
    else:
        run_blocking(url)
    print("exited cleanly", flush=True)
