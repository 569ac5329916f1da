"""Seed 000 end to end: the Flask site against a real qbittorrent-nox, faults from the chaos
proxy between them, the page in Debian's chromium.

The breaker runs on a FakeClock that the test moves together with the page's clock
(Playwright's, installed and paused), so its 60 s open period passes at once. Everything
else is real and in real time: the 3 s / 5 s timeouts of the client's requests, the
blackhole, the HTTP between the page, the site and qBittorrent. Screenshots of the page
during the outage and of the dashboard go to ``artefacts/torrent_site/``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import qbittorrentapi
from local_qbittorrent import QbittorrentServer, make_torrent, running_qbittorrent
from playwright.sync_api import Browser, Page, expect
from torrent_site import READ_TIMEOUT, create_app, qbittorrent_breaker, qbittorrent_client

from stalwart import CircuitBreaker
from stalwart.chaos import ProxyThread, ThreadedProxy
from stalwart.testing import FakeClock
from web.support import serve_wsgi
from web.test_web_dashboard import browser  # noqa: F401  (the chromium fixture)

pytestmark = pytest.mark.e2e

WAIT = 15.0
SLACK = 1.0
"""Scheduling slack on top of the 5 s read timeout, for a loaded 2-core machine."""
NOW = 1_700_000_000.0
ARTEFACTS = Path(os.environ.get("STALWART_ARTEFACTS", Path(__file__).parents[2] / "artefacts"))
SAMPLE = "stalwart-sample.bin"


@pytest.fixture(scope="module")
def qbittorrent() -> Iterator[QbittorrentServer]:
    """One qbittorrent-nox for the module, with the sample torrent added and checked."""
    with running_qbittorrent() as server:
        direct = qbittorrent_client(server.url, server.username, server.password)
        torrent = make_torrent(server.profile / "downloads")
        direct.torrents_add(torrent_files=str(torrent), save_path=str(torrent.parent))
        deadline = time.monotonic() + WAIT
        while not [t for t in direct.torrents_info() if t.name == SAMPLE and t.progress == 1.0]:
            assert time.monotonic() < deadline, "the sample torrent was not checked in time"
        yield server


@dataclass
class Site:
    url: str
    breaker: CircuitBreaker
    clock: FakeClock
    proxy: ThreadedProxy


@pytest.fixture
def site(qbittorrent: QbittorrentServer) -> Iterator[Site]:
    """The site, its breaker on a FakeClock, reaching qBittorrent through a chaos proxy."""
    clock = FakeClock()
    with ProxyThread() as chaos:
        proxy = chaos.add((qbittorrent.host, qbittorrent.port))
        host, port = proxy.address
        client = qbittorrent_client(
            f"http://{host}:{port}", qbittorrent.username, qbittorrent.password
        )
        breaker = qbittorrent_breaker(clock)
        app = create_app(client, breaker)
        try:
            with serve_wsgi(app) as url:
                yield Site(url, breaker, clock, proxy)
        finally:
            app.extensions["ops"].close()


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


def test_the_api_answers_within_the_read_timeout_then_at_once_and_recovers(site: Site) -> None:
    with httpx.Client(base_url=site.url, timeout=WAIT) as http:
        ok = http.get("/api/torrents")
        assert ok.status_code == 200
        body = ok.json()
        assert [t["name"] for t in body["torrents"]] == [SAMPLE]
        assert body["torrents"][0]["size"] == 64 * 1024
        assert (body["state"], body["poll_interval"], body["available"]) == ("closed", 5, True)

        site.proxy.set(blackhole=True)
        waits = []
        for _ in range(2):  # the two failures that open the breaker
            failed, took = timed(lambda: http.get("/api/torrents"))
            waits.append(took)
            assert failed.status_code == 503
            assert failed.json()["error"] == "qBittorrent did not answer within 5 s (read timeout)"
        assert all(READ_TIMEOUT - 0.1 < w < READ_TIMEOUT + SLACK for w in waits), waits
        rejected, took = timed(lambda: http.get("/api/torrents"))
        assert took < 0.5, took  # the breaker is open: no call to qBittorrent at all
        assert rejected.status_code == 503
        assert rejected.headers["retry-after"] == "60"
        assert rejected.json()["error"] == "qBittorrent is unavailable"
        status = http.get("/api/qbittorrent-status").json()
        assert (status["state"], status["poll_interval"], status["available"]) == (
            "open",
            60,
            False,
        )

        site.proxy.set(blackhole=False)
        site.clock.advance(60.0)
        probe = http.get("/api/torrents")  # half-open: one success of the two needed
        assert probe.status_code == 200
        assert (probe.json()["state"], probe.json()["poll_interval"]) == ("half_open", 15)
        closed = http.get("/api/torrents")
        assert (closed.json()["state"], closed.json()["poll_interval"]) == ("closed", 5)
        assert [t["name"] for t in closed.json()["torrents"]] == [SAMPLE]


def test_a_refused_connection_fails_fast_and_counts(site: Site) -> None:
    with httpx.Client(base_url=site.url, timeout=WAIT) as http:
        site.proxy.set(refuse=True)
        failed, took = timed(lambda: http.get("/api/torrents"))
    assert failed.status_code == 503
    assert failed.json()["error"] == "qBittorrent refused the connection"
    assert took < 1.0
    assert site.breaker.snapshot().failure_count == 1


@dataclass
class Tab:
    page: Page
    site: Site

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = self.page.evaluate("window.torrentUpdater.getDebugInfo()")
        return info

    def polled(self, count: int) -> dict[str, Any]:
        """Wait (real time, bounded) for the page's ``count``-th poll to finish."""
        deadline = time.monotonic() + WAIT
        while self.info()["polls"] < count:
            if time.monotonic() > deadline:
                pytest.fail(f"poll {count} did not finish; {self.info()}")
            self.page.wait_for_timeout(20)
        return self.info()

    def run_for(self, seconds: float) -> None:
        self.site.clock.advance(seconds)
        self.page.clock.run_for(int(seconds * 1000))


