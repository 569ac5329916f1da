"""Backoff maths, the reconnect presets' series, and Retry-After parsing."""

from __future__ import annotations

import calendar
import itertools
import math
import random
from datetime import timedelta
from typing import Any, ClassVar

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalwart import ConfigError
from stalwart._backoff import JITTERS, Backoff, Jitter, parse_retry_after, retry_after_from_response
from stalwart.presets import GRPC, SOCKETIO, WEBSOCKETS

seconds = st.floats(min_value=0.0, max_value=1e4, allow_nan=False)
attempts = st.integers(min_value=0, max_value=2000)
seeds = st.integers(min_value=0, max_value=2**32)


def _exp(b: Backoff, n: int) -> float:
    """The capped exponential term, computed independently of the code under test."""
    if b.base_delay == 0:
        return 0.0
    try:
        return min(b.max_delay, b.base_delay * b.multiplier**n)
    except OverflowError:
        return b.max_delay


@st.composite
def backoffs(draw: Any, jitter: Jitter) -> Backoff:
    base = draw(seconds)
    cap = base + draw(seconds)
    multiplier = 2.0 if jitter == "decorrelated" else draw(st.floats(1.0, 10.0))
    factor = draw(st.floats(0.01, 1.0)) if jitter == "proportional" else None
    return Backoff(
        base_delay=base, max_delay=cap, multiplier=multiplier, jitter=jitter, jitter_factor=factor
    )


# -- each jitter kind stays within its bounds ------------------------------------------


@given(backoffs("full"), attempts, seeds)
def test_full_jitter_is_uniform_between_zero_and_the_capped_exponential(
    b: Backoff, n: int, seed: int
) -> None:
    delay = b.delay(n, None, random.Random(seed))
    assert 0.0 <= delay <= _exp(b, n)


@given(backoffs("equal"), attempts, seeds)
def test_equal_jitter_is_between_half_and_all_of_the_capped_exponential(
    b: Backoff, n: int, seed: int
) -> None:
    delay = b.delay(n, None, random.Random(seed))
    v = _exp(b, n)
    assert v / 2 <= delay <= v * (1 + 1e-12)


@given(backoffs("decorrelated"), attempts, st.none() | seconds, seeds)
def test_decorrelated_jitter_is_between_base_and_three_times_the_previous_capped(
    b: Backoff, n: int, previous: float | None, seed: int
) -> None:
    delay = b.delay(n, previous, random.Random(seed))
    last = b.base_delay if previous is None else max(previous, b.base_delay)
    assert b.base_delay <= delay <= min(b.max_delay, last * 3)


@given(backoffs("proportional"), attempts, seeds)
def test_proportional_jitter_spreads_the_capped_exponential_by_the_factor(
    b: Backoff, n: int, seed: int
) -> None:
    delay = b.delay(n, None, random.Random(seed))
    v, f = _exp(b, n), b.jitter_factor
    assert f is not None
    assert v * (1 - f) * (1 - 1e-12) <= delay <= v * (1 + f) * (1 + 1e-12)


@given(backoffs("none"), attempts)
def test_no_jitter_is_exactly_the_capped_exponential(b: Backoff, n: int) -> None:
    assert b.delay(n) == _exp(b, n)


@given(
    st.sampled_from(JITTERS).flatmap(backoffs),
    st.lists(st.integers(0, 2**32), min_size=1, max_size=30),
)
def test_every_delay_is_finite_and_not_negative(b: Backoff, draws: list[int]) -> None:
    series = b.delays(random.Random(draws[0]))
    for delay in itertools.islice(series, len(draws)):
        assert math.isfinite(delay)
        assert delay >= 0.0


