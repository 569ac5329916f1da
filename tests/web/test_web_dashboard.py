"""/dashboard: the live web page, its headers, and real Chromium following the event stream.

The browser tests drive Debian's chromium (``/usr/bin/chromium``, installed by
``scripts/check``) through Playwright with ``executable_path``: no browser download. The app
is mounted under ``/ops`` in Starlette and served by uvicorn on loopback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import flask
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect, sync_playwright
from starlette.applications import Starlette
from starlette.routing import Mount

from stalwart import CircuitBreaker
from stalwart._breaker import PollIntervals
from stalwart.health import HealthRegistry
from stalwart.web import OpsApp, flask_blueprint, ops_app
from web.support import KEY, SECRETS, Serve
from web.test_web_fuzz import BODIES, HEADERS, METHODS, TOKEN, call, check

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PREFIX = "/ops"
WAIT = 5.0
WAIT_MS = WAIT * 1000
UNHEALTHY_LOAD = "Failed to load resource: the server responded with a status of 503"
QUICK = PollIntervals(fast=1.0, medium=1.0, slow=1.0, very_slow=1.0)
"""Poll hints of one second (the page's floor), so the polling fallback shows fast."""


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium; a fresh temporary profile per launch (Playwright's default)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the dashboard tests need Debian's chromium. Install it with "
            "`apt-get install -y --no-install-recommends chromium` (scripts/check does)."
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Flag:
    """A check's answer that the test flips."""

    def __init__(self) -> None:
        self.up = True

    def __call__(self) -> bool:
        if not self.up:
            raise ConnectionError("postgresql://admin:hunter2@db.internal.example:5432/orders")
        return True


@dataclass
class World:
    app: OpsApp
    health: HealthRegistry
    breaker: CircuitBreaker
    database: Flag
    cache: Flag


@pytest.fixture
def world() -> Iterator[World]:
    database, cache = Flag(), Flag()
    health = HealthRegistry(name="orders")
    health.add("database", database, critical=True, interval=0.1, timeout=1.0)
    health.add("cache", cache, critical=False, groups=("ready", "live"), interval=0.1)
    breaker = CircuitBreaker("qbittorrent", failure_threshold=1, poll_intervals=QUICK)
    app = ops_app(health=health, breakers=[breaker], metrics=False, heartbeat=0.5)
    yield World(app, health, breaker, database, cache)
    app.close()


@dataclass
class Traffic:
    """What the page asked for and said, recorded as it happens."""

    requests: list[str] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    overlaps: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def started(self, request: Request) -> None:
        self.requests.append(request.url)
        path = urlsplit(request.url).path
        if path.endswith("/events"):
            return  # a stream stays open by design
        self.in_flight[path] = self.in_flight.get(path, 0) + 1
        if self.in_flight[path] > 1:
            self.overlaps.append(path)

    def ended(self, request: Request) -> None:
        path = urlsplit(request.url).path
        if path in self.in_flight:
            self.in_flight[path] -= 1

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def count(self, suffix: str) -> int:
        return sum(urlsplit(url).path.endswith(suffix) for url in self.requests)


@contextmanager
def dashboard(
    browser: Browser, serve: Serve, app: OpsApp, path: str = "/dashboard"
) -> Iterator[tuple[Page, Traffic]]:
    """``app`` mounted at /ops in Starlette under uvicorn, its ``path`` open in chromium."""
    site = Starlette(routes=[Mount(PREFIX, app=app)])
    traffic = Traffic()
    with serve(site) as url:
        context = browser.new_context(service_workers="block")
        page = context.new_page()
        page.on("request", traffic.started)
        page.on("requestfinished", traffic.ended)
        page.on("requestfailed", traffic.ended)
        page.on("console", traffic.console)
        page.on("pageerror", lambda error: traffic.errors.append(str(error)))
        try:
            page.goto(f"{url}{PREFIX}{path}", wait_until="load", timeout=WAIT_MS)
            yield page, traffic
        finally:
            context.close()
        assert all(url_.startswith(f"{url}{PREFIX}/") for url_ in traffic.requests), (
            traffic.requests
        )


def row(page: Page, section: str, name: str) -> Any:
    return page.locator(f'#{section} tbody tr[data-name="{name}"]')


def until(condition: Callable[[], bool], what: str, page: Page | None = None) -> None:
    """Wait (bounded) for ``condition``. With a ``page``, wait through Playwright: its sync
    API delivers the page's events (requests, console) only while a call of it runs."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        if page is None:
            time.sleep(0.02)
        else:
            page.wait_for_timeout(20)


# -- the route ---------------------------------------------------------------------------


def check_page(client: httpx.Client) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "<script src=" in page.text
    assert "<script>" not in page.text  # no inline script: the CSP would block it
    assert "http" not in page.text.split("<body>")[0]  # no CDN, no absolute URL
    script = client.get("/dashboard/app.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "EventSource" in script.text
    style = client.get("/dashboard/app.css")
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    head = client.head("/dashboard")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == page.headers["content-length"]
    missing = client.get("/dashboard/app.py")
    assert (missing.status_code, missing.headers["content-type"]) == (
        404,
        "application/problem+json",
    )
    assert client.post("/dashboard").headers["allow"] == "GET, HEAD"


def test_the_dashboard_is_served_with_a_strict_csp_and_no_cache(world: World, serve: Serve) -> None:
    with serve(world.app) as url, httpx.Client(base_url=url, timeout=WAIT) as client:
        check_page(client)
        paths = client.get("/openapi.json").json()["paths"]
        assert "text/html" in paths["/dashboard"]["get"]["responses"]["200"]["content"]
        assert "/dashboard/{name}" in paths
        assert "/dashboard" in [r["path"] for r in client.get("/").json()["routes"]]


def test_the_flask_blueprint_serves_the_same_dashboard(world: World, wsgi: Serve) -> None:
    site = flask.Flask(__name__)
    site.register_blueprint(flask_blueprint(world.app), url_prefix=PREFIX)
    with wsgi(site) as url, httpx.Client(base_url=url + PREFIX, timeout=WAIT) as client:
        check_page(client)


def test_the_page_links_stay_under_the_prefix_with_a_trailing_slash(
    world: World, serve: Serve
) -> None:
    with serve(world.app) as url, httpx.Client(base_url=url, timeout=WAIT) as client:
        assert '<base href="./">' in client.get("/dashboard").text
        assert '<base href="../">' in client.get("/dashboard/").text


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.one_of(st.sampled_from(METHODS), TOKEN),
    tail=st.one_of(
        st.sampled_from(["", "/", "//", "/app.js", "/app.css", "/app.js/", "/x", "/%2e%2e"]),
        st.text(max_size=30).map(lambda t: "/" + t),
    ),
    headers=HEADERS,
    body=BODIES,
)
def test_no_input_to_the_dashboard_routes_gets_a_5xx(
    world: World, method: str, tail: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    # In a thread of its own: asyncio.run() refuses to run where Playwright's sync API has
    # its loop (the module's browser fixture), whatever order the tests run in.
    with ThreadPoolExecutor(max_workers=1) as pool:
        answer = pool.submit(
            asyncio.run, call(world.app, method, "/dashboard" + tail, headers, body)
        )
        status, content, head = answer.result(timeout=WAIT)
    check(status, content, head, method)


# -- in chromium -------------------------------------------------------------------------


def test_the_page_shows_breakers_and_checks_and_follows_the_event_stream(
    browser: Browser, world: World, serve: Serve
) -> None:
    with world.health.running_in_thread(), dashboard(browser, serve, world.app) as (page, seen):
        breaker = row(page, "breakers", "qbittorrent")
        expect(breaker).to_have_attribute("data-state", "closed", timeout=WAIT_MS)
        expect(breaker).to_contain_text("qbittorrent is available")
        database = row(page, "checks", "database")
        expect(database).to_have_attribute("data-status", "healthy", timeout=WAIT_MS)
        expect(row(page, "checks", "cache")).to_contain_text("live, ready")
        expect(page.locator("#overall")).to_have_attribute("data-status", "healthy")
        expect(page.locator("#mode")).to_have_attribute("data-mode", "live", timeout=WAIT_MS)
        until(lambda: world.app.events is not None and world.app.events.clients == 1, "subscribe")
        loaded = page.evaluate("performance.getEntriesByType('navigation').length")

        world.breaker.force_open()
        expect(breaker).to_have_attribute("data-state", "forced_open", timeout=WAIT_MS)
        expect(breaker.locator(".badge")).to_have_css("background-color", "rgb(207, 34, 46)")
        world.database.up = False
        expect(database).to_have_attribute("data-status", "unhealthy", timeout=WAIT_MS)
        expect(page.locator("#overall")).to_have_attribute("data-status", "unhealthy")
        expect(database).to_contain_text("yes")  # critical

        # Still the same document: the updates came through the stream, not a reload, and
        # well before the 30 s resync the page does while live.
        assert page.evaluate("performance.getEntriesByType('navigation').length") == loaded
        assert page.evaluate("performance.timeOrigin") > 0
        text = page.locator("body").inner_text()
        assert not any(secret in text for secret in SECRETS)  # redacted without the key
        assert seen.overlaps == []
        # Chromium logs every 503 it loads; /health/detailed answers 503 while unhealthy.
        assert [e for e in seen.errors if not e.startswith(UNHEALTHY_LOAD)] == []


def test_a_check_failing_while_the_service_is_already_down_shows_at_once(
    browser: Browser, world: World, serve: Serve
) -> None:
    # The overall status does not move (no health_changed): the check's own check_changed
    # must refresh the row, well before the page's 30 s resync.
    world.database.up = False
    with world.health.running_in_thread(), dashboard(browser, serve, world.app) as (page, _):
        cache = row(page, "checks", "cache")
        expect(row(page, "checks", "database")).to_have_attribute(
            "data-status", "unhealthy", timeout=WAIT_MS
        )
        expect(cache).to_have_attribute("data-status", "healthy", timeout=WAIT_MS)
        expect(page.locator("#mode")).to_have_attribute("data-mode", "live", timeout=WAIT_MS)
        until(lambda: world.app.events is not None and world.app.events.clients == 1, "subscribe")
        world.cache.up = False
        expect(cache).not_to_have_attribute("data-status", "healthy", timeout=WAIT_MS)
        expect(page.locator("#overall")).to_have_attribute("data-status", "unhealthy")


def test_the_page_works_at_its_address_with_a_trailing_slash(
    browser: Browser, world: World, serve: Serve
) -> None:
    # Known and healthy first, so the page's fetches get no 503 to log. In a thread of its
    # own: Playwright's sync API already runs an event loop in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, world.health.run_once()).result(timeout=WAIT)
    with dashboard(browser, serve, world.app, "/dashboard/") as (page, seen):
        breaker = row(page, "breakers", "qbittorrent")
        expect(breaker).to_have_attribute("data-state", "closed", timeout=WAIT_MS)
        expect(page.locator("#mode")).to_have_attribute("data-mode", "live", timeout=WAIT_MS)
        assert seen.count("/dashboard/app.js") == 1
        assert seen.errors == []


def test_the_page_polls_at_the_breakers_hint_when_the_stream_is_refused(
    browser: Browser, world: World, serve: Serve
) -> None:
    app = ops_app(health=world.health, breakers=[world.breaker], metrics=False, max_event_clients=1)
    site = Starlette(routes=[Mount(PREFIX, app=app)])
    try:
        with (
            serve(site) as url,
            httpx.Client(timeout=WAIT) as client,
            client.stream("GET", f"{url}{PREFIX}/events") as taken,
        ):
            assert taken.status_code == 200  # the only event slot
            until(lambda: app.events is not None and app.events.clients == 1, "the first client")
            with dashboard(browser, serve, app) as (page, seen):
                mode = page.locator("#mode")
                expect(mode).to_have_attribute("data-mode", "polling", timeout=WAIT_MS)
                expect(mode).to_contain_text("every 1 s")
                breaker = row(page, "breakers", "qbittorrent")
                expect(breaker).to_have_attribute("data-state", "closed", timeout=WAIT_MS)
                world.breaker.force_open()
                expect(breaker).to_have_attribute("data-state", "forced_open", timeout=WAIT_MS)
                assert seen.overlaps == []
    finally:
        app.close()


def test_polling_pauses_while_the_page_is_hidden(
    browser: Browser, world: World, serve: Serve
) -> None:
    app = ops_app(health=world.health, breakers=[world.breaker], metrics=False, max_event_clients=1)
    site = Starlette(routes=[Mount(PREFIX, app=app)])
    try:
        with (
            serve(site) as url,
            httpx.Client(timeout=WAIT) as client,
            client.stream("GET", f"{url}{PREFIX}/events"),
        ):
            until(lambda: app.events is not None and app.events.clients == 1, "the first client")
            with dashboard(browser, serve, app) as (page, seen):
                mode = page.locator("#mode")
                expect(mode).to_have_attribute("data-mode", "polling", timeout=WAIT_MS)
                page.evaluate(_VISIBILITY, "hidden")
                expect(mode).to_have_attribute("data-mode", "paused")
                before = seen.count("/breakers")
                page.wait_for_timeout(2100)  # real time is the point: 2 poll intervals pass
                assert seen.count("/breakers") == before
                page.evaluate(_VISIBILITY, "visible")
                expect(mode).to_have_attribute("data-mode", "polling")
                until(lambda: seen.count("/breakers") > before, "a poll after showing", page)
    finally:
        app.close()


_VISIBILITY = """state => {
    Object.defineProperty(document, "visibilityState", {value: state, configurable: true});
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_the_dashboard_does_not_show_details_to_a_browser_without_the_key(
    browser: Browser, serve: Serve
) -> None:
    health = HealthRegistry(name="orders")
    database = Flag()
    database.up = False
    health.add("database", database, interval=0.1)
    app = ops_app(health=health, breakers=[], metrics=False, api_key=KEY)
    try:
        with health.running_in_thread(), dashboard(browser, serve, app) as (page, _):
            row_ = row(page, "checks", "database")
            expect(row_).to_have_attribute("data-status", "unhealthy", timeout=WAIT_MS)
            expect(page.locator("#breakers .empty")).to_be_visible()
            assert not any(secret in page.content() for secret in SECRETS)
    finally:
        app.close()
