"""Request guards for ASGI apps: a rate limit per client, and a Bearer API-key check.

Each guard decides from the request alone (``decide(scope)``): let it through, with headers
to add to the response, or refuse it with an RFC 9457 problem document. Put them in front of
any ASGI app with :class:`Guarded` (``app.add_middleware(Guarded, guards=[...])``), or on
single FastAPI routes with ``Depends(guard.dependency)``.

:class:`RateLimit` keeps one GCRA bucket per client (the same core as
:class:`~stalwart.RateLimiter`, shared through a ``store=`` when given), answers 429 with
``Retry-After`` and the IETF draft's ``RateLimit`` / ``RateLimit-Policy`` fields, and puts
those fields on allowed responses too. :class:`ApiKey` compares in constant time against
every configured key. (No ``from __future__ import annotations`` here: FastAPI reads the
dependency's annotations at run time.)
"""

import hashlib
import hmac
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from .._clock import Clock
from .._errors import ConfigError
from .._ratelimit import _SLACK, Rate, RateCore, RateLimiterConfig, RateSpec
from .._store import StateStore, check_store
from .._strategy import strategy_clock, strategy_name
from .._validate import whole
from ._core import problem

__all__ = (
    "ApiKey",
    "Guard",
    "Guarded",
    "RateLimit",
    "Refusal",
    "Verdict",
    "by_address",
    "by_api_key",
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
KeyFunction = Callable[[Scope], "str | None"]

DEFAULT_MAX_CLIENTS = 10_000


@dataclass(frozen=True, slots=True)
class Refusal:
    """A guard's "no": the status, headers and body of the response that says why."""

    status: int
    detail: str
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A guard's answer for one request: a refusal, or headers for the response."""

    refusal: Refusal | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


class Guard(Protocol):
    def decide(self, scope: Scope) -> Verdict: ...


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def by_address(scope: Scope) -> str | None:
    """The client's IP address as the ASGI server saw it (behind a proxy, the proxy's:
    have the server trust its forwarded headers, e.g. uvicorn ``--forwarded-allow-ips``)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def by_api_key(scope: Scope) -> str | None:
    """The Bearer token's SHA-256 (never the key itself, which would sit in memory and
    metrics); the address for requests without one."""
    token = _bearer(scope)
    if token is None:
        return f"address:{by_address(scope)}"
    return "key:" + hashlib.sha256(token.encode()).hexdigest()[:16]


_KEYS: dict[str, KeyFunction] = {"address": by_address, "api_key": by_api_key}


def _exempt(paths: Iterable[str]) -> tuple[str, ...]:
    out = tuple(paths)
    for path in out:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError("exempt", f"must be paths starting with '/', got {path!r}")
    return out


def _is_exempt(scope: Scope, exempt: tuple[str, ...]) -> bool:
    path = scope.get("path", "")
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in exempt)


def _whole_seconds(seconds: float) -> int:
    """Seconds rounded up for a header, ignoring float dust (6.000000001 s is 6, not 7)."""
    return max(0, math.ceil(seconds - 1e-6))


class RateLimit:
    """At most ``rate`` requests per client: ``RateLimit("10/minute")``.

    Clients are told apart by ``key``: ``"address"`` (default), ``"api_key"`` (the Bearer
    token, hashed) or a function of the ASGI scope returning a string, or None to let the
    request through unlimited. Each client has a GCRA bucket of ``burst`` (default: the
    rate's count) refilling at the rate: "10/minute" lets 10 through at once, then one
    every 6 s. Up to ``max_clients`` buckets are kept (least recently seen dropped first).
    """

    def __init__(
        self,
        rate: RateSpec,
        *,
        key: str | KeyFunction = "address",
        burst: int | None = None,
        exempt: Iterable[str] = (),
        max_clients: int = DEFAULT_MAX_CLIENTS,
        name: str | None = None,
        clock: Clock | None = None,
        store: StateStore | None = None,
    ) -> None:
        self.config = RateLimiterConfig(rate=Rate.parse(rate), burst=burst, algorithm="gcra")
        if isinstance(key, str):
            if key not in _KEYS:
                raise ConfigError("key", f"must be 'address', 'api_key' or a function, got {key!r}")
            self._key = _KEYS[key]
        elif callable(key):
            self._key = key
        else:
            raise ConfigError("key", f"must be 'address', 'api_key' or a function, got {key!r}")
        whole("max_clients", max_clients)
        self.name = strategy_name(name, "rate_limit")
        self._store = check_store(store, name)
        self._exempt = _exempt(exempt)
        self._max_clients = max_clients
        self._clock = strategy_clock(clock)
        self._buckets: OrderedDict[str, RateCore] = OrderedDict()
        self._lock = threading.Lock()
        rate_ = self.config.rate
        window = max(1, math.ceil(rate_.per))
        self._policy = f'"{self.name}";q={self.config.effective_burst};w={window}'

    def _bucket(self, client: str) -> RateCore:
        bucket = self._buckets.get(client)
        if bucket is None:
            if self._store is not None:
                bucket = self._store.rate_core(f"{self.name}:{client}", self.config)
            else:
                bucket = self.config.make_core()
            self._buckets[client] = bucket
            if len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
        return bucket

    def check(self, client: str) -> Verdict:
        """Take one request from ``client``'s bucket, or say how long until it may."""
        now = self._clock.monotonic()
        with self._lock:
            bucket = self._bucket(client)
            # The limiter's own slack: float rounding must not refuse a request that fits.
            wait = bucket.reserve(now, 1.0, _SLACK)
            left = max(0, math.floor(bucket.available(now) + 1e-9))
            full_in = bucket.wait_time(now, float(self.config.effective_burst))
        fields = [
            ("ratelimit-policy", self._policy),
            ("ratelimit", f'"{self.name}";r={left};t={_whole_seconds(full_in)}'),
        ]
        if wait <= _SLACK:
            return Verdict(headers=fields)
        retry = max(1, _whole_seconds(wait))
        detail = f"rate limit {self.config.rate} exceeded for this client; retry in {retry} s"
        return Verdict(Refusal(429, detail, [("retry-after", str(retry)), *fields]))

    def decide(self, scope: Scope) -> Verdict:
        if _is_exempt(scope, self._exempt):
            return Verdict()
        client = self._key(scope)
        return Verdict() if client is None else self.check(client)

    @cached_property
    def dependency(self) -> Callable[..., Awaitable[None]]:
        """For one FastAPI route: ``dependencies=[Depends(limit.dependency)]``."""
        return _dependency(self)

    def __repr__(self) -> str:
        return f"RateLimit({str(self.config.rate)!r}, name={self.name!r})"


class ApiKey:
    """``Authorization: Bearer <key>`` must hold one of ``keys`` (or of the comma-separated
    keys in the environment variable ``env``); compared in constant time, every key every
    time. A missing or wrong key gets 401 with ``WWW-Authenticate: Bearer``."""

    def __init__(
        self,
        keys: Iterable[str] | None = None,
        *,
        env: str | None = None,
        exempt: Iterable[str] = (),
        realm: str = "api",
    ) -> None:
        found = [k.strip() for k in (keys or ())]
        if env is not None:
            found += [k.strip() for k in os.environ.get(env, "").split(",")]
        found = [k for k in found if k]
        if not found:
            where = f"the environment variable {env!r} is empty or unset" if env else "none given"
            raise ConfigError("keys", f"at least one API key is needed ({where})")
        if any(len(k) < 16 for k in found):
            raise ConfigError("keys", "each API key must be at least 16 characters long")
        self._digests = tuple(hashlib.sha256(k.encode()).digest() for k in found)
        self._exempt = _exempt(exempt)
        self._challenge = f'Bearer realm="{realm}"'

    def accepts(self, token: str | None) -> bool:
        """Whether ``token`` is one of the keys (constant time in the token and the keys)."""
        digest = hashlib.sha256((token or "").encode()).digest()
        matched = 0
        for key in self._digests:  # no early exit: the time says nothing about which key
            matched |= hmac.compare_digest(digest, key)
        return bool(matched) and token is not None

    def decide(self, scope: Scope) -> Verdict:
        if _is_exempt(scope, self._exempt):
            return Verdict()
        token = _bearer(scope)
        if self.accepts(token):
            return Verdict()
        detail = "an API key is needed: Authorization: Bearer <key>"
        if token is not None:
            detail = "the API key is not valid"
        return Verdict(Refusal(401, detail, [("www-authenticate", self._challenge)]))

    @cached_property
    def dependency(self) -> Callable[..., Awaitable[None]]:
        """For one FastAPI route: ``dependencies=[Depends(api_key.dependency)]``."""
        return _dependency(self)

    def __repr__(self) -> str:
        return f"ApiKey({len(self._digests)} key(s))"


class Guarded:
    """ASGI middleware running ``guards`` in order before the app: the first refusal is
    the answer (a JSON problem document); otherwise the guards' headers are added to the
    app's response. Lifespan and WebSocket scopes pass through untouched."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, guards: Sequence[Guard]) -> None:
        if not guards:
            raise ConfigError("guards", "give at least one guard (RateLimit, ApiKey)")
        self.app = app
        self.guards = tuple(guards)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra: list[tuple[bytes, bytes]] = []
        for guard in self.guards:
            verdict = guard.decide(scope)
            if verdict.refusal is not None:
                await _refuse(send, verdict.refusal, extra)
                return
            extra += [(k.encode(), v.encode()) for k, v in verdict.headers]
        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(send: Send, refusal: Refusal, extra: list[tuple[bytes, bytes]]) -> None:
    response = problem(refusal.status, refusal.detail, headers=refusal.headers)
    headers = [(k.encode(), v.encode()) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    start = {"type": "http.response.start", "status": response.status, "headers": headers + extra}
    await send(start)
    await send({"type": "http.response.body", "body": response.body})


def _dependency(guard: Guard) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency applying ``guard``: refusals raise HTTPException (with the
    headers); allowed requests get the guard's headers on their response."""
    from fastapi import HTTPException, Request, Response

    async def guard_request(request: Request, response: Response) -> None:
        verdict = guard.decide(request.scope)
        if verdict.refusal is not None:
            refusal = verdict.refusal
            raise HTTPException(refusal.status, refusal.detail, headers=dict(refusal.headers))
        for name, value in verdict.headers:
            response.headers[name] = value

    return guard_request
