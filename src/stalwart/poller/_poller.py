"""AdaptivePoller: follow a server's poll hints from Python, sync or async, on the Clock seam.

The decision is :func:`~stalwart.poller._plan.decide`'s, the same as the browser's
``stalwart-poller.js``; this module only fetches, sleeps and reports. One poller never has
two polls in flight: ``poll()`` calls are serialised, and iteration schedules the next poll
only after the previous one finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random as _random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

from .._clock import Clock, SystemClock
from .._drivers import is_async_callable
from .._errors import ConfigError
from .._events import Event, EventHub
from .._strategy import Observable, strategy_clock, strategy_name
from ._plan import Hint, PollAnswer, PollDecision, PollSettings, decide, read_hint

if TYPE_CHECKING:
    import httpx

__all__ = ("AdaptivePoller", "PollChanged", "PollFailed", "PollResult")

_STRATEGY = "poller"
_log = logging.getLogger("stalwart.poller")

Fetched = PollAnswer | Mapping[str, Any]
"""What a custom ``fetch`` returns: a full answer, or just the JSON body (as a 200)."""
Fetch = Callable[[], Fetched] | Callable[[], Awaitable[Fetched]]
HintReader = Callable[[Any], Mapping[str, Any] | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class PollChanged(Event):
    """What the polled server says changed: its ``state`` or ``available`` (a failed poll
    is state ``"unreachable"``), with the interval the poller now uses and why."""

    old_state: str | None
    new_state: str
    available: bool
    interval: float
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PollFailed(Event):
    """A poll failed without a hint: no answer, a timeout, an error status, not JSON."""

    error: str
    failures: int
    """Failed polls in a row, this one included."""
    delay: float


@dataclass(frozen=True, slots=True)
class PollResult:
    """One poll: what came back, what the poller decided, and whether the state changed."""

    answer: PollAnswer
    decision: PollDecision
    state: str
    available: bool
    changed: bool

    @property
    def body(self) -> Any:
        return self.answer.body

    @property
    def delay(self) -> float:
        """Seconds until the next poll."""
        return self.decision.delay

    @property
    def reason(self) -> str:
        return self.decision.reason

    @property
    def failed(self) -> bool:
        return self.decision.failed


def _view(decision: PollDecision) -> tuple[str, bool]:
    """The state and availability a poll shows: the hint's, else whether it answered."""
    if decision.failed:
        return "unreachable", False
    hint = decision.hint
    state = hint.state if hint is not None and hint.state else "ok"
    available = hint.available if hint is not None and hint.available is not None else True
    return state, available


