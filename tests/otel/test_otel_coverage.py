"""Every Prometheus metric has an OpenTelemetry twin with the same attributes and values,
and docs/observability.md's table names each pair: a new Prometheus metric without a twin
(or without a row) fails here."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import Gauge, Histogram, Sum

import stalwart
from otel.conftest import Telemetry, boom, flaky, paused_batch
from stalwart._retry import Retry
from stalwart.health import HealthRegistry
from stalwart.metrics import PrometheusMetrics
from stalwart.supervisor import BlockingSupervisor
from stalwart.testing import FakeClock
from supervisor.peers import sync_echo

PAGE = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
ROW = re.compile(
    r"^\| `(stalwart_\w+)` \| (.+?) \| `(stalwart\.[\w.]+)` \| ([\w -]+?) \| `(.+?)` \|$", re.M
)


def table() -> dict[str, tuple[tuple[str, ...], str, str, str]]:
    """The page's mapping: Prometheus family name -> (labels, OTel name, instrument, unit)."""
    rows: dict[str, tuple[tuple[str, ...], str, str, str]] = {}
    for prom, labels, otel, kind, unit in ROW.findall(PAGE.read_text()):
        family = prom.removesuffix("_total")
        assert family not in rows, f"{prom} has two rows"
        rows[family] = (tuple(re.findall(r"`(\w+)`", labels)), otel, kind, unit)
    return rows


@contextlib.contextmanager
def everything_measured(clock: FakeClock, registry: HealthRegistry, tmp: Path) -> Iterator[None]:
    """A workload that gives every metric a value, with a supervised connection kept open."""
    db = stalwart.circuit_breaker(
        "db", failure_rate=0.9, window=4, minimum_calls=3, ignore=KeyError, clock=clock
    )

    def slow() -> None:
        clock.advance(0.2)

    def ignored() -> None:
        raise KeyError("x")

    for fn in (slow, slow, boom, ignored):
        with contextlib.suppress(OSError, KeyError):
            db.call(fn)
    qbit = stalwart.circuit_breaker("qbit", failure_threshold=1, clock=clock)
    for _ in range(3):
        with contextlib.suppress(OSError, stalwart.CircuitOpenError):
            qbit.call(boom)
    retry = Retry(on=OSError, max_attempts=2, name="fetch", clock=clock)
    once = Retry(on=OSError, max_attempts=1, name="fetch", clock=clock)
    call = flaky(1)
    retry.call(call)  # with a retry
    retry.call(call)  # without
    for policy in (retry, once):
        with contextlib.suppress(OSError):
            policy.call(boom)
    paused_batch(tmp, clock)
    asyncio.run(registry.run_once())
    with sync_echo() as url, BlockingSupervisor([url], name="agent") as supervisor:
        assert supervisor.wait_connected(10)
        supervisor.send({"n": 1})
        assert supervisor.recv(timeout=10) == {"n": 1}
        yield


def otel_kind(data: Any) -> str:
    """The instrument kind the collected data shows (observable or not looks the same)."""
    if isinstance(data, Histogram):
        return "histogram"
    if isinstance(data, Gauge):
        return "gauge"
    assert isinstance(data, Sum)
    return "counter" if data.is_monotonic else "up-down counter"


def test_every_prometheus_metric_has_an_otel_twin_with_the_same_attributes_and_values(
    telemetry: Telemetry, clock: FakeClock, tmp_path: Path
) -> None:
    registry = HealthRegistry("shop", clock=clock)
    registry.add("database", lambda: True)
    rows = table()
    prometheus = PrometheusMetrics(health=registry)
    with (
        prometheus,
        telemetry.instrument(health=registry, clock=clock),
        everything_measured(clock, registry, tmp_path),
    ):
        families = list(prometheus.registry.collect())
        otel = telemetry.metrics()
    assert {f.name for f in families} == set(rows), "docs/observability.md's table is off"
    for family in families:
        labels, name, kind, unit = rows[family.name]
        assert name in otel, f"{family.name} has no OpenTelemetry twin ({name})"
        twin = otel[name]
        assert twin.unit == unit, name
        assert otel_kind(twin.data) == kind.removeprefix("observable "), name
        points = {frozenset(p.attributes.items()): p for p in twin.data.data_points}
        samples = [s for s in family.samples if not s.name.endswith(("_created", "_bucket"))]
        assert samples, f"the workload gives {family.name} no value: extend it"
        for sample in samples:
            assert set(sample.labels) == set(labels), family.name
            point = points.get(frozenset(sample.labels.items()))
            assert point is not None, (name, sample.labels)
            if sample.name.endswith("_count"):
                assert point.count == sample.value, (name, sample.labels)
            elif sample.name.endswith("_sum"):
                assert point.sum == pytest.approx(sample.value), (name, sample.labels)
            elif family.name != "stalwart_connection_uptime_seconds":  # time goes on
                assert point.value == pytest.approx(sample.value), (name, sample.labels)
        assert len(points) == len({frozenset(s.labels.items()) for s in samples}), name
