"""``stalwart status URL``: a running ops app's health and breakers, in one table.

Reads ``URL/health/detailed`` and ``URL/breakers`` (skipped when the app has none), and
prints each check with its state, last latency and last error, and each breaker with its
state and the time it stays open. The exit status says it to scripts: 0 healthy, 1 degraded,
2 unhealthy, unknown or unreachable. Error texts are redacted by the ops app for callers
without its key: ``--key`` (or ``STALWART_OPS_KEY``) shows them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from ._fit import columns, middle

__all__ = ("EXIT", "KEY_ENV", "Reading", "command", "read", "render")

KEY_ENV = "STALWART_OPS_KEY"
EXIT = {"healthy": 0, "degraded": 1}
"""Exit status by health; anything else (unhealthy, unknown, unreachable) is 2."""
EXIT_FAIL = 2
CLEAR = "\x1b[H\x1b[2J"
"""Cursor home and clear screen: ``--watch`` redraws in place."""


@dataclass
class Reading:
    """What one look at the ops app found."""

    url: str
    reachable: bool
    status: str
    """healthy, degraded, unhealthy or unknown; ``unreachable`` when it did not answer."""
    message: str
    http_status: int | None = None
    service: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    breakers: list[dict[str, Any]] = field(default_factory=list)
    redacted: bool = False
    """Error texts were withheld (no key was sent)."""
    at: float = field(default_factory=time.time)

    @property
    def exit_status(self) -> int:
        return EXIT.get(self.status, EXIT_FAIL)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exit_status": self.exit_status}


def base_url(url: str) -> str:
    """The ops app's root from what a user may paste: ``.../health`` or ``.../health/``."""
    url = url.strip().rstrip("/")
    for tail in ("/health/detailed", "/health"):
        if url.endswith(tail):
            return url[: -len(tail)]
    return url


def read(url: str, *, key: str | None = None, timeout: float = 5.0) -> Reading:
    """Look at the ops app at ``url`` once; never raises for a network failure."""
    import httpx

    root = base_url(url)
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        with httpx.Client(timeout=timeout, headers=headers) as client:
            health = client.get(f"{root}/health/detailed")
            breakers = client.get(f"{root}/breakers")
    except httpx.HTTPError as exc:
        problem = str(exc) or type(exc).__name__
        return Reading(root, False, "unreachable", f"cannot reach {root}: {problem}")
    try:
        body = health.json()
        status, message = str(body["status"]), str(body.get("message", ""))
    except (ValueError, KeyError, TypeError):
        return Reading(
            root,
            False,
            "unreachable",
            f"{root}/health/detailed answered "
            f"{health.status_code} without a health report: is it an ops app?",
        )
    checks = [dict(check, name=name) for name, check in (body.get("checks") or {}).items()]
    found: list[dict[str, Any]] = []
    if breakers.status_code == 200:
        # A malformed /breakers listing is left out, not a crash.
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            found = [dict(b, name=name) for name, b in breakers.json()["breakers"].items()]
    redacted = not key and any(
        c.get("error") is None and c.get("status") != "healthy" for c in checks
    )
    return Reading(
        root,
        True,
        status,
        message,
        health.status_code,
        body.get("service"),
        checks,
        found,
        redacted,
    )


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def _check_state(check: dict[str, Any]) -> str:
    state = str(check.get("status", "?"))
    if check.get("slow"):
        state += " slow"
    return state


def _breaker_open_for(breaker: dict[str, Any]) -> str:
    state = str(breaker.get("state", "?"))
    if state == "forced_open":
        return "until reset"
    if state != "open":
        return "-"
    return _duration(breaker.get("retry_in"))


def render(reading: Reading, *, width: int = 80) -> str:
    """The reading as text in at most ``width`` columns."""
    when = datetime.fromtimestamp(reading.at, UTC).strftime("%H:%M:%SZ")
    if not reading.reachable:
        return "\n".join(
            [middle(f"UNREACHABLE  {reading.message}", width), f"exit status {EXIT_FAIL} at {when}"]
        )
    head = f"{reading.status.upper()}  {reading.message}"
    where = f"{reading.url}  (HTTP {reading.http_status}, {when})"
    lines = [middle(head, width), middle(where, width), ""]
    if reading.checks:
        rows = [["CHECK", "STATE", "LATENCY", "LAST ERROR"]]
        for check in sorted(reading.checks, key=lambda c: str(c["name"])):
            error = check.get("error")
            rows.append(
                [
                    str(check["name"]),
                    _check_state(check),
                    _duration(check.get("duration")),
                    "-" if error is None else str(error),
                ]
            )
        lines += columns(rows, width=width, flexible=(3, 0), right=(2,))
    else:
        lines.append("no health checks")
    if reading.breakers:
        lines.append("")
        rows = [["BREAKER", "STATE", "OPEN FOR", "FAILURES", "CALLS"]]
        for breaker in sorted(reading.breakers, key=lambda b: str(b["name"])):
            snap = breaker.get("snapshot") or {}
            rows.append(
                [
                    str(breaker["name"]),
                    str(breaker.get("state", "?")),
                    _breaker_open_for(breaker),
                    str(snap.get("total_failures", "-")),
                    str(snap.get("total_calls", "-")),
                ]
            )
        lines += columns(rows, width=width, flexible=(0,), right=(2, 3, 4))
    if reading.redacted:
        lines += [
            "",
            middle(f"errors are hidden without the ops app's key: --key KEY or {KEY_ENV}", width),
        ]
    return "\n".join(lines)


def command(
    url: str,
    *,
    as_json: bool = False,
    watch: float | None = None,
    count: int | None = None,
    key: str | None = None,
    timeout: float = 5.0,
    out: TextIO | None = None,
) -> int:
    """Print the ops app's status once, or every ``watch`` seconds (``count`` times, or
    until Ctrl-C); returns the exit status of the last reading."""
    stream = out or sys.stdout
    key = key or os.environ.get(KEY_ENV) or None
    shown = 0
    try:
        while True:
            reading = read(url, key=key, timeout=timeout)
            if as_json:
                text = json.dumps(reading.to_dict(), sort_keys=True)
            else:
                text = render(reading, width=shutil.get_terminal_size((80, 24)).columns)
            if watch is not None and not as_json and stream.isatty():
                stream.write(CLEAR)
            stream.write(text + "\n")
            stream.flush()
            shown += 1
            if watch is None or (count is not None and shown >= count):
                return reading.exit_status
            time.sleep(watch)  # the refresh period of a watch: not timing logic
    except KeyboardInterrupt:
        return reading.exit_status if shown else EXIT_FAIL
