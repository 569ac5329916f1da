"""/events: state changes pushed as server-sent events, bounded per client, cleaned up."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

import stalwart
from stalwart._events import _GLOBAL
from stalwart.events import StateTransition
from stalwart.health import HealthRegistry
from stalwart.web import OpsApp, ops_app
from stalwart.web._stream import HEARTBEAT, HELLO, EventStream
from web.support import KEY, SECRET_DSN, SECRETS, Serve

WAIT = 5.0


def listening(stream: EventStream) -> bool:
    return any(sub.listener == stream.publish for sub in _GLOBAL.subs)


class Frames:
    """Reads server-sent-event frames from a streaming response, each read bounded."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_raw()
        self._buffer = b""

    def next(self) -> bytes:
        while b"\n\n" not in self._buffer:
            self._buffer += next(self._chunks)
        frame, _, self._buffer = self._buffer.partition(b"\n\n")
        return frame + b"\n\n"

    def event(self) -> tuple[str, dict[str, object]]:
        """The next event (heartbeats skipped): its type and JSON data."""
        while (frame := self.next()).startswith(b":"):
            pass
        fields = dict(line.split(": ", 1) for line in frame.decode().strip().splitlines())
        return fields["event"], json.loads(fields["data"])


@contextmanager
def subscribed(app: OpsApp, serve: Serve) -> Iterator[Frames]:
    """An /events stream of ``app`` under uvicorn, past its first bytes (so subscribed)."""
    with (
        serve(app) as url,
        httpx.Client(timeout=WAIT) as client,
        client.stream("GET", f"{url}/events") as response,
    ):
        assert response.headers["content-type"] == "text/event-stream"
        frames = Frames(response)
        assert frames.next() == HELLO
        yield frames


@pytest.fixture
def health() -> HealthRegistry:
    return HealthRegistry(name="orders")


@pytest.fixture
def app(health: HealthRegistry) -> Iterator[OpsApp]:
    ops = ops_app(health=health, api_key=KEY, metrics=False, heartbeat=0.05)
    yield ops
    ops.close()


def test_a_breaker_transition_arrives_as_it_happens(app: OpsApp, serve: Serve) -> None:
    breaker = stalwart.circuit_breaker("qbittorrent", failure_threshold=1)
    with subscribed(app, serve) as frames:
        with pytest.raises(OSError):
            breaker.call(_fail)
        kind, data = frames.event()
    assert kind == "state_transition"
    assert data["name"] == "qbittorrent"
    assert (data["old"], data["new"]) == ("closed", "open")


def test_quiet_streams_get_heartbeat_comments(app: OpsApp, serve: Serve) -> None:
    with subscribed(app, serve) as frames:
        assert frames.next() == HEARTBEAT


def test_health_changes_are_streamed_and_redacted_without_the_key(
    health: HealthRegistry, app: OpsApp, serve: Serve
) -> None:
    up = {"value": True}

    def database() -> bool:
        if not up["value"]:
            raise ConnectionError(f"cannot reach {SECRET_DSN}")
        return True

    health.add("database", database, critical=True)
    asyncio.run(health.run_once())
    with subscribed(app, serve) as frames:
        up["value"] = False
        asyncio.run(health.run_once())
        events = [frames.event(), frames.event()]
    assert [kind for kind, _ in events] == ["check_changed", "health_changed"]
    check = events[0][1]
    assert (check["name"], check["old"], check["new"]) == ("database", "healthy", "unhealthy")
    assert not any(secret in json.dumps(data) for _, data in events for secret in SECRETS)


def test_a_check_that_changes_without_moving_the_overall_status_is_streamed(
    health: HealthRegistry, app: OpsApp, serve: Serve
) -> None:
    up = {"cache": True}

    def cache() -> bool:
        return up["cache"]

    health.add("database", lambda: False, critical=True)  # the service is already unhealthy
    health.add("cache", cache, critical=False)
    asyncio.run(health.run_once())
    with subscribed(app, serve) as frames:
        up["cache"] = False
        asyncio.run(health.run_once("cache"))
        kind, data = frames.event()
    assert kind == "check_changed"
    assert (data["name"], data["new"]) == ("cache", "unhealthy")


