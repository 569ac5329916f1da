"""A small command line standing in for seed 001's Telegram bot: it talks to the core service.

MUSIC_API_KEYS=... python cli.py search "Imagine Dragons"
MUSIC_API_KEYS=... python cli.py download 1a2b3c4d5e6f
MUSIC_API_KEYS=... python cli.py status
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import httpx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--core", default=os.environ.get("CORE_URL", "http://127.0.0.1:8001"))
    parser.add_argument("--user", default="cli", help="sent as X-Client-Id (the rate limit's key)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("search").add_argument("query")
    commands.add_parser("download").add_argument("track_id")
    commands.add_parser("status")
    args = parser.parse_args(argv)
    key = os.environ.get("MUSIC_API_KEYS", "").split(",")[0].strip()
    headers = {"Authorization": f"Bearer {key}", "X-Client-Id": args.user}
    with httpx.Client(base_url=args.core, headers=headers, timeout=10.0) as core:
        try:
            if args.command == "search":
                response = core.get("/search", params={"q": args.query})
            elif args.command == "download":
                response = core.post("/download", json={"track_id": args.track_id})
            else:
                response = core.get("/health")
        except httpx.TransportError as exc:
            print(f"the core service does not answer: {exc}", file=sys.stderr)
            return 2
    body = response.json()
    if response.status_code >= 400:
        wait = response.headers.get("retry-after")
        hint = f" (try again in {wait} s)" if wait else ""
        print(f"{response.status_code}: {body.get('detail')}{hint}", file=sys.stderr)
        return 1
    if args.command == "search":
        print(f"{len(body['results'])} results from {body['source']}:")
        for track in body["results"]:
            print(f"  {track['track_id']}  {track['title']}  ({track['duration']} s)")
    else:
        print(json.dumps(body, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
