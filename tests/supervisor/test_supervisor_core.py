"""The supervisor's decisions, without I/O: rotation, backoff, liveness, outbox, stats."""

from __future__ import annotations

import random

import pytest

from stalwart import Backoff, ConfigError
from stalwart.events import Event
from stalwart.supervisor import (
    ConnectionState,
    MessagesDropped,
    OutboxFull,
    PeerUnresponsive,
    ReconnectScheduled,
    SupervisorSettings,
)
from stalwart.supervisor._core import SupervisorCore, public_endpoint

SEED = Backoff(base_delay=1.0, multiplier=2.0, max_delay=60.0, jitter="none")
"""Seed 004's series, exactly: 1, 2, 4 ... 60."""
URLS = ("ws://a:1/ws", "ws://b:1/ws", "ws://c:1/ws")


def core(**settings: object) -> tuple[SupervisorCore, list[Event]]:
    events: list[Event] = []
    options: dict[str, object] = {"endpoints": URLS, "backoff": SEED, **settings}
    made = SupervisorCore(
        "agent",
        SupervisorSettings(**options),  # type: ignore[arg-type]
        emit=events.append,
        wall_offset=lambda: 1_000.0,
        rng=random.Random(1),
    )
    made.start(0.0)
    return made, events


def fail_round(c: SupervisorCore, now: float = 0.0) -> list[float]:
    """Fail one attempt on each endpoint; the delays returned."""
    delays = []
    for _ in URLS:
        c.connecting(now)
        delays.append(c.connect_failed(now, "refused").delay)
    return delays


def test_fails_over_at_once_and_waits_only_after_a_whole_round() -> None:
    c, events = core()
    tried = []
    delays = []
    for _ in range(4):
        for _ in URLS:
            tried.append(c.connecting(0.0))
            delays.append(c.connect_failed(0.0, "refused").delay)
    assert tried == [0, 1, 2] * 4  # in order, wrapping around
    assert delays == [0, 0, 1, 0, 0, 2, 0, 0, 4, 0, 0, 8]
    scheduled = [e for e in events if isinstance(e, ReconnectScheduled)]
    assert [e.delay for e in scheduled] == [1, 2, 4, 8]
    assert [e.failures for e in scheduled] == [3, 6, 9, 12]
    assert c.state is ConnectionState.WAITING


def test_the_delay_is_capped_and_the_attempts_never_stop() -> None:
    c, _ = core(endpoints=("ws://only:1/",))
    delays = []
    for _ in range(12):
        c.connecting(0.0)
        delays.append(c.connect_failed(0.0, "refused").delay)
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60, 60]


def test_the_series_restarts_after_a_connection_stayed_up() -> None:
    c, _ = core(reset_after=10.0)
    assert fail_round(c)[-1] == 1
    assert fail_round(c)[-1] == 2
    c.connecting(0.0)
    c.connected(100.0)
    c.disconnected(112.0, "lost")  # up 12 s >= reset_after: a fresh series
    assert [c.connect_failed(112.0, "refused").delay for _ in range(2)] == [0, 1]


def test_a_connection_that_drops_at_once_does_not_reset_the_series() -> None:
    c, _ = core(reset_after=10.0)
    fail_round(c)
    fail_round(c)  # 1, 2 used
    c.connecting(0.0)
    c.connected(100.0)
    assert c.disconnected(101.0, "lost").delay == 0  # the first failure of a new round
    delays = [c.connect_failed(101.0, "refused").delay for _ in range(2)]
    assert delays == [0, 4]  # a flapping endpoint still backs off


def test_a_round_of_open_breakers_waits_until_one_may_let_a_call_through() -> None:
    c, events = core()
    delays = [c.skipped(0.0, retry_in) for retry_in in (30.0, 12.0, 50.0)]
    assert [d.delay for d in delays] == [0, 0, 12.0]  # not the 1 s of the series
    # A round with a real attempt in it keeps the series' delay.
    assert [c.skipped(0.0, 40.0).delay, c.skipped(0.0, 40.0).delay] == [0, 0]
    c.connecting(0.0)
    assert c.connect_failed(0.0, "refused").delay == 2
    assert sum(isinstance(e, ReconnectScheduled) for e in events) == 2


def test_heartbeats_and_pings_come_due_on_their_intervals() -> None:
    c, _ = core(heartbeat_interval=30.0, ping_interval=20.0, dead_after=90.0)
    c.connecting(0.0)
    c.connected(0.0)
    assert c.due(0.0) == ([], None, 20.0)
    actions, dead, wake = c.due(20.0)
    assert (actions, dead, wake) == (["ping"], None, 30.0)
    c.pong(0.004)
    assert c.due(30.0)[0] == ["heartbeat"]
    c.received(35.0, 10)
    assert c.due(40.0)[0] == ["ping"]
    c.pong(0.002)
    assert c.due(60.0)[0] == ["heartbeat", "ping"]
    assert c.ping_rtt == 0.002
    assert c.heartbeats_sent == 0  # counted by the driver once written


def test_an_unanswered_ping_declares_the_peer_dead() -> None:
    c, events = core(ping_interval=20.0, ping_timeout=5.0)
    c.connecting(0.0)
    c.connected(0.0)
    assert c.due(20.0)[0] == ["ping"]
    assert c.due(24.9)[1] is None
    assert c.due(25.0)[1] == "ping"
    [unresponsive] = [e for e in events if isinstance(e, PeerUnresponsive)]
    assert unresponsive.cause == "ping"
    assert unresponsive.silent_for == 5.0


