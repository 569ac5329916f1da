"""/journal, the dashboard's batch sessions and the journal's Prometheus metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from stalwart import ConfigError
from stalwart.journal import Journal, run_batch
from stalwart.web import ops_app
from web.support import KEY, serve_asgi
from web.test_web_dashboard import browser  # noqa: F401  (the chromium fixture)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "batch.db") as j:
        run_batch(
            range(5), str, journal=j, session="finished", metadata={"base_url": "http://10.1.2.3"}
        )
        yield j


@pytest.fixture
def running(journal: Journal) -> Iterator[threading.Event]:
    """A batch in progress in this process: 2 of 4 items done, the others held."""
    release, held = threading.Event(), threading.Semaphore(0)

    def work(n: int) -> int:
        if n >= 2:
            held.release()
            release.wait(30)
        return n

    thread = threading.Thread(
        target=run_batch, args=(range(4), work),
        kwargs={"journal": journal, "session": "live", "concurrency": 2, "handle_signals": False},
    )  # fmt: skip
    thread.start()
    for _ in range(2):
        assert held.acquire(timeout=10)
    yield release
    release.set()
    thread.join(10)


def test_journal_lists_sessions_and_live_runs_and_hides_details_without_the_key(
    journal: Journal, running: threading.Event
) -> None:
    app = ops_app(journal=journal, api_key=KEY, metrics=False)
    with serve_asgi(app) as base:
        public = httpx.get(f"{base}/journal").json()
        private = httpx.get(f"{base}/journal", headers={"authorization": f"Bearer {KEY}"}).json()
    (run,) = public["runs"]
    assert run["session"] == "live"
    assert (run["total"], run["in_flight"], run["journal"]) == (4, 2, None)
    sessions = {s["id"]: s for s in public["journals"][0]["sessions"]}
    assert sessions["finished"]["status"] == "completed"
    assert sessions["live"]["active"] is True
    assert "metadata" not in sessions["finished"]
    assert "10.1.2.3" not in str(public)
    assert public["journals"][0]["url"] is None
    assert private["journals"][0]["url"] == journal.url
    assert private["runs"][0]["journal"] == journal.url
    assert private["journals"][0]["sessions"][0]["metadata"] == {"base_url": "http://10.1.2.3"}


def test_journal_route_without_a_journal_shows_live_runs_only() -> None:
    with serve_asgi(ops_app(metrics=False)) as base:
        assert httpx.get(f"{base}/journal").json() == {"runs": [], "journals": []}
    with pytest.raises(ConfigError, match="journal"):
        ops_app(journal="batch.db")


def test_prometheus_counts_journal_items_and_pauses(tmp_path: Path) -> None:
    app = ops_app()
    try:
        with Journal(tmp_path / "m.db") as j:
            run_batch(range(6), lambda n: 1 // (n - 5) if n == 5 else n, journal=j, session="m")
        text, _ = app.core.metrics.exposition(None)
    finally:
        app.core.metrics.close()
    body = text.decode()
    assert 'stalwart_journal_items_total{outcome="done",session="m"} 5.0' in body
    assert 'stalwart_journal_items_total{outcome="failed",session="m"} 1.0' in body


def test_the_dashboard_shows_batch_sessions_and_a_run_in_progress(
    browser: Browser,  # noqa: F811
    journal: Journal,
    running: threading.Event,
) -> None:
    with serve_asgi(ops_app(journal=journal, metrics=False)) as base:
        page = browser.new_page()
        try:
            page.goto(f"{base}/dashboard")
            finished = page.locator('#journal tr[data-name="finished"]')
            expect(finished).to_have_attribute("data-status", "completed")
            expect(finished.locator("td").nth(5)).to_have_text("100.0 %")
            live = page.locator('#journal tr[data-name="live"]')
            expect(live).to_have_attribute("data-status", "running")
            expect(live.locator("td").nth(4)).to_have_text("4")
            running.set()  # the run ends: the page follows it to completed by itself
            expect(live).to_have_attribute("data-status", "completed", timeout=10_000)
        finally:
            page.close()