def test_aws_formulas_on_known_draws() -> None:
    """With random() fixed at 0.5, each formula gives its midpoint (ops-specs 2.4)."""

    class Half(random.Random):
        def random(self) -> float:
            return 0.5

    half = Half()
    # expo(2) = min(cap=10, 1 * 2**2) = 4
    assert Backoff(base_delay=1, max_delay=10, jitter="none").delay(2) == 4.0
    assert Backoff(base_delay=1, max_delay=10, jitter="full").delay(2, None, half) == 2.0
    assert Backoff(base_delay=1, max_delay=10, jitter="equal").delay(2, None, half) == 3.0
    # decorrelated: min(cap, U(base, previous * 3)) = U(1, 6) at 0.5 = 3.5
    assert Backoff(base_delay=1, max_delay=10, jitter="decorrelated").delay(5, 2.0, half) == 3.5
    assert Backoff(base_delay=1, max_delay=3, jitter="decorrelated").delay(5, 2.0, half) == 3.0
    # the first decorrelated delay grows from base: U(1, 3)
    assert Backoff(base_delay=1, max_delay=10, jitter="decorrelated").delay(0, None, half) == 2.0
    # the cap applies before jitter for full: U(0, 10) even at attempt 50
    assert Backoff(base_delay=1, max_delay=10, jitter="full").delay(50, None, half) == 5.0


@pytest.mark.parametrize("jitter", ["full", "equal", "decorrelated", "proportional"])
def test_jitter_first_false_waits_exactly_base_delay_first_then_jitters(jitter: Jitter) -> None:
    b = Backoff(base_delay=1.0, max_delay=100.0, jitter=jitter, jitter_first=False)
    rng = random.Random(5)
    assert b.delay(0, None, rng) == 1.0
    assert len({b.delay(1, 1.0, rng) for _ in range(5)}) == 5


def test_a_seeded_rng_reproduces_the_series_with_one_draw_per_delay() -> None:
    b = Backoff(base_delay=0.1, max_delay=5.0, jitter="full")
    first = list(itertools.islice(b.delays(random.Random(7)), 10))
    assert first == list(itertools.islice(b.delays(random.Random(7)), 10))
    rng = random.Random(7)
    list(itertools.islice(b.delays(rng), 10))
    reference = random.Random(7)
    for _ in range(10):
        reference.random()
    assert rng.random() == reference.random()


def test_delays_iterator_feeds_previous_to_decorrelated_and_resets() -> None:
    b = Backoff(base_delay=1.0, max_delay=1000.0, jitter="decorrelated")
    series = b.delays(random.Random(3))
    delays = list(itertools.islice(series, 20))
    for before, after in itertools.pairwise(delays):
        assert 1.0 <= after <= before * 3
    assert max(delays) > 3.0  # grown past the first delay's range (U(1, 3))...
    series.reset()
    assert 1.0 <= next(series) <= 3.0  # ...and back to it


def test_huge_attempt_numbers_neither_overflow_nor_exceed_the_cap() -> None:
    for jitter in JITTERS:
        assert Backoff(base_delay=1, max_delay=60, jitter=jitter).delay(10**6) <= 60 * 1.2
    assert Backoff(base_delay=0, max_delay=0, jitter="none").delay(10**6) == 0.0
    assert SOCKETIO.delay(10**6) == 5.0


# -- the reconnect presets reproduce their references -------------------------------


def test_grpc_first_wait_is_exactly_initial_backoff_then_jittered_by_20_percent() -> None:
    assert GRPC.base_delay == 1.0
    assert GRPC.multiplier == 1.6
    assert GRPC.max_delay == 120.0
    assert GRPC.jitter == "proportional"
    assert GRPC.jitter_factor == 0.2
    for seed in range(50):
        delays = list(itertools.islice(GRPC.delays(random.Random(seed)), 30))
        assert delays[0] == 1.0
        for n, delay in enumerate(delays[1:], 1):
            backoff = min(1.6**n, 120.0)
            assert backoff * 0.8 <= delay <= backoff * 1.2


def test_websockets_random_first_wait_then_3_1_growing_by_golden_ratio_to_90() -> None:
    for seed in range(50):
        delays = list(itertools.islice(WEBSOCKETS.delays(random.Random(seed)), 15))
        assert 0.0 <= delays[0] <= 5.0
        assert delays[1] == 3.1
        assert delays[2] == pytest.approx(3.1 * 1.618)
        assert delays[8] == pytest.approx(3.1 * 1.618**7)  # 89.99: still below the cap
        assert delays[9:] == [90.0] * 6
    # websockets' own generator, as in its client.py, gives the same numbers.
    rng = random.Random(11)
    expected = [rng.random() * 5.0]
    delay = 3.1
    while delay < 90.0:
        expected.append(delay)
        delay *= 1.618
    expected += [90.0, 90.0]
    mine = list(itertools.islice(WEBSOCKETS.delays(random.Random(11)), len(expected)))
    assert mine == pytest.approx(expected, rel=1e-12)  # 1.618**n vs repeated *= 1.618


