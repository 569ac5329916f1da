"""AdaptivePoller: seed 000's interval sequence on FakeClock (sync and async), and real HTTP.

The scenario is seed 000's: a page polls a route that calls qBittorrent through a breaker
(2 failures, 60 s, 2 successes) and answers with the breaker's poll hint.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from poller.support import Counted, Seed000
from stalwart import ConfigError
from stalwart.poller import AdaptivePoller, PollAnswer, PollChanged, PollFailed, PollResult
from stalwart.testing import FakeClock
from web.support import serve_asgi

WAIT = 10.0


@dataclass
class Site(Seed000):
    """Seed 000's status route, called in process."""

    def answer(self) -> PollAnswer:
        status, body = self.status()
        return PollAnswer(status, body=body)

    async def aanswer(self) -> PollAnswer:
        await asyncio.sleep(0)
        return self.answer()


# Poll number (from 1) -> whether qBittorrent is up from that poll on.
OUTAGE = {1: True, 2: False, 8: True}
SEQUENCE = [5.0, 5.0, 60.0, 60.0, 60.0, 60.0, 120.0, 15.0, 5.0]
"""closed, a first failure, open, three failed recoveries, a fourth (VERY_SLOW), half-open,
closed."""
STATES = ["closed", "closed", "open", "open", "open", "open", "open", "half_open", "closed"]


def run_sync(poller: AdaptivePoller, site: Site) -> list[PollResult]:
    results = []
    for result in poller:
        results.append(result)
        site.up = OUTAGE.get(len(results) + 1, site.up)
        if len(results) == len(SEQUENCE):
            poller.stop()
    return results


def run_async(poller: AdaptivePoller, site: Site) -> list[PollResult]:
    async def main() -> list[PollResult]:
        results = []
        async for result in poller:
            results.append(result)
            site.up = OUTAGE.get(len(results) + 1, site.up)
            if len(results) == len(SEQUENCE):
                poller.stop()
        return results

    return asyncio.run(main())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_seed_000s_sequence_closed_open_very_slow_half_open_closed(mode: str) -> None:
    site = Site()
    fetch = site.answer if mode == "sync" else site.aanswer
    poller = AdaptivePoller(fetch=fetch, clock=site.clock, name="torrents")
    changes: list[PollChanged] = []
    poller.add_listener(changes.append, PollChanged)
    results = (run_sync if mode == "sync" else run_async)(poller, site)
    assert [r.delay for r in results] == SEQUENCE
    assert [r.state for r in results] == STATES
    assert site.clock.sleeps == SEQUENCE[:-1]  # slept on the clock, and only between polls
    assert [c.new_state for c in changes] == ["closed", "open", "half_open", "closed"]
    assert [c.available for c in changes] == [True, False, True, True]  # half-open lets probes in
    assert results[6].reason.startswith("qbittorrent is unavailable")
    assert site.breaker.snapshot().failed_recoveries == 0  # closed again, streak forgotten
    assert not any(r.failed for r in results)  # the site answered every time, with a hint


def test_a_sync_fetch_polls_from_async_code_on_a_worker_thread() -> None:
    site = Site()
    poller = AdaptivePoller(fetch=site.answer, clock=site.clock)
    result = asyncio.run(poller.apoll())
    assert (result.state, result.delay) == ("closed", 5.0)


def test_transitions_are_logged_like_seed_000s_console(caplog: pytest.LogCaptureFixture) -> None:
    site = Site()
    poller = AdaptivePoller(fetch=site.answer, clock=site.clock, name="torrents")
    with caplog.at_level(logging.INFO, logger="stalwart.poller"):
        run_sync(poller, site)
    lines = [r.getMessage() for r in caplog.records]
    assert (
        "[torrents] interval 5 s -> 60 s: qbittorrent is unavailable; next check in 60 s" in lines
    )
    assert any(line.startswith("[torrents] unavailable: ") for line in lines)
    assert "[torrents] available again: qbittorrent is available" in lines
    assert "[torrents] interval 60 s -> 120 s" in " ".join(lines)


