"""What a health check reports: statuses, one run's result, a check's snapshot, the report.

Everything here is pure data and pure functions (aggregation, the seed 003 summary, the
detailed view, the IETF ``application/health+json`` body, redaction); the registry fills
it in and the ops app serves it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

__all__ = (
    "DEFAULT_FAIL_STATUS",
    "GROUPS",
    "PENDING_ERROR",
    "CheckResult",
    "CheckSnapshot",
    "HealthReport",
    "HealthStatus",
    "aggregate",
    "scrub",
)

GROUPS = ("live", "ready", "startup")
"""The probe groups a check may belong to (Kubernetes' three probes)."""

PENDING_ERROR = "not checked yet"
"""The error shown for a check that has not completed a run."""

DEFAULT_FAIL_STATUS = 503
"""The HTTP status of an unhealthy (or unknown) service: Service Unavailable."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class HealthStatus(enum.StrEnum):
    """How healthy a check or a service is. Aggregation: UNHEALTHY > DEGRADED > HEALTHY;
    UNKNOWN (a check not run yet) is ignored, and a service none of whose checks has
    completed a run (or that has none) is UNKNOWN."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"

    @property
    def ietf(self) -> str:
        """The IETF health-check status: ``pass``, ``warn`` or ``fail``."""
        return _IETF[self]

    @property
    def severity(self) -> int:
        """-1 unknown, 0 healthy, 1 degraded, 2 unhealthy: the worst one wins in
        aggregation, and unknown counts only when nothing else is known."""
        return _SEVERITY[self]

    @classmethod
    def parse(cls, text: str) -> HealthStatus:
        """Read a status in any common spelling, case-insensitively: ours, IETF
        (``pass``/``warn``/``fail``), Terminus (``ok``), Spring (``up``/``down``), ``error``."""
        found = _ALIASES.get(str(text).strip().lower())
        if found is None:
            raise ValueError(f"not a health status: {text!r}")
        return found


_IETF = {
    HealthStatus.HEALTHY: "pass",
    HealthStatus.DEGRADED: "warn",
    HealthStatus.UNHEALTHY: "fail",
    HealthStatus.UNKNOWN: "warn",  # a check not run yet; a whole service unknown is "fail"
}
_SEVERITY = {
    HealthStatus.UNKNOWN: -1,
    HealthStatus.HEALTHY: 0,
    HealthStatus.DEGRADED: 1,
    HealthStatus.UNHEALTHY: 2,
}
_SERVING = frozenset({HealthStatus.HEALTHY, HealthStatus.DEGRADED})
_ALIASES = {
    **{s.value: s for s in HealthStatus},
    "pass": HealthStatus.HEALTHY,
    "warn": HealthStatus.DEGRADED,
    "fail": HealthStatus.UNHEALTHY,
    "ok": HealthStatus.HEALTHY,
    "up": HealthStatus.HEALTHY,
    "error": HealthStatus.UNHEALTHY,
    "down": HealthStatus.UNHEALTHY,
}


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One run of a check. A check may return one to say more than pass/fail (a warning,
    details); ``duration`` and ``checked_at`` are filled in by the registry."""

    status: HealthStatus
    error: str | None = None
    """Why the run failed or warned; None on a clean pass."""
    details: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    """What the check observed (may hold secrets: shown only unredacted)."""
    duration: float = 0.0
    """Seconds the run took (by the registry's clock)."""
    checked_at: float = 0.0
    """Wall-clock Unix time the run ended."""

    def __post_init__(self) -> None:
        # Checks are user code: a status given as a plain string ("unhealthy", or "down"
        # per IETF aliases) or an exception given as the error is taken as meant, rather
        # than breaking every report later; an unknown status raises here, in the check.
        status: Any = self.status
        if not isinstance(status, HealthStatus):
            object.__setattr__(self, "status", HealthStatus.parse(status))
        error: Any = self.error
        if error is not None and not isinstance(error, str):
            object.__setattr__(self, "error", str(error))

    @classmethod
    def passed(cls, **details: Any) -> CheckResult:
        return cls(HealthStatus.HEALTHY, None, MappingProxyType(details))

    @classmethod
    def warned(cls, error: str, **details: Any) -> CheckResult:
        """Working, with a concern (IETF ``warn``): the service shows as degraded."""
        return cls(HealthStatus.DEGRADED, error, MappingProxyType(details))

    @classmethod
    def failed(cls, error: str, **details: Any) -> CheckResult:
        return cls(HealthStatus.UNHEALTHY, error, MappingProxyType(details))

    @property
    def ok(self) -> bool:
        """True unless the run failed (a warning is not a failure)."""
        return self.status is not HealthStatus.UNHEALTHY

    def to_dict(self, *, redact: bool) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "duration": self.duration,
            "checked_at": self.checked_at,
            "error": None if redact else self.error,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckSnapshot:
    """A check's state as of its last completed run, with metrics over its history."""

    name: str
    status: HealthStatus
    critical: bool
    groups: frozenset[str]
    component_type: str
    checked_at: float | None
    """Wall-clock Unix time of the last completed run (None: never ran)."""
    duration: float | None
    """Seconds the last run took (None: never ran)."""
    error: str | None
    """Why the last run failed or warned. May hold hosts or other secrets: redact for the public."""
    details: Mapping[str, Any]
    """What the last run returned (may hold secrets)."""
    availability: float
    """Share of the runs in the history that did not fail, 0..1 (0.0 before any run)."""
    avg_duration: float
    p95_duration: float
    consecutive_failures: int
    history: tuple[CheckResult, ...]
    """The last runs, oldest first (bounded by the registry's ``history``)."""
    breaker_state: str | None
    """The attached breaker's state (``closed``, ``open`` ...), None without a breaker."""
    slow: bool = False
    """The last run took the check's interval or its timeout, or longer (ops-specs H5)."""

    @property
    def pending(self) -> bool:
        """True while the check has not completed a run."""
        return self.checked_at is None

    @property
    def effective_status(self) -> HealthStatus:
        """What this check does to the service: a failing non-critical check only degrades
        it (the registry already reports such a check as degraded)."""
        if self.status is HealthStatus.UNHEALTHY and not self.critical:
            return HealthStatus.DEGRADED
        return self.status

    def to_dict(self, *, redact: bool) -> dict[str, Any]:
        """JSON-ready; ``redact=True`` drops error texts and details (hosts, DSNs, messages)."""
        return {
            "name": self.name,
            "status": self.status.value,
            "critical": self.critical,
            "groups": sorted(self.groups),
            "component_type": self.component_type,
            "checked_at": self.checked_at,
            "duration": self.duration,
            "error": None if redact else self.error,
            "details": {} if redact else dict(self.details),
            "availability": self.availability,
            "avg_duration": self.avg_duration,
            "p95_duration": self.p95_duration,
            "consecutive_failures": self.consecutive_failures,
            "breaker_state": self.breaker_state,
            "slow": self.slow,
            "history": [r.to_dict(redact=redact) for r in self.history],
        }


def aggregate(checks: Iterable[CheckSnapshot]) -> HealthStatus:
    """The service's status: the worst effective status of its checks. Checks not run yet
    are ignored; with none run (or none at all) the service is UNKNOWN (ops-specs H3)."""
    worst = HealthStatus.UNKNOWN
    for snap in checks:
        status = snap.effective_status
        if status.severity > worst.severity:
            worst = status
    return worst


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    """The service's health at one moment, for one group (or all checks), from cached results."""

    status: HealthStatus
    timestamp: float
    """Wall-clock Unix time the report was made."""
    checks: Mapping[str, CheckSnapshot]
    group: str | None
    name: str = "service"
    """The registry's (service's) name."""
    fail_status: int = DEFAULT_FAIL_STATUS
    """The HTTP status of an unhealthy or unknown report (the registry's setting)."""

    @property
    def http_status(self) -> int:
        """200 for healthy and degraded; ``fail_status`` (503) for unhealthy and unknown."""
        return 200 if self.status in _SERVING else self.fail_status

    def counts(self) -> dict[str, int]:
        out = {"total": len(self.checks)} | {s.value: 0 for s in HealthStatus}
        for snap in self.checks.values():
            out[snap.status.value] += 1
        return out

    def message(self) -> str:
        """One line for people: what is wrong, by check name (names are not secrets)."""
        if self.status is HealthStatus.HEALTHY:
            return "All systems operational"
        if self.status is HealthStatus.UNKNOWN:
            if not self.checks:
                return "Unknown: no health checks are registered"
            return f"Unknown: none of the {len(self.checks)} checks has completed a run yet"
        bad = [n for n, s in self.checks.items() if s.status is not HealthStatus.HEALTHY]
        word = "Unhealthy" if self.status is HealthStatus.UNHEALTHY else "Degraded"
        return f"{word}: {len(bad)} of {len(self.checks)} checks not healthy ({', '.join(bad)})"

    def summary(self) -> dict[str, Any]:
        """Seed 003's payload: status, timestamp, services counts, message."""
        return {
            "status": self.status.value,
            "timestamp": self.timestamp,
            "services": self.counts(),
            "message": self.message(),
        }

    def detailed(self, *, redact: bool) -> dict[str, Any]:
        """The summary plus every check's snapshot and metrics."""
        out = self.summary()
        if self.group is not None:
            out["group"] = self.group
        out["checks"] = {name: snap.to_dict(redact=redact) for name, snap in self.checks.items()}
        return out

    def ietf(self, *, redact: bool, service_id: str | None = None) -> dict[str, Any]:
        """The ``application/health+json`` body (draft-inadarei-api-health-check-06).

        Each check appears as ``"<name>:responseTime"`` with a one-element array: status,
        componentId/componentType, the last duration in ms as observedValue, ``time`` of the
        reading, and ``output`` (the error) unless the check passed or ``redact`` is set.
        """
        # An unknown service is served with the fail code, so it says "fail" (the draft has
        # no "unknown"); a check not run yet says "warn".
        unknown = self.status is HealthStatus.UNKNOWN
        body: dict[str, Any] = {"status": "fail" if unknown else self.status.ietf}
        body["serviceId"] = service_id if service_id is not None else self.name
        body["description"] = f"health of {self.name}" + (
            f" ({self.group})" if self.group is not None else ""
        )
        if (not redact or unknown) and self.status is not HealthStatus.HEALTHY:
            body["output"] = self.message()  # an unknown's reason holds no secret
        checks: dict[str, list[dict[str, Any]]] = {}
        for name, snap in self.checks.items():
            entry: dict[str, Any] = {
                "componentId": name,
                "componentType": snap.component_type,
                "status": snap.status.ietf,
            }
            if snap.duration is not None:
                entry["observedValue"] = round(snap.duration * 1000.0, 3)
                entry["observedUnit"] = "ms"
            if snap.checked_at is not None:
                entry["time"] = iso8601(snap.checked_at)
            if not redact and snap.status is not HealthStatus.HEALTHY and snap.error:
                entry["output"] = snap.error
            checks[f"{name}:responseTime"] = [entry]
        body["checks"] = checks
        return body


def iso8601(timestamp: float) -> str:
    """``2024-01-15T09:52:25.123Z`` for a Unix time."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_SECRETS = (
    # scheme://user:password@host  ->  scheme://user:***@host
    (re.compile(r"(?i)([a-z][a-z0-9+.\-]*://[^:/?#@\s]*:)[^@/\s]+@"), r"\1***@"),
    # password=secret, access_token=..., api_key=... (libpq DSNs, query strings)
    (
        re.compile(
            r"(?i)\b([\w-]*(?:password|passwd|pwd|secret|token|api[_-]?key)[\w-]*)"
            r"\s*=\s*('[^']*'|[^\s&;,]+)"
        ),
        r"\1=***",
    ),
)


def scrub(text: str) -> str:
    """``text`` with passwords in URLs and the values of ``password=``, ``*token=``,
    ``*secret=`` and ``api_key=`` pairs replaced by ``***``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text
