"""Pure parts of stalwart.health: statuses, aggregation, metrics, the three formats, redaction."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalwart.health import CheckResult, CheckSnapshot, HealthReport, HealthStatus
from stalwart.health._metrics import CheckStats, percentile
from stalwart.health._model import aggregate, iso8601, scrub

HEALTHY, DEGRADED, UNHEALTHY = HealthStatus.HEALTHY, HealthStatus.DEGRADED, HealthStatus.UNHEALTHY
UNKNOWN = HealthStatus.UNKNOWN


def snap(
    name: str = "db",
    status: HealthStatus = HEALTHY,
    *,
    critical: bool = True,
    error: str | None = None,
    details: dict[str, Any] | None = None,
    checked_at: float | None = 1_700_000_000.5,
    duration: float | None = 0.0123,
) -> CheckSnapshot:
    return CheckSnapshot(
        name=name,
        status=status,
        critical=critical,
        groups=frozenset({"ready"}),
        component_type="datastore",
        checked_at=checked_at,
        duration=duration,
        error=error,
        details=MappingProxyType(details or {}),
        availability=1.0,
        avg_duration=0.01,
        p95_duration=0.02,
        consecutive_failures=0,
        history=(),
        breaker_state=None,
    )


def report(*snaps: CheckSnapshot, group: str | None = None) -> HealthReport:
    return HealthReport(
        status=aggregate(snaps),
        timestamp=1_700_000_001.25,
        checks={s.name: s for s in snaps},
        group=group,
        name="api",
    )


# -- statuses and aggregation -------------------------------------------------------------


def test_statuses_map_to_ietf_pass_warn_fail() -> None:
    # a check not run yet says warn; a whole service unknown says fail (see the ietf tests)
    assert [s.ietf for s in HealthStatus] == ["pass", "warn", "fail", "warn"]
    assert HealthStatus.HEALTHY == "healthy"
    assert isinstance(HealthStatus.DEGRADED, str)


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("pass", HEALTHY),
        ("OK", HEALTHY),
        ("Up", HEALTHY),
        ("warn", DEGRADED),
        ("degraded", DEGRADED),
        ("FAIL", UNHEALTHY),
        ("error", UNHEALTHY),
        ("down", UNHEALTHY),
        (" unhealthy ", UNHEALTHY),
    ],
)
def test_parse_reads_ietf_spring_and_terminus_spellings_case_insensitively(
    text: str, status: HealthStatus
) -> None:
    assert HealthStatus.parse(text) is status


def test_parse_refuses_an_unknown_status() -> None:
    with pytest.raises(ValueError, match="not a health status"):
        HealthStatus.parse("sideways")


def test_no_checks_aggregate_to_unknown() -> None:
    assert aggregate([]) is UNKNOWN


def test_checks_not_run_yet_are_ignored_and_only_them_is_unknown() -> None:
    assert aggregate([snap("a", UNKNOWN), snap("b", UNKNOWN)]) is UNKNOWN
    assert aggregate([snap("a", UNKNOWN), snap("b")]) is HEALTHY
    assert aggregate([snap("a", UNKNOWN), snap("b", UNHEALTHY)]) is UNHEALTHY


def test_an_unknown_report_is_served_with_the_fail_status_and_says_why() -> None:
    empty = report()
    assert empty.status is UNKNOWN
    assert empty.http_status == 503
    assert empty.summary()["message"] == "Unknown: no health checks are registered"
    waiting = report(snap("db", UNKNOWN), snap("s3", UNKNOWN))
    assert waiting.summary()["message"] == "Unknown: none of the 2 checks has completed a run yet"
    body = waiting.ietf(redact=True)
    assert body["status"] == "fail"
    assert body["output"] == waiting.message()  # said even to the public: no secret in it
    assert body["checks"]["db:responseTime"][0]["status"] == "warn"


def test_the_fail_status_is_the_reports_setting() -> None:
    assert replace(report(snap("a", UNHEALTHY)), fail_status=500).http_status == 500
    assert replace(report(), fail_status=429).http_status == 429
    assert replace(report(snap("a", DEGRADED)), fail_status=500).http_status == 200


def test_a_failing_critical_check_makes_the_service_unhealthy() -> None:
    assert aggregate([snap("a"), snap("b", UNHEALTHY)]) is UNHEALTHY


def test_a_failing_non_critical_check_only_degrades_the_service() -> None:
    assert aggregate([snap("a"), snap("b", UNHEALTHY, critical=False)]) is DEGRADED


def test_a_warning_degrades_even_a_critical_check() -> None:
    assert aggregate([snap("a", DEGRADED)]) is DEGRADED


@given(st.lists(st.tuples(st.sampled_from(list(HealthStatus)), st.booleans()), max_size=8))
def test_aggregate_is_the_worst_effective_status(items: list[tuple[HealthStatus, bool]]) -> None:
    snaps = [snap(f"c{i}", s, critical=c) for i, (s, c) in enumerate(items)]
    effective = [
        DEGRADED if s is UNHEALTHY and not c else s for s, c in items
    ]  # non-critical failures degrade
    expected = max(effective, key=lambda s: s.severity, default=UNKNOWN)
    assert aggregate(snaps) is expected


def test_http_status_is_503_only_when_unhealthy() -> None:
    assert report(snap()).http_status == 200
    assert report(snap("a", DEGRADED)).http_status == 200
    assert report(snap("a", UNHEALTHY)).http_status == 503


# -- metrics --------------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 95) == 95.0
    assert percentile([3.0, 1.0, 2.0], 95) == 3.0
    assert percentile([5.0], 95) == 5.0
    assert percentile([], 95) == 0.0


def result(status: HealthStatus, duration: float) -> CheckResult:
    return CheckResult(status, None if status is HEALTHY else "x", duration=duration)


def test_stats_count_availability_average_p95_and_streak() -> None:
    stats = CheckStats(100)
    for i in range(20):
        stats.record(result(UNHEALTHY if i % 4 == 0 else HEALTHY, duration=float(i)))
    assert stats.availability == pytest.approx(15 / 20)
    assert stats.avg_duration == pytest.approx(sum(range(20)) / 20)
    assert stats.p95_duration == 18.0  # nearest rank: 19th of 20
    assert stats.consecutive_failures == 0
    stats.record(result(UNHEALTHY, 1.0))
    stats.record(result(UNHEALTHY, 1.0))
    assert stats.consecutive_failures == 2
    assert stats.total_failures == 7


def test_a_warning_neither_fails_availability_nor_extends_the_streak() -> None:
    stats = CheckStats(10)
    stats.record(result(UNHEALTHY, 0.1))
    stats.record(result(DEGRADED, 0.1))
    assert stats.consecutive_failures == 0
    assert stats.availability == 0.5


def test_history_is_bounded_and_metrics_cover_only_what_it_holds() -> None:
    stats = CheckStats(3)
    for status in (UNHEALTHY, UNHEALTHY, HEALTHY, HEALTHY, HEALTHY):
        stats.record(result(status, 1.0))
    assert len(stats.history) == 3
    assert stats.availability == 1.0
    assert stats.total_runs == 5


def test_reset_streak_forgets_consecutive_failures_only() -> None:
    stats = CheckStats(10)
    stats.record(result(UNHEALTHY, 0.1))
    stats.reset_streak()
    assert stats.consecutive_failures == 0
    assert stats.total_failures == 1


# -- formats ------------------------------------------------------------------------------


def test_summary_is_seed_003s_payload() -> None:
    body = report(snap("db"), snap("s3")).summary()
    assert body == {
        "status": "healthy",
        "timestamp": 1_700_000_001.25,
        "services": {"total": 2, "healthy": 2, "degraded": 0, "unhealthy": 0, "unknown": 0},
        "message": "All systems operational",
    }


def test_summary_counts_each_check_by_its_own_status_and_names_the_bad_ones() -> None:
    body = report(snap("db", UNHEALTHY, critical=False), snap("s3"), snap("q", DEGRADED)).summary()
    assert body["status"] == "degraded"
    assert body["services"] == {
        "total": 3, "healthy": 1, "degraded": 1, "unhealthy": 1, "unknown": 0
    }  # fmt: skip
    assert body["message"] == "Degraded: 2 of 3 checks not healthy (db, q)"


def test_detailed_adds_every_check_with_its_metrics() -> None:
    body = report(snap("db", error=None, details={"server_version": 150000})).detailed(redact=False)
    check = body["checks"]["db"]
    assert check["details"] == {"server_version": 150000}
    assert check["groups"] == ["ready"]
    for key in ("availability", "avg_duration", "p95_duration", "consecutive_failures"):
        assert key in check
    assert "group" not in body


def test_detailed_names_the_group_it_reports_on() -> None:
    assert report(snap(), group="ready").detailed(redact=True)["group"] == "ready"


def test_ietf_keys_checks_by_name_and_measurement_with_array_values() -> None:
    body = report(snap("db"), snap("cache", DEGRADED, error="slow")).ietf(redact=False)
    assert body["status"] == "warn"
    assert body["serviceId"] == "api"
    assert set(body["checks"]) == {"db:responseTime", "cache:responseTime"}
    (db,) = body["checks"]["db:responseTime"]
    assert db == {
        "componentId": "db",
        "componentType": "datastore",
        "status": "pass",
        "observedValue": 12.3,
        "observedUnit": "ms",
        "time": "2023-11-14T22:13:20.500Z",
    }
    (cache,) = body["checks"]["cache:responseTime"]
    assert cache["output"] == "slow"
    assert body["output"].startswith("Degraded")


def test_ietf_omits_output_when_a_check_passes() -> None:
    body = report(snap("db", error="stale text")).ietf(redact=False)
    assert "output" not in body
    assert "output" not in body["checks"]["db:responseTime"][0]


def test_ietf_omits_output_when_redacted() -> None:
    body = report(snap("db", UNHEALTHY, error="host db.internal refused")).ietf(redact=True)
    assert body["status"] == "fail"
    assert "output" not in body
    assert "output" not in body["checks"]["db:responseTime"][0]


def test_ietf_service_id_can_be_given() -> None:
    assert report(snap()).ietf(redact=True, service_id="api-7f9c")["serviceId"] == "api-7f9c"


def test_ietf_leaves_out_the_reading_of_a_check_that_never_ran() -> None:
    pending = snap("db", DEGRADED, error="not checked yet", checked_at=None, duration=None)
    (entry,) = report(pending).ietf(redact=False)["checks"]["db:responseTime"]
    assert "observedValue" not in entry
    assert "time" not in entry
    assert entry["status"] == "warn"


def test_iso8601_is_utc_with_milliseconds() -> None:
    assert iso8601(0.0) == "1970-01-01T00:00:00.000Z"


# -- redaction ------------------------------------------------------------------------------

SECRET_ERROR = "connection to postgresql://app:hunter2@db.internal:5432/x failed"


def test_redacted_snapshot_drops_error_text_and_details() -> None:
    s = snap("db", UNHEALTHY, error=SECRET_ERROR, details={"host": "db.internal"})
    out = s.to_dict(redact=True)
    assert out["error"] is None
    assert out["details"] == {}
    text = repr(report(s).detailed(redact=True)) + repr(report(s).ietf(redact=True))
    assert "db.internal" not in text
    assert "hunter2" not in text


def test_redacted_history_drops_error_texts() -> None:
    failed = CheckResult(UNHEALTHY, SECRET_ERROR, duration=0.1, checked_at=1.0)
    s = dataclasses.replace(snap("db", UNHEALTHY), history=(failed,))
    assert s.to_dict(redact=True)["history"] == [
        {"status": "unhealthy", "duration": 0.1, "checked_at": 1.0, "error": None}
    ]
    assert s.to_dict(redact=False)["history"][0]["error"] == SECRET_ERROR


def test_unredacted_snapshot_keeps_error_and_details() -> None:
    out = snap("db", UNHEALTHY, error="boom", details={"k": 1}).to_dict(redact=False)
    assert out["error"] == "boom"
    assert out["details"] == {"k": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:hunter2@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("host=db password=hunter2 user=app", "host=db password=*** user=app"),
        ("dbname=x PASSWORD='hunter 2'", "dbname=x PASSWORD=***"),
        ("http://example.org/health", "http://example.org/health"),
        ("GET /v1?access_token=abc&x=1", "GET /v1?access_token=***&x=1"),
        ("api-key=abc client_secret=xyz", "api-key=*** client_secret=***"),
        ("tokens: 3, keys=4", "tokens: 3, keys=4"),
    ],
)
def test_scrub_hides_passwords_in_urls_and_key_value_dsns(text: str, expected: str) -> None:
    assert scrub(text) == expected


# -- results ------------------------------------------------------------------------------


def test_result_constructors_say_pass_warn_fail() -> None:
    assert CheckResult.passed(rows=1).details == {"rows": 1}
    assert CheckResult.warned("slow").status is DEGRADED
    assert CheckResult.warned("slow").ok
    assert not CheckResult.failed("down").ok