def test_failed_polls_back_off_with_jitter_and_reset_on_an_answer() -> None:
    clock = FakeClock()
    outcomes: list[Any] = [ConnectionError("refused")] * 3 + [{"poll_interval": 5}]

    def fetch() -> Any:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    poller = AdaptivePoller(fetch=fetch, clock=clock, random=lambda: 0.5)
    failures: list[PollFailed] = []
    poller.add_listener(failures.append, PollFailed)
    results = [poller.poll() for _ in range(4)]
    assert [r.delay for r in results] == [10.0, 20.0, 40.0, 5.0]
    assert [f.failures for f in failures] == [1, 2, 3]
    assert failures[0].error == "ConnectionError: refused"
    assert results[2].state == "unreachable"
    assert not results[2].available
    assert poller.debug_info()["failure_count"] == 0
    assert poller.debug_info()["failures"] == 3


def test_debug_info_says_what_the_poller_does_and_why() -> None:
    site = Site()
    poller = AdaptivePoller(fetch=site.answer, clock=site.clock, name="torrents")
    site.up = False
    poller.poll()
    poller.poll()
    info = poller.debug_info()
    assert info == {
        "name": "torrents",
        "url": None,
        "polling": False,
        "in_flight": False,
        "current_interval": 60.0,
        "reason": "qbittorrent is unavailable; next check in 60 s",
        "next_poll_in": 60.0,
        "failure_count": 0,
        "polls": 2,
        "failures": 0,
        "state": "open",
        "available": False,
        "message": "qbittorrent is unavailable; next check in 60 s",
        "retry_in": 60.0,
        "last_status": 503,
        "last_error": None,
        "last_poll_ago": 0.0,
    }
    site.clock.advance(20)
    assert poller.debug_info()["next_poll_in"] == 40.0
    assert "open, every 60 s" in repr(poller)


