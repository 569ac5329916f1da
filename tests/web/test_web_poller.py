"""stalwart-poller.js in real Chromium, on a page clock the test moves by hand.

The server is real (Starlette under uvicorn on loopback): a status route that calls a
dependency through a breaker on FakeClock, as seed 000's site does, and a scripted route.
The page's clock is Playwright's: installed and paused, so a 60 s interval passes in one
``run_for`` and nothing fires on its own. Requests are counted at the server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route

from poller.support import CASES, NOW, Counted, Seed000, js_settings
from stalwart.web import ops_app
from web.support import Serve
from web.test_web_dashboard import browser  # noqa: F401  (the chromium fixture)

WAIT = 10.0
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>poller</title>
<script src="/ops/static/stalwart-poller.js"></script></head><body></body></html>"""
MODULE_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>module</title>
<script type="module">
import api, { poll, VERSION } from "/ops/static/stalwart-poller.mjs";
window.moduleForm = { VERSION, same: poll === globalThis.StalwartPoller.poll, api: !!api.decide };
</script></head><body></body></html>"""
START = """options => {
    window.seen = [];
    const p = new StalwartPoller.Poller("/api/status", { name: "TorrentUpdater",
        random: () => 0.5, ...options });
    for (const type of ["change", "error", "update"]) {
        p.addEventListener(type, (e) => window.seen.push({ type, detail: e.detail }));
    }
    window.poller = p.start();
}"""


@dataclass
class Site(Seed000, Counted):
    """Seed 000's status route over a breaker on FakeClock (or a scripted answer), counted."""

    script: Callable[[], Response] | None = None

    def __post_init__(self) -> None:
        Seed000.__post_init__(self)
        Counted.__post_init__(self)

    def answer(self) -> Response:
        if self.script is not None:
            return self.script()
        code, body = self.status()
        return JSONResponse(body, status_code=code)

    async def route(self, request: Request) -> Response:
        return await self.serve(self.answer)