class _Wake:
    """An interruptible wait between polls: ``stop()`` and ``poll_now()`` end it early.

    The system clock waits on an Event (``time.sleep`` cannot be interrupted); any other
    clock (FakeClock) sleeps on the clock itself, so tests advance time instead of waiting.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._real = isinstance(clock, SystemClock)
        self._event = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._aevent: asyncio.Event | None = None

    def set(self) -> None:
        self._event.set()
        loop, aevent = self._loop, self._aevent
        if loop is not None and aevent is not None and not loop.is_closed():
            loop.call_soon_threadsafe(aevent.set)

    def sleep(self, seconds: float) -> None:
        if self._real:
            self._event.wait(seconds)
        else:
            self._clock.sleep(seconds)
        self._event.clear()

    async def asleep(self, seconds: float) -> None:
        if self._aevent is None:
            self._loop, self._aevent = asyncio.get_running_loop(), asyncio.Event()
        if self._real:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._aevent.wait(), seconds)
        else:
            await self._clock.asleep(seconds)
        self._aevent.clear()
        self._event.clear()


class AdaptivePoller(Observable):
    """Polls a URL (or calls ``fetch``) at the pace the server's answers ask for.

    ``for result in poller:`` (or ``async for``) polls, yields the result, sleeps its
    ``delay`` and polls again, until :meth:`stop`. :meth:`poll` / :meth:`apoll` make one
    poll without sleeping. See docs/poller.md for the hint protocol.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        fetch: Fetch | None = None,
        hint: HintReader | None = None,
        headers: Mapping[str, str] | None = None,
        interval: float = 5.0,
        error_interval: float = 5.0,
        min_interval: float = 1.0,
        max_interval: float = 300.0,
        timeout: float = 10.0,
        jitter: bool = True,
        name: str | None = None,
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        if (url is None) == (fetch is None):
            raise ConfigError("url", "give either a URL to GET or a fetch function, not both")
        if url is not None and not (isinstance(url, str) and url.startswith(("http:", "https:"))):
            raise ConfigError("url", f"must be an http(s) URL, got {url!r}")
        if fetch is not None and not callable(fetch):
            raise ConfigError("fetch", f"must be a function, got {fetch!r}")
        if hint is not None and not callable(hint):
            raise ConfigError("hint", f"must be a function of the JSON body, got {hint!r}")
        self.settings = PollSettings(
            interval=interval,
            error_interval=error_interval,
            min_interval=min_interval,
            max_interval=max_interval,
            timeout=timeout,
            jitter=jitter,
        )
        self.url = url
        self.name = strategy_name(name, url or _STRATEGY)
        self._fetch = fetch
        self._fetch_is_async = fetch is not None and is_async_callable(fetch)
        self._hint = hint
        self._headers = {"accept": "application/json", **(headers or {})}
        self._clock = strategy_clock(clock)
        self._random = random or _random.random
        self._hub = EventHub()
        self._lock = threading.Lock()
        self._alock: asyncio.Lock | None = None
        self._wake = _Wake(self._clock)
        self._stopped = False
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        # What the last poll found (read by debug_info from any thread).
        self._last: PollResult | None = None
        self._last_at: float | None = None
        self._next_at: float | None = None
        self._in_flight = False
        self._polling = False
        self._polls = 0
        self._failures = 0

    # -- one poll ----------------------------------------------------------------------

    def poll(self) -> PollResult:
        """Poll once now (no sleeping); a poll already in flight finishes first."""
        if self._fetch_is_async:
            raise ConfigError("fetch", "is an async function: use apoll() or `async for`")
        with self._lock:
            self._in_flight = True
            try:
                answer = self._fetch_sync()
            finally:
                self._in_flight = False
            return self._settle(answer)

    async def apoll(self) -> PollResult:
        """Poll once now from async code; a sync ``fetch`` runs on a worker thread."""
        if self._fetch is not None and not self._fetch_is_async:
            return await asyncio.to_thread(self.poll)
        if self._alock is None:
            self._alock = asyncio.Lock()
        async with self._alock:  # polls from several tasks take turns: one request at a time
            self._in_flight = True
            try:
                answer = await self._fetch_async()
            finally:
                self._in_flight = False
            with self._lock:
                return self._settle(answer)

    def _fetch_sync(self) -> PollAnswer:
        if self._fetch is not None:
            try:
                return _as_answer(cast("Callable[[], Fetched]", self._fetch)())
            except Exception as exc:  # the poll failed; the poller goes on
                return PollAnswer(None, error=_describe(exc))
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=self.settings.timeout, headers=self._headers)
        try:
            return _http_answer(self._client.get(self._url))
        except Exception as exc:
            return PollAnswer(None, error=self._failure(exc))

    async def _fetch_async(self) -> PollAnswer:
        try:
            async with asyncio.timeout(self.settings.timeout):
                if self._fetch is not None:
                    fetched = self._fetch()
                    assert inspect.isawaitable(fetched)
                    return _as_answer(await fetched)
                if self._aclient is None:
                    import httpx

                    self._aclient = httpx.AsyncClient(
                        timeout=self.settings.timeout, headers=self._headers
                    )
                return _http_answer(await self._aclient.get(self._url))
        except Exception as exc:
            return PollAnswer(None, error=self._failure(exc))

    @property
    def _url(self) -> str:
        assert self.url is not None
        return self.url

    def _failure(self, exc: Exception) -> str:
        if isinstance(exc, TimeoutError) or type(exc).__name__.endswith("Timeout"):
            return f"no answer within {self.settings.timeout:g} s"
        return _describe(exc)

    def _settle(self, answer: PollAnswer) -> PollResult:
        """Decide the next delay, record it, and report changes (under the lock)."""
        previous = self._last
        hint = None
        if self._hint is not None and answer.error is None:
            hint = read_hint(self._hint(answer.body))
        decision = decide(
            answer,
            errors=previous.decision.errors if previous else 0,
            settings=self.settings,
            random=self._random(),
            now=self._clock.time(),
            hint=hint,
        )
        state, available = _view(decision)
        old = None if previous is None else previous.state
        changed = previous is None or (old, previous.available) != (state, available)
        result = PollResult(answer, decision, state, available, changed)
        now = self._clock.monotonic()
        self._last, self._last_at, self._next_at = result, now, now + decision.delay
        self._polls += 1
        if decision.failed:
            self._failures += 1
        self._report(result, previous, now)
        return result

    def _report(self, result: PollResult, previous: PollResult | None, now: float) -> None:
        decision = result.decision
        if decision.failed:
            error = result.answer.error or f"HTTP {result.answer.status}"
            _log.warning(
                "[%s] poll failed (%d in a row): %s; next in %g s",
                self.name,
                decision.errors,
                error,
                decision.delay,
            )
            self._hub.emit(
                PollFailed(
                    name=self.name,
                    strategy=_STRATEGY,
                    at=now,
                    error=error,
                    failures=decision.errors,
                    delay=decision.delay,
                )
            )
        if result.changed:
            if previous is not None:
                word = "available again" if result.available else "unavailable"
                _log.info("[%s] %s: %s", self.name, word, decision.reason)
            self._hub.emit(
                PollChanged(
                    name=self.name,
                    strategy=_STRATEGY,
                    at=now,
                    old_state=None if previous is None else previous.state,
                    new_state=result.state,
                    available=result.available,
                    interval=decision.delay,
                    reason=decision.reason,
                )
            )
        if previous is not None and previous.delay != decision.delay:
            _log.info(
                "[%s] interval %g s -> %g s: %s",
                self.name,
                previous.delay,
                decision.delay,
                decision.reason,
            )
        _log.debug("[%s] next poll in %g s", self.name, decision.delay)

    # -- polling in a loop -------------------------------------------------------------

    def __iter__(self) -> Iterator[PollResult]:
        self._stopped, self._polling = False, True
        try:
            while not self._stopped:
                result = self.poll()
                yield result
                if self.stopping:
                    return
                self._wake.sleep(result.delay)
        finally:
            self._polling, self._next_at = False, None

    async def __aiter__(self) -> AsyncIterator[PollResult]:
        self._stopped, self._polling = False, True
        try:
            while not self._stopped:
                result = await self.apoll()
                yield result
                if self.stopping:
                    return
                await self._wake.asleep(result.delay)
        finally:
            self._polling, self._next_at = False, None

    @property
    def stopping(self) -> bool:
        """:meth:`stop` was called: the loop ends instead of polling again."""
        return self._stopped

    def stop(self) -> None:
        """End the loop (``for`` / ``async for``) at its next step; safe from any thread."""
        self._stopped = True
        self._wake.set()

    def poll_now(self) -> None:
        """Cut the current wait short: the loop polls at once (never during a poll)."""
        self._wake.set()

    # -- what it knows -----------------------------------------------------------------

    @property
    def last(self) -> PollResult | None:
        """The latest poll's result."""
        return self._last

    def debug_info(self) -> dict[str, Any]:
        """What the poller does now and why (the browser's ``getDebugInfo()``, snake_case)."""
        last, now = self._last, self._clock.monotonic()
        hint: Hint | None = last.decision.hint if last else None
        return {
            "name": self.name,
            "url": self.url,
            "polling": self._polling,
            "in_flight": self._in_flight,
            "current_interval": last.delay if last else None,
            "reason": last.reason if last else None,
            "next_poll_in": max(0.0, self._next_at - now) if self._next_at is not None else None,
            "failure_count": last.decision.errors if last else 0,
            "polls": self._polls,
            "failures": self._failures,
            "state": last.state if last else None,
            "available": last.available if last else None,
            "message": hint.message if hint else None,
            "retry_in": hint.retry_in if hint else None,
            "last_status": last.answer.status if last else None,
            "last_error": last.answer.error if last else None,
            "last_poll_ago": now - self._last_at if self._last_at is not None else None,
        }

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop, and close the HTTP client the poller opened."""
        self.stop()
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        self.close()
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        last = self._last
        state = "new" if last is None else f"{last.state}, every {last.delay:g} s"
        return f"AdaptivePoller({self.name!r}, {state})"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _as_answer(fetched: Fetched) -> PollAnswer:
    if isinstance(fetched, PollAnswer):
        return fetched
    if isinstance(fetched, Mapping):
        return PollAnswer(200, body=fetched)
    raise ConfigError(
        "fetch", f"must return a PollAnswer or a JSON object (a mapping), got {fetched!r}"
    )


def _http_answer(response: httpx.Response) -> PollAnswer:
    headers = {name.lower(): value for name, value in response.headers.items()}
    body: Any = None
    error = None
    if "json" in headers.get("content-type", ""):
        try:
            body = response.json()
        except ValueError:
            error = f"HTTP {response.status_code} with a body that is not valid JSON"
    return PollAnswer(response.status_code, body=body, headers=headers, error=error)