def test_a_custom_hint_reader_finds_the_hint_in_another_shape() -> None:
    body = {"breakers": {"a": {"poll_interval": 60}, "b": {"poll_interval": 15}}}
    poller = AdaptivePoller(
        fetch=lambda: body,
        hint=lambda b: {"poll_interval": min(x["poll_interval"] for x in b["breakers"].values())},
        clock=FakeClock(),
    )
    assert poller.poll().delay == 15.0


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({}, "url"),
        ({"url": "http://127.0.0.1:1/", "fetch": dict}, "url"),
        ({"url": "ftp://127.0.0.1/"}, "url"),
        ({"fetch": 3}, "fetch"),
        ({"fetch": dict, "hint": "poll_interval"}, "hint"),
        ({"fetch": dict, "interval": 0}, "interval"),
        ({"fetch": dict, "clock": object()}, "clock"),
    ],
)
def test_bad_arguments_raise_config_errors(kwargs: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AdaptivePoller(**kwargs)
    assert caught.value.field == field_name


def test_an_async_fetch_cannot_be_polled_from_sync_code() -> None:
    async def fetch() -> dict[str, Any]:
        return {}

    with pytest.raises(ConfigError, match="apoll"):
        AdaptivePoller(fetch=fetch, clock=FakeClock()).poll()


# -- over real HTTP --------------------------------------------------------------------


@dataclass
class Status(Counted):
    """A scripted /status route, counted."""

    respond: Callable[[], Response] = field(
        default=lambda: JSONResponse({"state": "closed", "poll_interval": 5})
    )

    async def endpoint(self, request: Request) -> Response:
        return await self.serve(self.respond)


@pytest.fixture
def status() -> Iterator[tuple[Status, str]]:
    script = Status()
    app = Starlette(routes=[Route("/status", script.endpoint)])
    with serve_asgi(app) as url:
        yield script, f"{url}/status"


def test_retry_after_on_a_real_503_is_honoured(status: tuple[Status, str]) -> None:
    script, url = status
    script.respond = lambda: JSONResponse(
        {"title": "busy"}, status_code=503, headers={"Retry-After": "30"}
    )
    with AdaptivePoller(url, clock=FakeClock()) as poller:
        result = poller.poll()
    assert (result.answer.status, result.delay, result.failed) == (503, 30.0, True)
    assert result.reason.startswith("Retry-After: 30 s")


def test_an_html_error_page_is_a_failed_poll(status: tuple[Status, str]) -> None:
    script, url = status
    script.respond = lambda: Response("<h1>Bad gateway</h1>", 502, media_type="text/html")
    with AdaptivePoller(url, clock=FakeClock(), random=lambda: 0.0) as poller:
        result = poller.poll()
    assert (result.failed, result.delay, result.body) == (True, 5.0, None)
    assert result.answer.status == 502


def test_a_request_is_abandoned_at_the_timeout(status: tuple[Status, str]) -> None:
    script, url = status
    script.hold.clear()
    try:
        with AdaptivePoller(url, timeout=0.2, clock=FakeClock()) as poller:
            result = poller.poll()
    finally:
        script.hold.set()
    assert result.failed
    assert result.answer.error == "no answer within 0.2 s"


def test_an_async_poll_is_abandoned_at_the_timeout(status: tuple[Status, str]) -> None:
    script, url = status
    script.hold.clear()

    async def main() -> PollResult:
        async with AdaptivePoller(url, timeout=0.2, clock=FakeClock()) as poller:
            return await poller.apoll()

    try:
        result = asyncio.run(main())
    finally:
        script.hold.set()
    assert result.failed
    assert result.answer.error == "no answer within 0.2 s"


def test_never_two_polls_in_flight_counted_at_the_server(status: tuple[Status, str]) -> None:
    script, url = status
    script.hold.clear()
    poller = AdaptivePoller(url, clock=FakeClock())
    threads = [threading.Thread(target=poller.poll) for _ in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + WAIT
    while script.requests < 1 and time.monotonic() < deadline:
        time.sleep(0.005)  # condition wait: the first request has reached the server
    assert poller.debug_info()["in_flight"]
    script.hold.set()
    for thread in threads:
        thread.join(WAIT)
    poller.close()
    assert (script.requests, script.most_in_flight) == (4, 1)


def test_async_polls_from_several_tasks_take_turns(status: tuple[Status, str]) -> None:
    script, url = status

    async def main() -> None:
        async with AdaptivePoller(url, clock=FakeClock()) as poller:
            await asyncio.gather(*(poller.apoll() for _ in range(4)))

    asyncio.run(main())
    assert (script.requests, script.most_in_flight) == (4, 1)


def test_stop_ends_a_loop_waiting_on_the_system_clock(status: tuple[Status, str]) -> None:
    script, url = status
    script.respond = lambda: JSONResponse({"poll_interval": 300})
    poller = AdaptivePoller(url)  # the system clock: a real 300 s wait, cut short by stop()

    def stop_when_waiting() -> None:
        deadline = time.monotonic() + WAIT
        while poller.debug_info()["next_poll_in"] is None and time.monotonic() < deadline:
            time.sleep(0.005)
        poller.stop()

    stopper = threading.Thread(target=stop_when_waiting)
    started = time.monotonic()
    stopper.start()
    with poller:
        results = list(poller)
    stopper.join(WAIT)
    assert len(results) == 1
    assert results[0].delay == 300.0
    assert time.monotonic() - started < WAIT  # not 300 s


def test_async_loop_over_http_follows_the_hint(status: tuple[Status, str]) -> None:
    script, url = status
    clock = FakeClock()
    answers = iter(
        [{"state": "open", "poll_interval": 60}, {"state": "closed", "poll_interval": 5}]
    )
    script.respond = lambda: JSONResponse(next(answers))

    async def main() -> list[float]:
        delays = []
        async with AdaptivePoller(url, clock=clock) as poller:
            async for result in poller:
                delays.append(result.delay)
                if len(delays) == 2:
                    poller.stop()
        return delays

    assert asyncio.run(main()) == [60.0, 5.0]
    assert clock.sleeps == [60.0]


def test_poll_now_cuts_the_wait_short(status: tuple[Status, str]) -> None:
    script, url = status
    script.respond = lambda: JSONResponse({"poll_interval": 300})
    poller = AdaptivePoller(url)
    seen: list[float] = []

    def wake_when_waiting() -> None:
        deadline = time.monotonic() + WAIT
        while poller.debug_info()["next_poll_in"] is None and time.monotonic() < deadline:
            time.sleep(0.005)
        poller.poll_now()

    waker = threading.Thread(target=wake_when_waiting)
    waker.start()
    with poller:
        for result in poller:
            seen.append(result.delay)
            if len(seen) == 2:
                break
    waker.join(WAIT)
    assert script.requests == 2