def test_the_page_never_hangs_slows_to_60_s_and_recovers_without_a_reload(
    site: Site,
    browser: Browser,  # noqa: F811
) -> None:
    ARTEFACTS.joinpath("torrent_site").mkdir(parents=True, exist_ok=True)
    context = browser.new_context(service_workers="block", viewport={"width": 900, "height": 480})
    context.clock.install(time=NOW)
    context.clock.pause_at(NOW)
    page = context.new_page()
    tab = Tab(page, site)
    status = page.locator("#status")
    rows = page.locator("#torrents tbody tr")
    try:
        page.goto(f"{site.url}/", wait_until="load")
        intervals = [tab.polled(1)["currentInterval"]]
        page.evaluate("window.sameDocument = true")  # gone if the page reloads
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(SAMPLE)
        expect(status).to_have_text("qBittorrent is available")

        site.proxy.set(blackhole=True)
        tab.run_for(intervals[-1])
        # The poll is out, stuck behind the blackhole for up to 5 s: the page still answers.
        started = time.perf_counter()
        assert page.evaluate("document.title") == "Torrents"
        assert time.perf_counter() - started < 0.5
        assert tab.info()["inFlight"] is True
        intervals.append(tab.polled(2)["currentInterval"])
        tab.run_for(intervals[-1])
        intervals.append(tab.polled(3)["currentInterval"])
        page.clock.run_for(1000)  # the countdown ticks once
        site.clock.advance(1.0)
        expect(status).to_have_text("qBittorrent unavailable, retrying in 59 s")
        expect(status).to_have_attribute("data-state", "unavailable")
        expect(page.locator("#torrents")).to_be_hidden()
        page.screenshot(path=str(ARTEFACTS / "torrent_site" / "page-during-outage.png"))

        dashboard = context.new_page()
        dashboard.goto(f"{site.url}/ops/dashboard", wait_until="load")
        breaker_row = dashboard.locator('#breakers tbody tr[data-name="qbittorrent"]')
        expect(breaker_row).to_have_attribute("data-state", "open")
        dashboard.screenshot(path=str(ARTEFACTS / "torrent_site" / "dashboard-during-outage.png"))
        dashboard.close()

        site.proxy.set(blackhole=False)
        tab.run_for(intervals[-1] - 1.0)
        intervals.append(tab.polled(4)["currentInterval"])
        expect(rows).to_have_count(1)  # back without a reload
        expect(status).to_have_text("qBittorrent is back: checking it holds")
        tab.run_for(intervals[-1])
        intervals.append(tab.polled(5)["currentInterval"])
        expect(status).to_have_text("qBittorrent is available")
        assert intervals == [5, 5, 60, 15, 5]
        assert page.evaluate("window.sameDocument") is True  # no reload happened
    finally:
        context.close()


def test_a_wrong_password_is_said_and_does_not_open_the_breaker(
    qbittorrent: QbittorrentServer,
) -> None:
    breaker = qbittorrent_breaker(FakeClock())
    client = qbittorrent_client(qbittorrent.url, qbittorrent.username, "not-the-password")
    app = create_app(client, breaker)
    try:
        with serve_wsgi(app) as url, httpx.Client(base_url=url, timeout=WAIT) as http:
            answers = [http.get("/api/torrents") for _ in range(3)]
    finally:
        app.extensions["ops"].close()
    assert [a.status_code for a in answers] == [502, 502, 502]
    assert answers[0].json()["error"] == "qBittorrent refused the login"
    assert breaker.state.value == "closed"
    assert isinstance(client, qbittorrentapi.Client)
