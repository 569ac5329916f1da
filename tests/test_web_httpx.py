"""stalwart.http: HTTP responses as breaker and retry outcomes, against a real loopback server."""

from __future__ import annotations

import asyncio
import http.server
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import stalwart
from stalwart import CircuitBreaker, CircuitOpenError
from stalwart.http import (
    ResponseFailed,
    async_event_hooks,
    event_hooks,
    is_failure,
    raise_for_outcome,
)
from stalwart.testing import FakeClock
from threads import serving


class _Handler(http.server.BaseHTTPRequestHandler):
    """``/<status>?retry-after=<value>`` answers with that status and header."""

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        self.send_response(int(path.strip("/")))
        if query.startswith("retry-after="):
            self.send_header("Retry-After", query.removeprefix("retry-after="))
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    with serving(httpd) as (host, port):
        yield f"http://{host}:{port}"


@pytest.mark.parametrize(
    ("status", "failed"),
    [
        *[(s, False) for s in (200, 204, 301, 404)],
        *[(s, True) for s in (429, 500, 502, 503, 599)],
    ],
)
def test_5xx_and_429_are_failures_other_statuses_are_not(status: int, failed: bool) -> None:
    response = httpx.Response(status, request=httpx.Request("GET", "http://h/"))
    assert is_failure(response) is failed
    if failed:
        with pytest.raises(ResponseFailed):
            raise_for_outcome(response)
    else:
        assert raise_for_outcome(response) is response


@pytest.mark.parametrize(("status", "hint"), [(429, 7.0), (503, 7.0), (500, None), (502, None)])
def test_retry_after_is_the_hint_only_for_429_and_503(status: int, hint: float | None) -> None:
    response = httpx.Response(status, headers={"Retry-After": "7"})
    with pytest.raises(ResponseFailed) as err:
        raise_for_outcome(response)
    assert err.value.retry_after == hint
    assert isinstance(err.value, httpx.HTTPStatusError)
    assert err.value.response is response


def test_the_error_message_names_the_url_without_credentials_or_query() -> None:
    request = httpx.Request("GET", "http://user:secret@api.local/v1/items?token=abc")
    with pytest.raises(ResponseFailed) as err:
        raise_for_outcome(httpx.Response(500, request=request))
    text = str(err.value)
    assert "api.local/v1/items" in text
    assert "secret" not in text
    assert "abc" not in text


def test_a_429_through_the_hook_opens_the_breaker_for_the_servers_pause(server: str) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("api", failure_threshold=5, recovery_timeout=1.0, clock=clock)
    with httpx.Client(base_url=server, event_hooks=event_hooks(), timeout=5) as client:
        assert breaker.call(client.get, "/200").status_code == 200
        with pytest.raises(ResponseFailed):
            breaker.call(client.get, "/429?retry-after=120")
        with pytest.raises(CircuitOpenError) as err:
            breaker.call(client.get, "/200")
    assert err.value.retry_in == pytest.approx(120.0)


def test_a_retry_waits_for_the_503_retry_after(server: str) -> None:
    clock = FakeClock()
    policy = stalwart.Retry(on=ResponseFailed, max_attempts=2, max_delay=60.0, clock=clock)
    with httpx.Client(base_url=server, timeout=5) as client, pytest.raises(ResponseFailed):
        policy.call(lambda: raise_for_outcome(client.get("/503?retry-after=30")))
    assert clock.sleeps == [30.0]


def test_the_async_hook_raises_for_an_async_client(server: str) -> None:
    async def main() -> float | None:
        hooks = async_event_hooks()
        async with httpx.AsyncClient(base_url=server, event_hooks=hooks, timeout=5) as client:
            assert (await client.get("/200")).status_code == 200
            try:
                await client.get("/429?retry-after=3")
            except ResponseFailed as exc:
                return exc.retry_after
        return None

    assert asyncio.run(asyncio.wait_for(main(), 10)) == 3.0


def test_a_breaker_can_judge_returned_responses_with_is_failure(server: str) -> None:
    breaker = CircuitBreaker("values", failure_threshold=1, failure_if=is_failure)
    with httpx.Client(base_url=server, timeout=5) as client:
        response = breaker.call(client.get, "/500")
    assert response.status_code == 500  # the value is still returned
    assert breaker.state is stalwart.State.OPEN


def test_a_failure_raised_by_the_hooks_keeps_the_servers_body_readable(server: str) -> None:
    with (
        httpx.Client(base_url=server, event_hooks=event_hooks(), timeout=5) as client,
        pytest.raises(ResponseFailed) as sync_failure,
    ):
        client.get("/503")
    assert sync_failure.value.response.json() == {}  # read before the hook raised

    async def main() -> object:
        hooks = async_event_hooks()
        async with httpx.AsyncClient(base_url=server, event_hooks=hooks, timeout=5) as client:
            try:
                await client.get("/500")
            except ResponseFailed as exc:
                return exc.response.json()
        return None

    assert asyncio.run(asyncio.wait_for(main(), 10)) == {}
