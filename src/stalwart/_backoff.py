"""Backoff maths and Retry-After parsing: how long to wait before trying again.

:class:`Backoff` is a frozen, validated description of a delay series (exponential from
``base_delay`` by ``multiplier``, capped at ``max_delay``, then jittered); its
:meth:`Backoff.delay` is a pure function of the attempt, the previous delay and a random
source. The jitter formulas are those of AWS's "Exponential Backoff And Jitter" (verified
against its simulator, ``aws-samples/aws-arch-backoff-simulator``), plus the proportional
jitter of gRPC and Socket.IO. Retry and the reconnect loops use it; neither it nor the
parsers here read a clock, sleep or lock.

:func:`parse_retry_after` reads an HTTP ``Retry-After`` value (RFC 9110 §10.2.3: delay
seconds or any of the three HTTP-date formats of §5.6.7); :func:`retry_after_from_response`
finds that header on a response, or on an exception that carries one, by duck typing (no
HTTP library is imported).
"""

from __future__ import annotations

import calendar
import math
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeAlias

from ._errors import ConfigError
from ._outcome import normalize_hint
from ._validate import one_of, optional_positive, positive, ratio

__all__ = (
    "DEFAULT_BASE_DELAY",
    "DEFAULT_JITTER",
    "DEFAULT_JITTER_FACTOR",
    "DEFAULT_MAX_DELAY",
    "DEFAULT_MULTIPLIER",
    "HINT_STATUSES",
    "JITTERS",
    "Backoff",
    "Jitter",
    "default_retry_after",
    "parse_retry_after",
    "retry_after_from_response",
)

Jitter: TypeAlias = Literal["full", "equal", "decorrelated", "proportional", "none"]
"""How a computed delay is randomised; see :class:`Backoff`."""

JITTERS: tuple[Jitter, ...] = ("full", "equal", "decorrelated", "proportional", "none")

DEFAULT_BASE_DELAY = 0.5
"""Seconds: the first delay of the series, before jitter."""
DEFAULT_MAX_DELAY = 10.0
"""Seconds: the cap on the exponential series."""
DEFAULT_MULTIPLIER = 2.0
"""Growth of the series per attempt (AWS's ``base * 2**n``)."""
DEFAULT_JITTER: Jitter = "full"
"""AWS's recommendation: the least work for contending clients."""
DEFAULT_JITTER_FACTOR = 0.2
"""Spread of ``"proportional"`` jitter when no ``jitter_factor`` is given (gRPC's ±20 %)."""

