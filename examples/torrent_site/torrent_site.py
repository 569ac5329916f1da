"""Seed 000's torrent site: a Flask page that never hangs while qBittorrent is down.

Every call to qBittorrent's Web API (the official ``qbittorrent-api`` client) goes through
one breaker with the seed's settings: 2 failures open it, for 60 s, and 2 successes close
it again. Requests time out at 3 s (connect) and 5 s (read), each call makes one attempt,
and the breaker's ``call_timeout`` (8 s, the seed's "at most 8 seconds") bounds the rest.
The page polls ``/api/torrents`` with ``stalwart-poller.js`` at the pace the breaker's hint
asks for: 5 s while qBittorrent works, 60 s while it is down (120 s after more than three
failed recoveries), 15 s while it recovers. The ops app is mounted at ``/ops`` (its
dashboard is ``/ops/dashboard``).

    python app.py --local                      # a throw-away qbittorrent-nox of its own
    python app.py --qbittorrent http://127.0.0.1:8080 --username admin --password ...
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import qbittorrentapi
import requests
from flask import Flask, Response, jsonify, render_template

from stalwart import CircuitBreaker, CircuitOpenError, Clock, DeadlineExceeded
from stalwart.web import flask_blueprint, ops_app

HERE = Path(__file__).parent
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0


def qbittorrent_breaker(clock: Clock | None = None) -> CircuitBreaker:
    """Seed 000's breaker. Only outages count: a refused login or a 4xx is not one."""
    return CircuitBreaker(
        "qbittorrent",
        failure_threshold=2,
        recovery_timeout=60.0,
        success_threshold=2,
        call_timeout=CONNECT_TIMEOUT + READ_TIMEOUT,
        record=qbittorrentapi.APIConnectionError,
        ignore=(qbittorrentapi.LoginFailed, qbittorrentapi.HTTP4XXError),
        clock=clock,
    )


class OneAttemptClient(qbittorrentapi.Client):
    """qbittorrent-api's client, making one HTTP attempt per call.

    The library tries every call at least twice (``_retries`` cannot go below 1), re-sends
    POSTs after a read timeout, and resets its session in between: behind a server that
    accepts and never answers, one ``torrents_info()`` took 36 s with timeouts of (3, 5).
    Retrying is the breaker's and the poller's job here, so the library's own loop is
    skipped; re-login after an expired session (a 403) still happens, one level up.
    """

    def _request_manager(  # type: ignore[override]
        self,
        http_method: Any,
        api_namespace: Any,
        api_method: str,
        _retries: int = 1,
        _retry_backoff_factor: float = 0.3,
        version_introduced: str = "",
        version_removed: str = "",
        **kwargs: Any,
    ) -> Any:
        endpoint = f"{api_namespace}/{api_method}"
        if not self._is_endpoint_supported_for_version(
            endpoint=endpoint,
            version_introduced=version_introduced,
            version_removed=version_removed,
        ):
            return None
        try:
            return self._request(http_method, api_namespace, api_method, **kwargs)
        except qbittorrentapi.APIError:
            raise  # HTTP statuses and login failures, as the library raises them
        except requests.RequestException as exc:
            raise qbittorrentapi.APIConnectionError(
                f"Failed to connect to qBittorrent: {exc!r}",
                response=getattr(exc, "response", None),
            ) from exc


def qbittorrent_client(url: str, username: str, password: str) -> qbittorrentapi.Client:
    return OneAttemptClient(
        host=url,
        username=username,
        password=password,
        REQUESTS_ARGS={"timeout": (CONNECT_TIMEOUT, READ_TIMEOUT)},
        HTTPADAPTER_ARGS={"max_retries": 0},  # no hidden urllib3 retry inside each attempt
        FORCE_SCHEME_FROM_HOST=True,  # http stays http: no probing for https on errors
    )


def summary(torrent: Any) -> dict[str, Any]:
    """What the page shows of a torrent."""
    return {
        "hash": torrent.hash,
        "name": torrent.name,
        "size": torrent.size,
        "progress": round(float(torrent.progress), 4),
        "state": torrent.state,
        "dlspeed": torrent.dlspeed,
        "upspeed": torrent.upspeed,
    }