def test_disconnected_clients_are_unsubscribed_and_the_listener_removed(
    app: OpsApp, serve: Serve
) -> None:
    stream = app.events
    assert stream is not None
    with serve(app) as url, httpx.Client(timeout=WAIT) as client:
        with client.stream("GET", f"{url}/events") as response:
            frames = Frames(response)
            assert frames.next() == HELLO
            assert stream.clients == 1
            assert listening(stream)
        deadline = time.monotonic() + WAIT
        while stream.clients and time.monotonic() < deadline:
            time.sleep(0.01)
    assert stream.clients == 0
    assert not listening(stream)


def test_clients_beyond_the_limit_get_503_with_retry_after(
    health: HealthRegistry, serve: Serve
) -> None:
    app = ops_app(health=health, metrics=False, max_event_clients=1, heartbeat=0.05)
    with (
        serve(app) as url,
        httpx.Client(timeout=WAIT) as client,
        client.stream("GET", f"{url}/events") as first,
    ):
        frames = Frames(first)  # kept: a collected reader would close the stream
        assert frames.next() == HELLO
        second = client.get(f"{url}/events")
        assert second.status_code == 503
        assert second.headers["retry-after"] == "10"
    app.close()


def _transition(number: int) -> StateTransition:
    return StateTransition(
        name=f"b{number}",
        strategy="circuit_breaker",
        at=float(number),
        old=stalwart.State.CLOSED,
        new=stalwart.State.OPEN,
        reason="test",
    )


def test_a_slow_client_is_dropped_once_its_queue_is_full() -> None:
    stream = EventStream(max_queue=3)
    woken: list[int] = []
    slow = stream.subscribe(redact=True, wake=lambda: woken.append(1))
    fast = stream.subscribe(redact=True, wake=lambda: None)
    assert slow is not None
    assert fast is not None
    try:
        for number in range(3):
            stream.publish(_transition(number))
        assert fast.take(idle=False) is not None  # the fast one keeps up
        stream.publish(_transition(3))
        assert slow.take(idle=False) is None  # four waiting: dropped, its stream ends
        stream.publish(_transition(4))
        assert slow.take(idle=False) is None
        chunk = fast.take(idle=False)
        assert chunk is not None
        assert b'"b4"' in chunk
        assert len(woken) == 4  # dropped subscribers are not woken again
    finally:
        stream.unsubscribe(slow)
        stream.unsubscribe(fast)


def test_frames_are_redacted_for_subscribers_without_the_key() -> None:
    stream = EventStream()
    anonymous = stream.subscribe(redact=True, wake=lambda: None)
    admin = stream.subscribe(redact=False, wake=lambda: None)
    assert anonymous is not None
    assert admin is not None
    failed = stalwart.events.CallFailed(
        name="db", strategy="circuit_breaker", at=1.0, duration=0.1, exception=OSError(SECRET_DSN)
    )
    try:
        stream.publish(failed)
        public, private = anonymous.take(idle=False), admin.take(idle=False)
    finally:
        stream.close()
    assert public is not None
    assert private is not None
    assert SECRET_DSN.encode() in private
    assert not any(secret.encode() in public for secret in SECRETS)
    assert not listening(stream)


@pytest.mark.parametrize(
    ("field", "options"),
    [
        ("max_queue", {"max_queue": 0}),
        ("heartbeat", {"heartbeat": 0}),
        ("max_clients", {"max_clients": 0}),
        ("health", {"health": object()}),
    ],
)
def test_bad_stream_settings_name_the_field(field: str, options: dict[str, object]) -> None:
    with pytest.raises(stalwart.ConfigError) as err:
        EventStream(**options)  # type: ignore[arg-type]
    assert err.value.field == field


def _fail() -> None:
    raise OSError("down")