def test_socketio_spreads_by_half_around_the_uncapped_series_then_caps_at_5() -> None:
    assert (SOCKETIO.base_delay, SOCKETIO.multiplier, SOCKETIO.max_delay) == (1.0, 2.0, 5.0)
    assert SOCKETIO.jitter_factor == 0.5
    for seed in range(200):
        d = list(itertools.islice(SOCKETIO.delays(random.Random(seed)), 6))
        assert 0.5 <= d[0] <= 1.5  # "the first delay falls in 500-1500 ms"
        assert 1.0 <= d[1] <= 3.0
        assert 2.0 <= d[2] <= 5.0
        assert 4.0 <= d[3] <= 5.0  # 8 s * U(0.5, 1.5), capped: backo2's order
        assert d[4:] == [5.0, 5.0]


# -- config errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "settings"),
    [
        ("base_delay", {"base_delay": -1.0}),
        ("base_delay", {"base_delay": math.nan}),
        ("base_delay", {"base_delay": True}),
        ("max_delay", {"max_delay": math.inf}),
        ("max_delay", {"base_delay": 2.0, "max_delay": 1.0}),
        ("multiplier", {"multiplier": 0.5}),
        ("multiplier", {"multiplier": math.inf}),
        ("multiplier", {"jitter": "decorrelated", "multiplier": 3.0}),
        ("jitter", {"jitter": "fulll"}),
        ("jitter_factor", {"jitter_factor": 0.2}),
        ("jitter_factor", {"jitter": "proportional", "jitter_factor": 0.0}),
        ("jitter_factor", {"jitter": "proportional", "jitter_factor": 1.5}),
        ("first_delay", {"first_delay": 0.0}),
        ("jitter_first", {"jitter_first": 0}),
        ("jitter_first", {"jitter": "none", "jitter_first": False}),
        ("cap_after_jitter", {"cap_after_jitter": 1}),
        ("cap_after_jitter", {"jitter": "full", "cap_after_jitter": True}),
    ],
)
def test_bad_backoff_settings_name_the_field(field: str, settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        Backoff(**settings)
    assert info.value.field == field


def test_defaults_and_zero_delays_are_valid() -> None:
    b = Backoff()
    assert (b.base_delay, b.max_delay, b.multiplier, b.jitter) == (0.5, 10.0, 2.0, "full")
    assert Backoff(base_delay=0.0, max_delay=0.0).delay(3) == 0.0
    assert Backoff(multiplier=1, jitter="none").delay(9) == 0.5


# -- Retry-After ---------------------------------------------------------------------

NOW = float(calendar.timegm((1994, 11, 6, 8, 49, 0, 0, 0, 0)))  # 37 s before the RFC example


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        (b"30", 30.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 37.0),  # IMF-fixdate
        ("Sunday, 06-Nov-94 08:49:37 GMT", 37.0),  # RFC 850
        ("Sun Nov  6 08:49:37 1994", 37.0),  # asctime
        ("sun, 06 nov 1994 08:49:37 gmt", 37.0),
        ("Sun, 06 Nov 1994 08:48:00 GMT", 0.0),  # in the past
        ("Sun, 06 Nov 1994 08:49:60 GMT", 60.0),  # leap second
    ],
)
def test_parse_retry_after_reads_seconds_and_all_three_http_dates(
    value: str | bytes, expected: float
) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    "junk",
    [
        None,
        "",
        "soon",
        "1e3",
        "nan",
        "inf",
        "12 s",
        "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:49:37 GMT",
        "Sun, 06 Xyz 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 PST",
        "06 Nov 1994 08:49:37 GMT",
        "9" * 400,
    ],
)
def test_parse_retry_after_gives_none_for_junk(junk: str | None) -> None:
    assert parse_retry_after(junk, now=NOW) is None


