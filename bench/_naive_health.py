"""The naive health endpoint of ``bench/health.py``: what the seeds hand-wrote.

A pure ASGI app under uvicorn, with the settings ``stalwart serve`` gives uvicorn
(``log_level="warning"``, ``lifespan="on"``, the default HTTP and loop implementations),
whose ``GET /health`` checks the dependency on every request: one shared
``httpx.AsyncClient`` (opened in the lifespan) sends ``GET URL``, and
the answer is 200 ``{"status": "healthy", ...}`` when the dependency answered 2xx in time,
503 ``{"status": "unhealthy", ...}`` otherwise. Each request is bounded as a whole by
``--timeout`` (``asyncio.timeout`` around the call; httpx's own timeouts apply per phase,
so pool wait + connect + read could add up to several times the timeout without it). This
is the kindest version of the seeds' code: they opened a new client per request
(``async with httpx.AsyncClient() as client``), which costs ~15 ms of CPU each (its TLS
context loads the CA bundle).

The client's pool has no connection limit by default (``--max-connections 0``): with
httpx's default of 100 and 200 requests hung on a blackholed dependency, httpcore's pool
rescans every waiting request against every connection at each change, ~7 ms of CPU per
request on the bench machine, and the answers come later than the timeout
(``--max-connections 100`` shows it).

``--constant`` serves a constant 200 ``{"status": "healthy"}`` instead, checking nothing:
the floor of uvicorn with a pure ASGI app on this machine.

Run by ``bench/health.py``: ``python bench/_naive_health.py --port P --url URL
--timeout S [--constant]``. It prints ``ready`` once uvicorn listens and exits 0 on
SIGINT / SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import uvicorn

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


class NaiveHealth:
    """``GET /health`` asks the dependency now; everything else is a 404."""

    def __init__(self, url: str, timeout: float, *, constant: bool, max_connections: int) -> None:
        self.url = url
        self.timeout = timeout
        self.constant = constant
        self.limits = httpx.Limits(max_connections=max_connections or None)
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] != "/health":
            await _answer(send, 404, {"error": "not found"})
            return
        if self.constant:
            await _answer(send, 200, {"status": "healthy"})
            return
        ok, detail = await self._check()
        body = {
            "status": "healthy" if ok else "unhealthy",
            "timestamp": time.time(),
            "dependency": detail,
        }
        await _answer(send, 200 if ok else 503, body)

    async def _check(self) -> tuple[bool, str]:
        assert self.client is not None
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.client.get(self.url)
        except TimeoutError:
            return False, f"timed out after {self.timeout:g} s"
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return response.is_success, f"HTTP {response.status_code}"

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client = httpx.AsyncClient(
                    timeout=self.timeout, limits=self.limits, trust_env=False
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    headers = [*HEADERS, (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


class _Server(uvicorn.Server):
    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        print("ready", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--url", default="http://127.0.0.1:9/health")
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--constant", action="store_true")
    p.add_argument("--max-connections", type=int, default=0, help="the pool's limit (0: none)")
    args = p.parse_args()
    app = NaiveHealth(
        args.url, args.timeout, constant=args.constant, max_connections=args.max_connections
    )
    config = uvicorn.Config(
        app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="on"
    )
    _Server(config).run()


if __name__ == "__main__":
    main()