@dataclass
class Tab:
    page: Page
    site: Site
    console: list[str]

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = self.page.evaluate("window.poller.getDebugInfo()")
        return info

    def until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; poller: {self.info()}")
            self.page.wait_for_timeout(10)  # a real-time wait: the page clock is paused

    def polled(self, count: int) -> dict[str, Any]:
        """Wait until the page has finished ``count`` polls in all; its debug info then."""
        self.until(lambda: self.info()["polls"] >= count, f"poll {count}")
        return self.info()

    def run_for(self, seconds: float) -> None:
        """Move the page's clock and the server's together."""
        self.site.clock.advance(seconds)
        self.page.clock.run_for(int(seconds * 1000))

    def seen(self, kind: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.page.evaluate("window.seen")
        return [e["detail"] for e in events if e["type"] == kind]


@pytest.fixture
def tab(browser: Browser, serve: Serve) -> Iterator[Tab]:  # noqa: F811
    site = Site()
    ops = ops_app(breakers=[site.breaker], metrics=False)
    app = Starlette(
        routes=[
            Route("/", lambda request: HTMLResponse(PAGE)),
            Route("/module", lambda request: HTMLResponse(MODULE_PAGE)),
            Route("/api/status", site.route),
            Mount("/ops", app=ops),
        ]
    )
    try:
        with serve(app) as url:
            context = browser.new_context(service_workers="block")
            page = context.new_page()
            console: list[str] = []

            def said(message: ConsoleMessage) -> None:
                console.append(message.text)

            page.on("console", said)
            page.clock.install(time=NOW)
            page.clock.pause_at(NOW)
            try:
                page.goto(f"{url}/", wait_until="load")
                yield Tab(page, site, console)
            finally:
                site.hold.set()
                context.close()
    finally:
        ops.close()


def test_the_decisions_match_the_python_pollers_case_by_case(tab: Tab) -> None:
    results = tab.page.evaluate(
        """cases => cases.map(c => {
            const answer = { status: c.answer.status, body: c.answer.body ?? null,
                             headers: c.answer.headers ?? {}, error: c.answer.error ?? null };
            const d = StalwartPoller.decide(answer, { errors: c.errors ?? 0, settings: c.js,
                random: c.random ?? 0.5, now: c.now });
            return { delay: d.delay, failed: d.failed, errors: d.errors, reason: d.reason };
        })""",
        [{**case, "js": js_settings(case), "now": NOW} for case in CASES],
    )
    mismatches = [
        (case["name"], got, case["expect"])
        for case, got in zip(CASES, results, strict=True)
        if got != case["expect"]
    ]
    assert mismatches == []


def test_seed_000s_intervals_closed_open_very_slow_half_open_closed(tab: Tab) -> None:
    tab.page.evaluate(START, {})
    intervals = [tab.polled(1)["currentInterval"]]
    tab.site.up = False
    # A first failure (still closed), open, then four failed recoveries: the fourth is
    # the more-than-3 that slows to VERY_SLOW.
    for count in range(2, 8):
        tab.run_for(intervals[-1])
        intervals.append(tab.polled(count)["currentInterval"])
    tab.site.up = True
    for count in (8, 9):
        tab.run_for(intervals[-1])
        intervals.append(tab.polled(count)["currentInterval"])
    assert intervals == [5, 5, 60, 60, 60, 60, 120, 15, 5]
    assert [c["state"] for c in tab.seen("change")] == ["closed", "open", "half_open", "closed"]
    assert tab.site.requests == 9
    assert tab.site.most_in_flight == 1
    lines = "\n".join(tab.console)
    assert "[TorrentUpdater] interval 5 s \u2192 60 s" in lines
    assert "[TorrentUpdater] \u2705 available again: qbittorrent is available" in lines
    assert "[TorrentUpdater] interval 60 s \u2192 120 s" in lines


def test_nothing_is_sent_before_the_interval_is_up(tab: Tab) -> None:
    tab.page.evaluate(START, {})
    tab.polled(1)
    tab.run_for(4.9)
    tab.page.wait_for_timeout(100)  # room for a request that should not be sent
    assert tab.site.requests == 1
    tab.run_for(0.1)
    tab.polled(2)
    assert tab.site.requests == 2


def test_retry_after_is_honoured(tab: Tab) -> None:
    tab.site.script = lambda: Response("busy", 503, headers={"Retry-After": "30"})
    tab.page.evaluate(START, {})
    info = tab.polled(1)
    assert info["currentInterval"] == 30
    assert info["reason"].startswith("Retry-After: 30 s")
    tab.run_for(29)
    tab.page.wait_for_timeout(100)
    assert tab.site.requests == 1
    tab.site.script = None
    tab.run_for(1)
    assert tab.polled(2)["currentInterval"] == 5


def test_never_two_requests_in_flight_and_a_slow_one_is_aborted(tab: Tab) -> None:
    tab.site.hold.clear()
    tab.page.evaluate(START, {"timeout": 10})
    tab.until(lambda: tab.site.requests == 1, "the first request")
    for _ in range(3):
        tab.page.evaluate("window.poller.pollNow()")
        tab.run_for(3)  # timers fire, the request is still out
    assert tab.site.requests == 1
    assert tab.info()["inFlight"] is True
    tab.run_for(1)  # 10 s: the page gives up on it
    info = tab.polled(1)
    assert info["lastError"] == "no answer within 10 s"
    assert info["failureCount"] == 1
    assert tab.seen("error")[0]["error"] == "no answer within 10 s"
    # pollNow() during the poll asked for one more, right after it: the server still holds
    # the aborted request, so this one is counted, but the page sent it after the abort.
    tab.until(lambda: tab.site.requests == 2, "the poll asked for meanwhile")
    tab.site.hold.set()
    tab.polled(2)
    assert tab.site.requests == 2


def test_polling_pauses_while_hidden_and_polls_once_on_return(tab: Tab) -> None:
    tab.page.evaluate(START, {})
    tab.polled(1)
    tab.page.evaluate(VISIBILITY, "hidden")
    tab.run_for(60)
    tab.page.wait_for_timeout(100)
    assert tab.site.requests == 1
    assert tab.info()["paused"] is True
    tab.page.evaluate(VISIBILITY, "visible")
    tab.polled(2)
    tab.page.wait_for_timeout(100)
    assert tab.site.requests == 2  # once on return, not once per missed interval


def test_polling_pauses_while_offline(tab: Tab) -> None:
    tab.page.evaluate(START, {})
    tab.polled(1)
    tab.page.context.set_offline(True)
    tab.until(lambda: tab.info()["online"] is False, "the offline event")
    tab.run_for(30)
    tab.page.wait_for_timeout(100)
    assert tab.site.requests == 1
    tab.page.context.set_offline(False)
    tab.polled(2)
    assert tab.site.requests == 2


def test_get_debug_info_has_seed_000s_fields(tab: Tab) -> None:
    tab.site.up = False
    tab.page.evaluate(START, {})
    tab.polled(1)
    tab.run_for(5)
    info = tab.polled(2)
    assert info == {
        "name": "TorrentUpdater",
        "url": "/api/status",
        "isPolling": True,
        "inFlight": False,
        "paused": False,
        "hidden": False,
        "online": True,
        "currentInterval": 60,
        "reason": "qbittorrent is unavailable; next check in 60 s",
        "nextPollIn": 60,
        "failureCount": 0,
        "polls": 2,
        "failures": 0,
        "state": "open",
        "available": False,
        "status": {
            "available": False,
            "state": "open",
            "message": "qbittorrent is unavailable; next check in 60 s",
            "retryIn": 60,
        },
        "lastStatus": 503,
        "lastError": None,
        "lastPollAgo": 0,
    }
    tab.page.evaluate("window.poller.stop()")
    assert tab.info()["isPolling"] is False


def test_bad_options_are_refused_with_a_clear_error(tab: Tab) -> None:
    error = tab.page.evaluate(
        """() => { try { new StalwartPoller.Poller("/x", { intervall: 5 }); }
                   catch (e) { return e.message; } }"""
    )
    assert error == "unknown StalwartPoller option(s): intervall"
    error = tab.page.evaluate(
        """() => { try { new StalwartPoller.Poller("/x", { timeout: 0 }); }
                   catch (e) { return e.message; } }"""
    )
    assert error == "StalwartPoller option timeout must be a number of seconds > 0"


def test_the_es_module_form_is_the_same_poller(tab: Tab) -> None:
    url = tab.page.url
    tab.page.goto(f"{url}module", wait_until="load")
    tab.until(lambda: tab.page.evaluate("!!window.moduleForm"), "the module to run")
    assert tab.page.evaluate("window.moduleForm") == {"VERSION": "1", "same": True, "api": True}


def test_the_files_are_served_for_other_origins_to_load(serve: Serve) -> None:
    app = ops_app(metrics=False)
    try:
        with serve(app) as url, httpx.Client(base_url=url, timeout=WAIT) as client:
            script = client.get("/static/stalwart-poller.js")
            module = client.get("/static/stalwart-poller.mjs")
            missing = client.get("/static/app.py")
    finally:
        app.close()
    for response in (script, module):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/javascript; charset=utf-8"
        assert response.headers["access-control-allow-origin"] == "*"
    assert "StalwartPoller" in script.text
    assert 'import "./stalwart-poller.js"' in module.text
    assert missing.status_code == 404
    assert json.loads(missing.text)["status"] == 404


VISIBILITY = """state => {
    Object.defineProperty(document, "visibilityState", {value: state, configurable: true});
    document.dispatchEvent(new Event("visibilitychange"));
}"""
