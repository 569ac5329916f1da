"""HTTP responses as breaker and retry outcomes (httpx).

A server error (5xx) or a rate limit (429) is a failed call even though no exception was
raised. :func:`raise_for_outcome` raises :class:`ResponseFailed` for them, carrying the
``Retry-After`` of a 429 or 503 as ``retry_after`` (seconds), which breakers (open at least
that long) and retries (wait that long) read. Use it on a response, or install it on a
client with :func:`event_hooks` / :func:`async_event_hooks`::

    client = httpx.Client(event_hooks=stalwart.http.event_hooks())

Needs httpx (the ``web`` extra).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from . import _backoff

__all__ = (
    "ResponseFailed",
    "async_event_hooks",
    "event_hooks",
    "is_failure",
    "raise_for_outcome",
)

_HINT_STATUSES = frozenset({429, 503})  # whose Retry-After becomes ``retry_after``


class ResponseFailed(httpx.HTTPStatusError):
    """A response that counts as a failed call; ``retry_after`` is the server's pause, if any.

    A subclass of ``httpx.HTTPStatusError``, so existing ``except`` clauses still match.
    """

    retry_after: float | None

    def __init__(self, response: httpx.Response, retry_after: float | None) -> None:
        hint = "" if retry_after is None else f", retry after {retry_after:g} s"
        message = f"HTTP {response.status_code} from {_url(response)}{hint}"
        super().__init__(message, request=_request(response), response=response)
        self.retry_after = retry_after


def is_failure(response: httpx.Response) -> bool:
    """True for a 5xx or a 429: use as a breaker's ``failure_if`` when calls return responses."""
    status = response.status_code
    return status >= 500 or status == 429


def raise_for_outcome(response: httpx.Response) -> httpx.Response:
    """``response`` itself if it is a success for a breaker; else :class:`ResponseFailed`."""
    if not is_failure(response):
        return response
    hint = (
        _backoff.retry_after_from_response(response)
        if response.status_code in _HINT_STATUSES
        else None
    )
    raise ResponseFailed(response, hint)


def _raise_for_outcome_read(response: httpx.Response) -> None:
    # A response hook runs before the body is read: read a failure's body first, so the
    # caller can still look at what the server said (e.response.text / .json()).
    if is_failure(response):
        response.read()
    raise_for_outcome(response)


async def _araise_for_outcome(response: httpx.Response) -> None:
    if is_failure(response):
        await response.aread()
    raise_for_outcome(response)


def event_hooks() -> dict[str, list[Callable[[httpx.Response], Any]]]:
    """``event_hooks=`` for an ``httpx.Client``: every 5xx/429 raises :class:`ResponseFailed`
    (with its body read, so ``e.response.text`` works)."""
    return {"response": [_raise_for_outcome_read]}


def async_event_hooks() -> dict[str, list[Callable[[httpx.Response], Awaitable[Any]]]]:
    """``event_hooks=`` for an ``httpx.AsyncClient`` (its hooks must be coroutines)."""
    return {"response": [_araise_for_outcome]}


def _request(response: httpx.Response) -> httpx.Request:
    try:
        return response.request
    except RuntimeError:  # a response built by hand has no request
        return httpx.Request("GET", "http://unknown.invalid/")


def _url(response: httpx.Response) -> str:
    try:
        return str(response.request.url.copy_with(userinfo=b"", query=None, fragment=None))
    except RuntimeError:
        return "an unknown URL"
