"""The poller's decision core: from one poll's answer, how long to wait before the next, and why.

Pure and clock-free: the Python :class:`~stalwart.poller.AdaptivePoller` and the browser's
``stalwart-poller.js`` make the same decision from the same answer (a shared table of cases
is run against both). The protocol, in the order it is applied:

1. **The server's hint.** A JSON object with a positive ``poll_interval`` (seconds; a
   breaker's :meth:`~stalwart.CircuitBreaker.poll_hint`) sets the interval, whatever the
   status code: a 503 that says ``poll_interval: 60`` is a server that works and a
   dependency that does not. Without ``poll_interval``, a positive ``retry_in`` is used.
2. **Retry-After** (RFC 9110 §10.2.3, both forms) and a drained ``RateLimit`` (``r=0``
   with ``t``, the IETF draft) are a floor: they override any backoff, a longer hint
   still stands, and they are honoured even beyond ``max_interval``.
3. **Errors without a hint** (no answer, a timeout, a 4xx or 5xx, a body that is not JSON)
   back off SWR's way: ``floor((random + 0.5) * 2 ** min(n, 8)) * error_interval`` after
   ``n`` failed polls in a row; without jitter ``random`` is 0.5, the midpoint.
4. Anything else waits ``interval``. Hints and backoff are kept within
   ``[min_interval, max_interval]``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._backoff import parse_retry_after
from .._errors import ConfigError
from .._validate import positive

__all__ = (
    "Hint",
    "PollAnswer",
    "PollDecision",
    "PollSettings",
    "decide",
    "rate_limit_wait",
    "read_hint",
)

MAX_DOUBLINGS = 8
"""SWR's cap on the backoff exponent: at most 2**8 times ``error_interval`` (before the cap)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PollSettings:
    """Validated settings of a poller (seconds). See docs/poller.md."""

    interval: float = 5.0
    """Between polls whose answer carries no hint."""
    error_interval: float = 5.0
    """The base of the backoff after polls that failed without a hint."""
    min_interval: float = 1.0
    """The floor for hints and backoff (a hint of 0.1 s would hammer the server)."""
    max_interval: float = 300.0
    """The ceiling for hints and backoff; Retry-After may go past it."""
    timeout: float = 10.0
    """A request taking longer is abandoned and counts as a failed poll."""
    jitter: bool = True
    """Spread the error backoff so clients that failed together do not return together."""

    def __post_init__(self) -> None:
        for name in ("interval", "error_interval", "min_interval", "max_interval", "timeout"):
            positive(name, getattr(self, name))
        if self.min_interval > self.max_interval:
            raise ConfigError(
                "min_interval",
                f"must be <= max_interval ({self.max_interval!r}), got {self.min_interval!r}",
            )
        if not isinstance(self.jitter, bool):
            raise ConfigError("jitter", f"must be True or False, got {self.jitter!r}")


@dataclass(frozen=True, slots=True)
class PollAnswer:
    """What one poll got: a status and a body, or no answer at all (``status`` None)."""

    status: int | None
    body: Any = None
    """The parsed JSON (None when the answer was not JSON)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Response headers, names lower-cased."""
    error: str | None = None
    """Why there was no usable answer: a connection error, a timeout, a non-JSON body."""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 400 and self.error is None


@dataclass(frozen=True, slots=True)
class Hint:
    """The part of an answer that tells a poller what to do."""

    interval: float
    available: bool | None = None
    state: str | None = None
    message: str | None = None
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class PollDecision:
    """How long to wait before the next poll, and the reason in words."""

    delay: float
    reason: str
    failed: bool
    """The poll itself failed (no hint, and no good answer): it counts toward backoff."""
    errors: int
    """Failed polls in a row, this one included."""
    hint: Hint | None = None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def read_hint(body: Any) -> Hint | None:
    """The hint in a JSON body, or None: ``poll_interval`` or else ``retry_in`` (seconds > 0),
    with ``available``, ``state`` and ``message`` when present."""
    if not isinstance(body, Mapping):
        return None
    retry_in = _seconds(body.get("retry_in"))
    interval = _seconds(body.get("poll_interval")) or retry_in
    if interval is None:
        return None
    available = body.get("available")
    state, message = body.get("state"), body.get("message")
    return Hint(
        interval=interval,
        available=available if isinstance(available, bool) else None,
        state=state if isinstance(state, str) else None,
        message=message if isinstance(message, str) else None,
        retry_in=retry_in,
    )


_TOKEN = re.compile(r'"[^"]*"|[A-Za-z*][\w.:/*-]*')


def rate_limit_wait(value: str | None) -> float | None:
    """Seconds until quota returns, from a ``RateLimit`` field whose ``r`` is 0 (the
    longest ``t`` of the drained policies); None when there is quota or the field is
    malformed (the draft says to ignore malformed fields)."""
    if not value:
        return None
    wait: float | None = None
    for item in value.split(","):
        name, *pairs = (part.strip() for part in item.split(";"))
        if not _TOKEN.fullmatch(name):
            return None
        params: dict[str, str] = {}
        for pair in pairs:
            key, equals, raw = pair.partition("=")
            if not equals:
                return None
            params[key.strip()] = raw.strip()
        remaining, window = params.get("r", ""), params.get("t")
        if not remaining.isdigit() or (window is not None and not window.isdigit()):
            return None
        if int(remaining) == 0 and window is not None:
            wait = max(wait or 0.0, float(window))
    return wait


def _backoff(errors: int, settings: PollSettings, random: float) -> float:
    spread = random + 0.5 if settings.jitter else 1.0
    return math.floor(spread * (1 << min(errors, MAX_DOUBLINGS))) * settings.error_interval


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def decide(
    answer: PollAnswer,
    *,
    errors: int,
    settings: PollSettings,
    random: float,
    now: float,
    hint: Hint | None = None,
) -> PollDecision:
    """The wait after ``answer``. ``errors``: failed polls in a row before this one;
    ``random`` in [0, 1) for the jitter; ``now`` (Unix seconds) dates a Retry-After date;
    ``hint``: what a custom reader found (default: :func:`read_hint` of the body)."""
    if hint is None and answer.error is None:
        hint = read_hint(answer.body)
    failed = hint is None and not answer.ok
    errors = errors + 1 if failed else 0
    low, high = settings.min_interval, settings.max_interval
    if hint is not None:
        delay = min(max(hint.interval, low), high)
        reason = hint.message or f"the server asks for {hint.interval:g} s"
        if hint.state and not hint.message:
            reason = f"{reason} (state {hint.state})"
    elif failed:
        delay = min(max(_backoff(errors, settings, random), low), high)
        why = answer.error or f"HTTP {answer.status}"
        reason = f"backing off after {_plural(errors, 'failed poll')} ({why})"
    else:
        delay = min(max(settings.interval, low), high)
        reason = "no hint in the answer: the default interval"
    floor = parse_retry_after(answer.headers.get("retry-after"), now=now)
    source = "Retry-After"
    if floor is None:
        floor, source = rate_limit_wait(answer.headers.get("ratelimit")), "RateLimit"
    if floor is not None:
        # Retry-After overrides any backoff; a longer wait the server asked for stands.
        floored = max(floor, 0.0 if failed else delay, low)
        if floored != delay or failed:
            delay, reason = floored, f"{source}: {floor:g} s ({reason})"
    return PollDecision(delay=delay, reason=reason, failed=failed, errors=errors, hint=hint)
