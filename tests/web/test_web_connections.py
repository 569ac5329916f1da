"""/connections: the supervised connections of the process, with their stats."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from stalwart.supervisor import BlockingSupervisor
from stalwart.web import ops_app
from supervisor.peers import sync_echo
from web.support import KEY, serve_asgi
from web.test_web_dashboard import browser  # noqa: F401  (the chromium fixture)


@pytest.fixture
def echo_url() -> Iterator[str]:
    with sync_echo() as url:
        yield url


def test_connections_lists_live_supervisors_and_hides_hosts_without_the_key(
    echo_url: str,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = f"ws://user:pw@127.0.0.1:{s.getsockname()[1]}/ws"
    app = ops_app(api_key=KEY, metrics=False)
    with serve_asgi(app) as base:
        assert httpx.get(f"{base}/connections").json() == {"connections": []}
        with BlockingSupervisor([refused, echo_url], name="agent") as sup:
            assert sup.wait_connected(10)
            sup.send({"n": 1})
            assert sup.recv(timeout=10) == {"n": 1}
            public = httpx.get(f"{base}/connections")
            private = httpx.get(
                f"{base}/connections", headers={"authorization": f"Bearer {KEY}"}
            ).json()
        after = httpx.get(f"{base}/connections").json()
    assert public.status_code == 200
    assert public.headers["cache-control"] == "no-store"
    (shown,) = public.json()["connections"]
    assert shown["name"] == "agent"
    assert shown["connected"] is True
    assert (shown["endpoint"], shown["endpoints"]) == ("#1", ["#0", "#1"])
    assert (shown["messages_sent"], shown["messages_received"]) == (1, 1)
    assert "127.0.0.1" not in public.text
    (full,) = private["connections"]
    assert full["endpoint"] == echo_url
    assert "pw" not in str(full["endpoints"])  # credentials never shown, even with the key
    assert after == {"connections": []}  # closed supervisors leave the list


def test_prometheus_shows_each_supervised_connection(echo_url: str) -> None:
    from stalwart.metrics import PrometheusMetrics

    with PrometheusMetrics() as metrics:
        with BlockingSupervisor([echo_url], name="agent") as sup:
            assert sup.wait_connected(10)
            sup.send({"n": 1})
            assert sup.recv(timeout=10) == {"n": 1}
            text = metrics.exposition()[0].decode()
        closed = metrics.exposition()[0].decode()
    assert 'stalwart_connection_up{name="agent"} 1.0' in text
    assert 'stalwart_connection_endpoint_index{name="agent"} 0.0' in text
    assert 'stalwart_connection_messages_total{direction="sent",name="agent"} 1.0' in text
    assert 'stalwart_connection_messages_total{direction="received",name="agent"} 1.0' in text
    assert 'stalwart_connection_reconnects_total{name="agent"} 0.0' in text
    assert 'stalwart_connection_buffered_messages{name="agent"} 0.0' in text
    assert 'name="agent"' not in closed


def test_the_dashboard_shows_the_connection_and_follows_it(
    browser: Browser,  # noqa: F811
    echo_url: str,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = f"ws://127.0.0.1:{s.getsockname()[1]}/ws"
    with serve_asgi(ops_app(metrics=False)) as base:
        page = browser.new_page()
        try:
            with BlockingSupervisor([refused, echo_url], name="agent") as sup:
                assert sup.wait_connected(10)
                page.goto(f"{base}/dashboard")
                row = page.locator('#connections tr[data-name="agent"]')
                expect(row).to_have_attribute("data-status", "degraded")  # on the fallback
                expect(row.locator("td").nth(1)).to_have_text("connected")
                expect(row.locator("td").nth(2)).to_have_text("#1")
                sup.send({"n": 1})
                assert sup.recv(timeout=10) == {"n": 1}
                expect(row.locator("td").nth(5)).to_have_text("1", timeout=10_000)  # refreshed
            expect(row).to_have_count(0, timeout=10_000)  # closed: gone from the page
            expect(page.locator("#connections .empty")).to_be_visible()
        finally:
            page.close()