@given(st.integers(min_value=0, max_value=10**12))
def test_any_delay_seconds_parses_to_itself(n: int) -> None:
    assert parse_retry_after(str(n)) == float(n)


@given(st.datetimes(min_value=__import__("datetime").datetime(1970, 1, 2)), st.integers(0, 10**6))
def test_every_http_date_format_gives_the_same_seconds(when: Any, ahead: int) -> None:
    future = when.replace(microsecond=0)
    now = calendar.timegm(future.timetuple()) - ahead
    imf = future.strftime("%a, %d %b %Y %H:%M:%S GMT")
    asctime = future.strftime("%a %b ") + f"{future.day:2d}" + future.strftime(" %H:%M:%S %Y")
    assert parse_retry_after(imf, now=now) == float(ahead)
    assert parse_retry_after(asctime, now=now) == float(ahead)
    if abs(future.year - 1994) < 49:  # RFC 850's two-digit year, read relative to 1994
        rfc850 = future.strftime("%A, %d-%b-%y %H:%M:%S GMT")
        assert parse_retry_after(rfc850, now=calendar.timegm((1994, 6, 1, 0, 0, 0))) is not None


def test_rfc850_two_digit_years_more_than_50_years_ahead_are_in_the_past() -> None:
    now = float(calendar.timegm((2030, 1, 1, 0, 0, 0)))
    assert parse_retry_after("Monday, 01-Jan-30 00:00:10 GMT", now=now) == 10.0  # 2030
    assert parse_retry_after("Thursday, 01-Jan-81 00:00:00 GMT", now=now) == 0.0  # 1981


def test_retry_after_from_an_httpx_response_and_an_exception_carrying_one() -> None:
    request = httpx.Request("GET", "https://example.test/")
    response = httpx.Response(429, headers={"Retry-After": "3"}, request=request)
    assert retry_after_from_response(response) == 3.0
    error = httpx.HTTPStatusError("429", request=request, response=response)
    assert retry_after_from_response(error) == 3.0
    dated = httpx.Response(503, headers={"retry-after": "Sun, 06 Nov 1994 08:49:37 GMT"})
    assert retry_after_from_response(dated, now=NOW) == 37.0


def test_retry_after_from_plain_mappings_and_things_without_headers() -> None:
    class Reply:
        headers: ClassVar = {"RETRY-AFTER": "4"}

    class Failure(Exception):
        response = Reply()

    assert retry_after_from_response(Reply()) == 4.0
    assert retry_after_from_response(Failure()) == 4.0
    assert retry_after_from_response(ConnectionError()) is None
    assert retry_after_from_response(httpx.Response(200)) is None
    assert retry_after_from_response(httpx.ConnectError("refused")) is None  # .request raises
    assert retry_after_from_response(None) is None

    class Weird:
        headers: ClassVar = {"Retry-After": 5}  # not text: no hint

    assert retry_after_from_response(Weird()) is None


def test_parse_retry_after_defaults_now_to_the_wall_clock() -> None:
    import email.utils

    soon = email.utils.formatdate(usegmt=True)  # this second, IMF-fixdate
    hint = parse_retry_after(soon)
    assert hint is not None
    assert 0.0 <= hint <= 1.0
    assert timedelta(seconds=parse_retry_after("2") or 0) == timedelta(seconds=2)


def test_the_default_hint_reads_the_openai_clients_rate_limit_error() -> None:
    """No glue: a breaker or a retry pauses for the 429's Retry-After (retry-after-ms first)."""
    import httpx
    import openai

    from stalwart._backoff import default_retry_after

    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")

    def limited(headers: dict[str, str], status: int = 429) -> openai.APIStatusError:
        response = httpx.Response(status, headers=headers, request=request)
        cls = openai.RateLimitError if status == 429 else openai.InternalServerError
        return cls("Rate limit reached", response=response, body=None)

    assert default_retry_after(limited({"retry-after": "2"})) == 2.0
    assert default_retry_after(limited({"retry-after": "2", "retry-after-ms": "1500"})) == 1.5
    assert default_retry_after(limited({})) is None
    assert default_retry_after(limited({"retry-after": "7"}, status=500)) is None  # not a pause
    assert default_retry_after(ValueError("no response")) is None
