"""Named settings from published practice: retry options and reconnect backoffs.

Retry presets are dicts of retry options (typed as :class:`RetryOptions`, so mypy checks
them); spread one next to the exceptions to retry on::

    @retry(on=OperationalError, **presets.DATABASE)
    def query(): ...

To change one setting, build a new dict (typed, mypy checks it too)::

    patient: presets.RetryOptions = {**presets.DATABASE, "max_attempts": 5}

The reconnect presets are :class:`~stalwart.Backoff` objects that
reproduce a protocol's published reconnect delays exactly, for loops that reconnect
forever (``for delay in presets.GRPC.delays(): ...``).
"""

from __future__ import annotations

from typing import Final

from ._backoff import Backoff, retry_after_from_response
from ._retry import RetryOptions

__all__ = (
    "DATABASE",
    "GRPC",
    "HTTP",
    "HTTP_RETRY_STATUSES",
    "S3",
    "SOCKETIO",
    "WEBSOCKETS",
    "RetryOptions",
)

# -- retry presets -------------------------------------------------------------------

DATABASE: Final[RetryOptions] = {
    "max_attempts": 3,
    "base_delay": 0.5,
    "max_delay": 10.0,
    "timeout": 30.0,
}
"""A database query or connection: 3 attempts, waits from 0.5 s (full jitter, capped at
10 s), all within 30 s. Retry only what is safe to run twice (reads, idempotent writes)."""

S3: Final[RetryOptions] = {
    "max_attempts": 5,
    "base_delay": 1.0,
    "max_delay": 30.0,
    "timeout": 60.0,
}
"""Object storage (S3 and compatible): 5 attempts, waits from 1 s (full jitter, capped at
30 s), all within 60 s: throttling (503 SlowDown) clears in seconds, not milliseconds."""

HTTP: Final[RetryOptions] = {
    "max_attempts": 3,
    "base_delay": 1.0,
    "max_delay": 20.0,
    "timeout": 30.0,
    "retry_after_from": retry_after_from_response,
}
"""An HTTP API call. Sources for each number:

* 3 attempts, full jitter on 1 s * 2**n capped at 20 s: the AWS SDKs' "standard" retry mode
  (``max_attempts`` 3; botocore's ``ExponentialBackoff``: ``random() * 2**n``, at most
  20 s), which is also Google SRE's "up to 3 attempts" per request;
* 30 s in all: the total request timeout of .NET's standard HTTP resilience handler
  (Microsoft.Extensions.Http.Resilience);
* the server's ``Retry-After`` (RFC 9110 §10.2.3) replaces the computed wait; one longer
  than 20 s gives up at once instead of retrying too early.

Which responses to retry is yours to say (``on=`` / ``retry_if_result``); see
:data:`HTTP_RETRY_STATUSES`. Retry only idempotent requests (GET, PUT, DELETE, or a POST
carrying an idempotency key).
"""

HTTP_RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses worth retrying: request timeout, too many requests, and the transient server
errors websockets and most HTTP clients retry (500, 502, 503, 504)."""

# -- reconnect backoffs --------------------------------------------------------------

GRPC: Final = Backoff(
    base_delay=1.0,
    multiplier=1.6,
    max_delay=120.0,
    jitter="proportional",
    jitter_factor=0.2,
    jitter_first=False,
)
"""gRPC connection backoff (grpc/grpc ``doc/connection-backoff.md``): INITIAL_BACKOFF 1 s,
MULTIPLIER 1.6, MAX_BACKOFF 120 s, JITTER 0.2. The first wait is exactly 1 s; then
``min(1.6**n, 120) * U(0.8, 1.2)``, so up to 144 s. gRPC measures each wait from the start
of the failed attempt, and gives each attempt at least MIN_CONNECT_TIMEOUT (20 s); reset
the series once a connection is established."""

WEBSOCKETS: Final = Backoff(
    first_delay=5.0,
    base_delay=3.1,
    multiplier=1.618,
    max_delay=90.0,
    jitter="none",
)
"""The Python ``websockets`` client's reconnect delays (``websockets.client.backoff``,
defaults of ``WEBSOCKETS_BACKOFF_*``): a random first wait of ``U(0, 5)`` s (RFC 6455
§7.2.3), then 3.1 s growing by x1.618 up to 90 s, then 90 s forever; reset after a
successful connection."""

SOCKETIO: Final = Backoff(
    base_delay=1.0,
    multiplier=2.0,
    max_delay=5.0,
    jitter="proportional",
    jitter_factor=0.5,
    cap_after_jitter=True,
)
"""The Socket.IO JavaScript client's reconnect delays (``socket.io-client`` Manager
defaults ``reconnectionDelay`` 1000 ms, ``reconnectionDelayMax`` 5000 ms,
``randomizationFactor`` 0.5; backo2): ``min(5, 2**n * U(0.5, 1.5))`` s, so the first wait
falls in 0.5-1.5 s. backo2 draws one random number for both the size and the sign of the
deviation (a striped distribution, rounded to the millisecond); this draws it uniformly.
python-socketio differs: it adds an absolute ±0.5 s to the capped delay."""
