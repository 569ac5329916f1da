"""HEAD on the streaming route: answered at once, with no event-client slot taken."""

from __future__ import annotations

import flask
import httpx

from stalwart.web import flask_blueprint, ops_app
from web.support import Serve


def test_head_on_events_through_flask_takes_no_client_slot() -> None:
    ops = ops_app(metrics=False, max_event_clients=1)
    try:
        app = flask.Flask(__name__)
        app.register_blueprint(flask_blueprint(ops), url_prefix="/ops")
        client = app.test_client()
        for _ in range(3):
            answer = client.head("/ops/events")
            answer.close()
            assert answer.status_code == 200
        assert ops.events is not None
        assert ops.events.clients == 0  # before: one slot gone for good per HEAD
        stream = client.get("/ops/events", buffered=False)
        assert stream.status_code == 200  # the one slot is still free
        stream.close()
        assert ops.events.clients == 0
    finally:
        ops.close()


def test_head_on_events_through_uvicorn_ends_and_keeps_the_connection_usable(
    serve: Serve,
) -> None:
    ops = ops_app(metrics=False, heartbeat=0.2)
    try:
        with serve(ops) as url, httpx.Client(base_url=url, timeout=3) as client:
            head = client.head("/events")
            assert head.status_code == 200
            assert head.headers["content-type"] == "text/event-stream"
            assert ops.events is not None
            assert ops.events.clients == 0
            health = client.get("/health")  # same keep-alive connection
            assert health.status_code == 503  # no checks: unknown (ops-specs H3)
            assert health.json()["status"] == "unknown"
    finally:
        ops.close()
