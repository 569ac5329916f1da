"""stalwart.presets: the published numbers, and that they plug into retry() as they are."""

from __future__ import annotations

import httpx
import pytest

from stalwart import presets
from stalwart._backoff import Backoff, retry_after_from_response
from stalwart._retry import Retry, retry
from stalwart.testing import FakeClock


class OperationalError(Exception):
    pass


def test_database_s3_and_http_presets_have_the_published_numbers() -> None:
    assert presets.DATABASE == {
        "max_attempts": 3,
        "base_delay": 0.5,
        "max_delay": 10.0,
        "timeout": 30.0,
    }
    assert presets.S3 == {"max_attempts": 5, "base_delay": 1.0, "max_delay": 30.0, "timeout": 60.0}
    assert {
        "max_attempts": 3,
        "base_delay": 1.0,
        "max_delay": 20.0,
        "timeout": 30.0,
        "retry_after_from": retry_after_from_response,
    } == presets.HTTP
    assert {408, 429, 500, 502, 503, 504} == presets.HTTP_RETRY_STATUSES


@pytest.mark.parametrize("preset", [presets.DATABASE, presets.S3, presets.HTTP])
def test_each_retry_preset_spreads_into_retry(preset: presets.RetryOptions) -> None:
    r = retry(on=OperationalError, **preset)
    for key, value in preset.items():
        assert getattr(r.config, key) == value
    assert r.config.jitter == "full"


def test_database_preset_in_use(clock: FakeClock) -> None:
    calls = 0

    @retry(on=OperationalError, clock=clock, **presets.DATABASE)
    def query() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise OperationalError("server closed the connection unexpectedly")
        return "rows"

    assert query() == "rows"
    assert len(clock.sleeps) == 2
    assert clock.sleeps[0] <= 0.5
    assert clock.sleeps[1] <= 1.0


def test_http_preset_honours_retry_after_on_httpx_errors(clock: FakeClock) -> None:
    request = httpx.Request("GET", "https://api.example.test/items")
    replies = iter([httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200)])

    def get() -> httpx.Response:
        response = next(replies)
        response.request = request
        return response.raise_for_status()

    r = Retry(on=httpx.HTTPStatusError, clock=clock, **presets.HTTP)
    assert r(get)().status_code == 200
    assert clock.sleeps == [7.0]


def test_http_preset_gives_up_on_a_retry_after_beyond_its_20_s_cap(clock: FakeClock) -> None:
    response = httpx.Response(503, headers={"Retry-After": "120"})
    response.request = httpx.Request("GET", "https://api.example.test/")

    def get() -> httpx.Response:
        return response.raise_for_status()

    with pytest.raises(httpx.HTTPStatusError) as info:
        Retry(on=httpx.HTTPStatusError, clock=clock, **presets.HTTP)(get)()
    assert clock.sleeps == []
    assert "more than max_delay=20 s" in info.value.__notes__[0]


def test_one_setting_of_a_preset_can_be_changed_in_a_new_dict() -> None:
    patient: presets.RetryOptions = {**presets.DATABASE, "max_attempts": 5}
    r = retry(on=OperationalError, **patient)
    assert r.config.max_attempts == 5
    assert r.config.timeout == 30.0
    assert presets.DATABASE["max_attempts"] == 3


def test_reconnect_presets_are_backoffs_with_the_published_parameters() -> None:
    assert isinstance(presets.GRPC, Backoff)
    assert (presets.GRPC.base_delay, presets.GRPC.multiplier, presets.GRPC.max_delay) == (
        1.0,
        1.6,
        120.0,
    )
    assert presets.GRPC.jitter_factor == 0.2
    assert not presets.GRPC.jitter_first
    ws = presets.WEBSOCKETS
    assert (ws.first_delay, ws.base_delay, ws.multiplier, ws.max_delay, ws.jitter) == (
        5.0,
        3.1,
        1.618,
        90.0,
        "none",
    )
    sio = presets.SOCKETIO
    assert (sio.base_delay, sio.multiplier, sio.max_delay, sio.jitter_factor) == (
        1.0,
        2.0,
        5.0,
        0.5,
    )
    assert sio.cap_after_jitter
    assert sio.jitter == "proportional"