# The random source used when none is injected. random.Random's methods are atomic under
# the GIL and locked on free-threaded builds, so threads may share it.
_RNG = random.Random()
# Beyond this, base * multiplier**n is "infinitely" long; it keeps arithmetic finite.
_HUGE = 1e300


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """A series of delays: exponential, capped, jittered. Frozen and validated.

    With ``v = min(max_delay, base_delay * multiplier**n)`` for the ``n``-th wait (n = 0
    for the first), each ``jitter`` kind gives:

    * ``"full"``: ``U(0, v)`` (AWS Full Jitter);
    * ``"equal"``: ``v/2 + U(0, v/2)`` (AWS Equal Jitter);
    * ``"decorrelated"``: ``min(max_delay, U(base_delay, previous * 3))``, where
      ``previous`` is the delay before (``base_delay`` for the first); AWS's formula, so
      ``multiplier`` does not apply;
    * ``"proportional"``: ``U(v * (1 - f), v * (1 + f))`` with ``f = jitter_factor``
      (gRPC's ±20 %); it may exceed ``max_delay`` by the factor unless
      ``cap_after_jitter`` is set;
    * ``"none"``: ``v``.

    Three settings exist to reproduce published reconnect algorithms exactly (see
    ``stalwart.presets``): ``first_delay`` (websockets' random first wait),
    ``jitter_first`` (gRPC does not jitter its first wait) and ``cap_after_jitter``
    (Socket.IO caps after jittering).
    """

    base_delay: float = DEFAULT_BASE_DELAY
    """Seconds: the series' first term."""
    max_delay: float = DEFAULT_MAX_DELAY
    """Seconds: the cap on the series (and on decorrelated delays)."""
    multiplier: float = DEFAULT_MULTIPLIER
    """Growth per attempt, >= 1 (1: constant delays)."""
    jitter: Jitter = DEFAULT_JITTER
    jitter_factor: float | None = None
    """Spread of ``"proportional"`` jitter, in (0, 1] (default 0.2); only with it."""
    first_delay: float | None = None
    """If set, the first wait is ``U(0, first_delay)`` on its own (RFC 6455 §7.2.3's random
    initial reconnect delay) and the series above starts with the second wait."""
    jitter_first: bool = True
    """False: the series' first term is exactly ``base_delay`` (gRPC's INITIAL_BACKOFF);
    jitter applies from the next one."""
    cap_after_jitter: bool = False
    """True: ``max_delay`` caps the jittered delay, taken around the uncapped series
    (Socket.IO's order); only with ``"proportional"``, the one kind that can exceed it."""

    def __post_init__(self) -> None:
        positive("base_delay", self.base_delay, allow_zero=True)
        positive("max_delay", self.max_delay, allow_zero=True)
        if self.max_delay < self.base_delay:
            raise ConfigError(
                "max_delay", f"must be >= base_delay ({self.base_delay}), got {self.max_delay}"
            )
        if (
            isinstance(self.multiplier, bool)
            or not isinstance(self.multiplier, int | float)
            or not 1 <= self.multiplier < math.inf
        ):
            raise ConfigError(
                "multiplier", f"must be a finite number >= 1 (1: constant), got {self.multiplier!r}"
            )
        one_of("jitter", self.jitter, JITTERS)
        proportional = self.jitter == "proportional"
        # Settings that would silently do nothing are mistakes worth naming.
        if self.jitter == "decorrelated" and self.multiplier != DEFAULT_MULTIPLIER:
            raise ConfigError(
                "multiplier",
                "does not apply to decorrelated jitter (it grows by up to 3x the previous "
                "delay, as AWS defines it); leave it out",
            )
        if self.jitter_factor is not None:
            if not proportional:
                raise ConfigError("jitter_factor", 'only applies with jitter="proportional"')
            ratio("jitter_factor", self.jitter_factor)
        optional_positive("first_delay", self.first_delay)
        if not isinstance(self.jitter_first, bool):
            raise ConfigError("jitter_first", f"must be True or False, got {self.jitter_first!r}")
        if not self.jitter_first and self.jitter == "none":
            raise ConfigError("jitter_first", 'has no effect with jitter="none"; leave it out')
        if not isinstance(self.cap_after_jitter, bool):
            raise ConfigError(
                "cap_after_jitter", f"must be True or False, got {self.cap_after_jitter!r}"
            )
        if self.cap_after_jitter and not proportional:
            raise ConfigError(
                "cap_after_jitter",
                'only applies with jitter="proportional"; the other kinds never exceed max_delay',
            )

    def delay(
        self, attempt: int, previous: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before the next try, after ``attempt`` earlier waits (0: first).

        ``previous`` is the delay this series gave last time (only decorrelated jitter
        reads it; None for the first). Pure apart from the draw from ``rng`` (default: a
        shared ``random.Random``): every jittered delay takes exactly one draw, so a seeded
        ``rng`` gives a reproducible series.
        """
        rng = _RNG if rng is None else rng
        if self.first_delay is not None:
            if attempt == 0:
                return rng.uniform(0.0, self.first_delay)
            attempt -= 1
        jitter = self.jitter
        base, cap = self.base_delay, self.max_delay
        if jitter == "decorrelated":
            if attempt == 0 and not self.jitter_first:
                return base
            last = base if previous is None else max(previous, base)
            return min(cap, rng.uniform(base, last * 3))
        grown = _grow(base, self.multiplier, attempt)
        if jitter == "none" or (attempt == 0 and not self.jitter_first):
            return min(cap, grown)
        if jitter == "proportional":
            spread = DEFAULT_JITTER_FACTOR if self.jitter_factor is None else self.jitter_factor
            if self.cap_after_jitter:
                return min(cap, _spread(rng, min(grown, _HUGE), spread))
            return _spread(rng, min(cap, grown), spread)
        value = min(cap, grown)
        if jitter == "full":
            return rng.uniform(0.0, value)
        return value / 2 + rng.uniform(0.0, value / 2)  # equal

    def delays(self, rng: random.Random | None = None) -> _Series:
        """An endless iterator over the series (for reconnect loops); ``reset()`` it after a
        success to start again from the first delay."""
        return _Series(self, rng)


def _grow(base: float, multiplier: float, n: int) -> float:
    if base == 0.0 or multiplier == 1.0:
        return base
    try:
        return base * multiplier**n
    except OverflowError:
        return math.inf


def _spread(rng: random.Random, value: float, factor: float) -> float:
    return rng.uniform(value * (1.0 - factor), value * (1.0 + factor))


class _Series:
    """Iterates one :class:`Backoff`'s delays, remembering the previous one (decorrelated)."""

    __slots__ = ("_attempt", "_backoff", "_previous", "_rng")

    def __init__(self, backoff: Backoff, rng: random.Random | None) -> None:
        self._backoff = backoff
        self._rng = rng
        self._attempt = 0
        self._previous: float | None = None

    def __iter__(self) -> _Series:
        return self

    def __next__(self) -> float:
        delay = self._backoff.delay(self._attempt, self._previous, self._rng)
        self._attempt += 1
        self._previous = delay
        return delay

    def reset(self) -> None:
        """Start again from the first delay (after a successful connection, say)."""
        self._attempt = 0
        self._previous = None


# -- Retry-After -------------------------------------------------------------------

_SECONDS = re.compile(r"[+-]?\d+(?:\.\d+)?")
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_DAYS = r"(?:mon|tue|wed|thu|fri|sat|sun)"
_LONG_DAYS = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_TIME = r"(\d\d):(\d\d):(\d\d)"
# RFC 9110 §5.6.7: a recipient must accept all three.
_IMF_FIXDATE = re.compile(rf"{_DAYS}, (\d\d) ([a-z]{{3}}) (\d{{4}}) {_TIME} gmt")
_RFC850_DATE = re.compile(rf"{_LONG_DAYS}, (\d\d)-([a-z]{{3}})-(\d\d) {_TIME} gmt")
_ASCTIME_DATE = re.compile(rf"{_DAYS} ([a-z]{{3}}) (\d{{1,2}}) {_TIME} (\d{{4}})")


def parse_retry_after(value: str | bytes | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or None if it is not one.

    Accepts delay-seconds (``"120"``; a fraction or a sign is tolerated) and HTTP-dates in
    all three formats: IMF-fixdate ``Sun, 06 Nov 1994 08:49:37 GMT``, RFC 850
    ``Sunday, 06-Nov-94 08:49:37 GMT`` and asctime ``Sun Nov  6 08:49:37 1994``. A date
    is measured against ``now`` (Unix seconds; default: the system's wall clock). A date
    in the past or a negative number gives 0.0; anything else gives None.
    """
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("latin-1")
    elif not isinstance(value, str):
        return None  # None, or whatever else a header mapping held
    text = " ".join(value.split()).lower()
    if _SECONDS.fullmatch(text):
        return normalize_hint(float(text))
    now = time.time() if now is None else now
    when = _http_date(text, now)
    return None if when is None else normalize_hint(when - now)


def _http_date(text: str, now: float) -> float | None:
    """Unix seconds of an HTTP-date (already lower-cased, spaces collapsed), or None."""
    if m := _IMF_FIXDATE.fullmatch(text):
        day, month, year, hh, mm, ss = m.groups()
    elif m := _RFC850_DATE.fullmatch(text):
        day, month, short_year, hh, mm, ss = m.groups()
        year = str(_full_year(int(short_year), now))
    elif m := _ASCTIME_DATE.fullmatch(text):
        month, day, hh, mm, ss, year = m.groups()
    else:
        return None
    number = _MONTHS.get(month)
    if number is None:
        return None
    fields = (int(year), number, int(day), int(hh), int(mm), int(ss))
    try:
        # Validates the calendar (Feb 30 is junk); a leap second (:60) is allowed.
        datetime(*fields[:5], min(fields[5], 59))
    except ValueError:
        return None
    if fields[5] > 60:
        return None
    return float(calendar.timegm((*fields, 0, 0, 0)))


def _full_year(two_digits: int, now: float) -> int:
    """RFC 9110 §5.6.7: a two-digit year more than 50 years ahead is in the past century."""
    this_year = time.gmtime(now).tm_year
    year = this_year - this_year % 100 + two_digits
    if year > this_year + 50:
        year -= 100
    return year


def retry_after_from_response(source: Any, *, now: float | None = None) -> float | None:
    """Seconds from the ``Retry-After`` header of a response, or of the response an
    exception carries (``exc.response``, as httpx's ``HTTPStatusError`` or the openai
    client's ``RateLimitError``); None if absent.

    ``retry-after-ms`` (milliseconds; sent by OpenAI and Azure, read first by their
    clients) wins over ``Retry-After`` when both are there. Duck-typed: anything with a
    ``headers`` mapping works (httpx, requests, aiohttp). Use it as
    ``retry(..., retry_after_from=retry_after_from_response)``.
    """
    headers = _headers_of(source)
    if headers is None:
        headers = _headers_of(_attribute(source, "response"))
    if headers is None:
        return None
    millis = _header(headers, "retry-after-ms")
    if millis is not None:
        try:
            hint = normalize_hint(float(millis) / 1000.0)
        except (TypeError, ValueError):
            hint = None
        if hint is not None:
            return hint
    return parse_retry_after(_header(headers, "retry-after"), now=now)


HINT_STATUSES = frozenset({429, 503})
"""Statuses whose ``Retry-After`` is a pause for every caller (RFC 9110 §10.2.3)."""


def default_retry_after(source: Any) -> float | None:
    """The server-given pause in an exception or a value: its ``retry_after`` attribute
    (seconds or a timedelta), else the ``Retry-After`` of the 429 or 503 response it
    carries (``exc.response``: httpx, requests, the openai client), else None."""
    hint = normalize_hint(getattr(source, "retry_after", None))
    if hint is not None:
        return hint
    response = _attribute(source, "response")
    if response is None or _attribute(response, "status_code") not in HINT_STATUSES:
        return None
    return retry_after_from_response(response)


def _attribute(source: Any, name: str) -> Any:
    try:
        return getattr(source, name, None)
    except Exception:  # a property that refuses (httpx's .request when unset, say)
        return None


def _headers_of(source: Any) -> Any:
    headers = _attribute(source, "headers")
    return headers if hasattr(headers, "get") else None


def _header(headers: Any, name: str) -> Any:
    try:
        # Case-insensitive mappings (httpx, requests, aiohttp) find any spelling at once.
        value = headers.get(name)
        if value is None and isinstance(headers, Mapping):
            value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    except Exception:
        return None
    return value
