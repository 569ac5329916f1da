"""Seed 004's backend, small: a websockets server the agent registers with.

It answers ``hello`` with ``registered``, and writes one JSON line to stdout per thing it
sees (``listening``, ``message``, ``closed``), so a test (or you) can follow along.

    python backend.py --port 8765 --name primary
"""

from __future__ import annotations

import argparse
import asyncio
import json

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


def log(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def main(port: int, name: str) -> None:
    async def agent(ws: ServerConnection) -> None:
        try:
            async for raw in ws:
                message = json.loads(raw)
                log(event="message", server=name, data=message)
                if message.get("type") == "hello":
                    await ws.send(json.dumps({"type": "registered", "server": name}))
        except ConnectionClosed:
            pass
        finally:
            log(event="closed", server=name, code=ws.close_code, reason=ws.close_reason)

    async with serve(agent, "127.0.0.1", port) as server:
        log(event="listening", server=name, port=server.sockets[0].getsockname()[1])
        await asyncio.get_running_loop().create_future()  # until killed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--name", default="primary")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.name))