def test_silence_longer_than_dead_after_declares_the_peer_dead() -> None:
    c, events = core(ping_interval=None, dead_after=90.0)
    c.connecting(0.0)
    c.connected(0.0)
    c.received(50.0, 3)
    assert c.due(139.0) == ([], None, 140.0)
    assert c.due(140.0)[1] == "silence"
    assert [e.cause for e in events if isinstance(e, PeerUnresponsive)] == ["silence"]


def test_a_reader_held_up_by_a_full_inbox_is_not_a_silent_peer() -> None:
    c, _ = core(ping_interval=None, dead_after=10.0)
    c.connecting(0.0)
    c.connected(0.0)
    c.reader_blocked = True
    assert c.due(50.0)[1] is None
    c.unblocked(50.0)
    assert c.due(59.0)[1] is None
    assert c.due(60.0)[1] == "silence"


def test_a_transport_without_pings_stops_asking_for_them() -> None:
    c, _ = core(ping_interval=1.0)
    c.connecting(0.0)
    c.connected(0.0)
    assert c.due(1.0)[0] == ["ping"]
    c.no_pings()
    assert c.due(100.0) == ([], None, None)


def test_a_full_outbox_rejects_by_default() -> None:
    c, _ = core(max_buffer=2)
    c.buffer(0.0, "a")
    c.buffer(0.0, "b")
    with pytest.raises(OutboxFull, match="full"):
        c.buffer(0.0, "c")
    assert list(c.outbox) == ["a", "b"]
    assert c.dropped == 0


def test_drop_oldest_drops_with_an_event_each_time() -> None:
    c, events = core(max_buffer=2, overflow="drop_oldest")
    for data in "abcd":
        c.buffer(0.0, data)
    assert list(c.outbox) == ["c", "d"]
    assert c.dropped == 2
    drops = [e for e in events if isinstance(e, MessagesDropped)]
    assert [(e.count, e.reason) for e in drops] == [(1, "outbound buffer full")] * 2


def test_a_zero_buffer_refuses_even_under_drop_oldest() -> None:
    c, _ = core(max_buffer=0, overflow="drop_oldest")
    with pytest.raises(OutboxFull):
        c.buffer(0.0, "a")


def test_what_is_left_at_close_is_reported() -> None:
    c, events = core()
    c.buffer(0.0, "a")
    c.buffer(0.0, "b")
    assert c.abandon(5.0, "closed") == 2
    assert c.abandon(5.0, "closed") == 0
    assert [(e.count, e.reason) for e in events if isinstance(e, MessagesDropped)] == [
        (2, "closed")
    ]
    assert c.stats(5.0).dropped == 2


def test_stats_follow_the_connection() -> None:
    c, _ = core()
    c.connecting(1.0)
    c.connect_failed(1.0, "refused")
    c.connecting(2.0)
    c.connected(2.0)
    c.sent(10)
    c.received(3.0, 25)
    s = c.stats(5.0)
    assert s.connected
    assert s.endpoint == "ws://b:1/ws"
    assert s.endpoint_index == 1
    assert s.connected_at == 1_002.0  # wall time: monotonic + offset
    assert s.last_message_at == 1_003.0
    assert (s.messages_sent, s.bytes_sent, s.messages_received, s.bytes_received) == (1, 10, 1, 25)
    assert s.uptime == 3.0
    assert (s.attempts, s.reconnect_count) == (2, 0)
    c.disconnected(6.0, "lost")
    c.connecting(6.0)
    c.connected(6.0)
    s = c.stats(7.0)
    assert (s.reconnect_count, s.uptime, s.total_uptime) == (1, 1.0, 5.0)
    assert s.to_dict()["state"] == "connected"
    assert s.to_dict()["endpoints"] == list(URLS)


def test_stats_while_waiting_say_when_the_next_attempt_is() -> None:
    c, _ = core(endpoints=("ws://only:1/",))
    c.connecting(0.0)
    c.connect_failed(0.0, "ConnectionRefusedError")
    s = c.stats(0.25)
    assert s.state is ConnectionState.WAITING
    assert not s.connected
    assert s.retry_in == 0.75
    assert s.last_error == "ConnectionRefusedError"
    assert s.failures == 1


def test_endpoints_are_shown_without_credentials_or_query() -> None:
    assert public_endpoint("wss://user:secret@host:8443/ws?token=abc") == "wss://host:8443/ws"
    assert public_endpoint("tcp://127.0.0.1:9000") == "tcp://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"endpoints": ()}, "endpoints"),
        ({"endpoints": "ws://a/"}, "endpoints"),
        ({"endpoints": ("ws://a/", "ws://a/")}, "endpoints"),
        ({"endpoints": ("ws://a/", "")}, "endpoints[1]"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"heartbeat_interval": -1}, "heartbeat_interval"),
        ({"dead_after": float("nan")}, "dead_after"),
        ({"ping_interval": None, "ping_timeout": 1.0}, "ping_timeout"),
        ({"backoff": 5}, "backoff"),
        ({"max_buffer": -1}, "max_buffer"),
        ({"max_buffer": 1.5}, "max_buffer"),
        ({"overflow": "drop_newest"}, "overflow"),
        ({"max_inbox": 0}, "max_inbox"),
    ],
)
def test_bad_settings_name_the_field(settings: dict[str, object], field: str) -> None:
    options: dict[str, object] = {"endpoints": URLS, **settings}
    with pytest.raises(ConfigError) as caught:
        SupervisorSettings(**options)  # type: ignore[arg-type]
    assert caught.value.field == field