def create_app(client: qbittorrentapi.Client, breaker: CircuitBreaker) -> Flask:
    app = Flask(__name__, root_path=str(HERE))
    ops = ops_app(breakers=[breaker], metrics=False)
    app.register_blueprint(flask_blueprint(ops), url_prefix="/ops")

    def hinted(body: dict[str, Any], status: int = 200) -> Response:
        """``body`` with the breaker's poll hint (seed 000's fields), and a Retry-After on a
        503 while the breaker is open."""
        hint = breaker.poll_hint()
        response = jsonify({**body, **hint})
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"
        if status == 503 and hint["retry_in"]:
            response.headers["Retry-After"] = str(math.ceil(hint["retry_in"]))
        return response

    @app.get("/")
    def index() -> str:
        return render_template("index.html")

    @app.get("/api/torrents")
    def torrents() -> Response:
        try:
            listed = breaker.call(client.torrents_info)
        except CircuitOpenError:
            return hinted({"torrents": None, "error": "qBittorrent is unavailable"}, 503)
        except DeadlineExceeded:
            error = f"qBittorrent did not answer within {CONNECT_TIMEOUT + READ_TIMEOUT:g} s"
            return hinted({"torrents": None, "error": error}, 503)
        except qbittorrentapi.LoginFailed:
            return hinted({"torrents": None, "error": "qBittorrent refused the login"}, 502)
        except qbittorrentapi.APIConnectionError as exc:
            return hinted({"torrents": None, "error": _why(exc)}, 503)
        return hinted({"torrents": [summary(t) for t in listed]})

    @app.get("/api/qbittorrent-status")
    def status() -> Response:
        return hinted({})

    app.extensions["ops"] = ops
    return app


def _why(exc: qbittorrentapi.APIConnectionError) -> str:
    """The page's words for a failed call: timed out, refused, or the status it answered."""
    cause = exc.__cause__
    if isinstance(cause, requests.Timeout):
        kind = "connect" if isinstance(cause, requests.ConnectTimeout) else "read"
        limit = CONNECT_TIMEOUT if kind == "connect" else READ_TIMEOUT
        return f"qBittorrent did not answer within {limit:g} s ({kind} timeout)"
    if isinstance(cause, requests.ConnectionError):
        return "qBittorrent refused the connection"
    return f"qBittorrent failed: {type(exc).__name__}"


# -- running it ----------------------------------------------------------------------------


@contextmanager
def local_qbittorrent() -> Iterator[tuple[str, str, str]]:
    """A throw-away qbittorrent-nox with one sample torrent; yields its URL and login."""
    from local_qbittorrent import make_torrent, running_qbittorrent

    with running_qbittorrent() as server:
        client = qbittorrent_client(server.url, server.username, server.password)
        torrent = make_torrent(server.profile / "downloads")
        client.torrents_add(torrent_files=str(torrent), save_path=str(torrent.parent))
        yield server.url, server.username, server.password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qbittorrent", default=os.environ.get("QBITTORRENT_URL"))
    parser.add_argument("--username", default=os.environ.get("QBITTORRENT_USERNAME", "admin"))
    parser.add_argument("--password", default=os.environ.get("QBITTORRENT_PASSWORD", ""))
    parser.add_argument("--local", action="store_true", help="start a qbittorrent-nox of its own")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    if not args.local and not args.qbittorrent:
        parser.error("give --qbittorrent URL (or QBITTORRENT_URL), or --local")
    # SIGTERM ends the run like Ctrl-C, so a local qbittorrent-nox is stopped and removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    with ExitStack() as stack:
        url, username, password = args.qbittorrent, args.username, args.password
        if args.local:
            url, username, password = stack.enter_context(local_qbittorrent())
            print(f"qbittorrent-nox: {url} (user {username}, password {password})")
        app = create_app(qbittorrent_client(url, username, password), qbittorrent_breaker())
        print(f"torrent site: http://127.0.0.1:{args.port}/")
        print(f"ops dashboard: http://127.0.0.1:{args.port}/ops/dashboard", flush=True)
        app.run(host="127.0.0.1", port=args.port, threaded=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
