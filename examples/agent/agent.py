"""Seed 004's agent: one WebSocket to the first backend that answers, forever.

It registers (``hello``), sends CPU and RAM every ``heartbeat_interval``, fails over to
the next server when one dies, and closes gracefully on SIGTERM/SIGINT (a ``disconnect``
message, then a close frame). Its stats are on the ops app: ``/connections``,
``/health`` and ``/dashboard``.

    python agent.py --config agent.yaml --ops 127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from stalwart.health import HealthRegistry
from stalwart.supervisor import load_config, system_heartbeat
from stalwart.web import ops_app

log = logging.getLogger("agent")


async def heartbeat() -> dict[str, Any]:
    beat = system_heartbeat()  # {"type": "heartbeat", "cpu_usage", "ram_usage", "timestamp"}
    return {**beat, "agent": socket.gethostname()}


class OpsServer(uvicorn.Server):
    """uvicorn in the agent's own event loop, leaving SIGTERM/SIGINT to the supervisor
    (which closes gracefully, then the page stops)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def main(config_path: str, listen: str, heartbeat_interval: float | None) -> None:
    config = load_config(config_path)
    overrides: dict[str, Any] = {}
    if heartbeat_interval is not None:
        overrides["heartbeat_interval"] = heartbeat_interval
    sup = config.supervisor(
        name="agent",
        heartbeat=heartbeat,
        hello={"type": "hello", "agent": socket.gethostname()},
        goodbye={"type": "disconnect", "reason": "shutdown"},
        handle_signals=True,  # SIGTERM/SIGINT: goodbye and close frame, then exit 0
        **overrides,
    )
    health = HealthRegistry("agent")
    health.add("connection", sup.health_check(), interval=1.0, timeout=1.0)
    host, _, port = listen.rpartition(":")
    app = ops_app(health=health)
    ops = OpsServer(uvicorn.Config(app, host=host, port=int(port), log_level="warning"))
    page = asyncio.create_task(ops.serve())
    try:
        async with health, sup:
            async for message in sup:  # survives reconnects; ends when a signal closes it
                if message.get("type") == "registered":
                    log.info("registered with %s", message.get("server"))
    finally:
        ops.should_exit = True
        await page
    log.info("stopped: %s", sup.stats().to_dict())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="agent.yaml")
    parser.add_argument("--ops", default="127.0.0.1:8080", help="HOST:PORT of the stats page")
    parser.add_argument("--heartbeat-interval", type=float, help="override the file's")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)-8s | %(message)s")
    asyncio.run(main(args.config, args.ops, args.heartbeat_interval))
