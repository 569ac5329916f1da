"""The shipped alerting rules and Grafana dashboard: valid for Prometheus (promtool, from
Debian's prometheus package, installed by scripts/check), firing when they should
(``promtool test rules``), and written over metric names stalwart really exposes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from stalwart import CircuitBreaker, CircuitOpenError, Retry
from stalwart.health import HealthRegistry
from stalwart.metrics import PrometheusMetrics, asset
from stalwart.testing import FakeClock

HERE = Path(__file__).parent
METRIC = re.compile(r"\bstalwart_[a-z_]+\b")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: apt-get install -y --no-install-recommends prometheus "
            "(scripts/check installs it)"
        )
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rules() -> None:
    done = run("check", "rules", str(asset("alerts.yml")))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout


def test_each_alert_fires_on_its_case_and_not_on_the_healthy_ones(tmp_path: Path) -> None:
    tests = (HERE / "alerts_test.yml").read_text().replace("RULES", str(asset("alerts.yml")))
    (tmp_path / "alerts_test.yml").write_text(tests)
    done = run("test", "rules", str(tmp_path / "alerts_test.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    tested = {
        t["alertname"] for case in yaml.safe_load(tests)["tests"] for t in case["alert_rule_test"]
    }
    rules = yaml.safe_load(asset("alerts.yml").read_text())["groups"][0]["rules"]
    assert tested == {rule["alert"] for rule in rules}  # every alert has a test


def exposed_names() -> set[str]:
    """Every sample name a process with a breaker, a retry and a health check exposes."""
    clock = FakeClock()
    breaker = CircuitBreaker("s3", failure_threshold=1, clock=clock)
    health = HealthRegistry(name="app")
    health.add("database_pool", lambda: True)
    with PrometheusMetrics(health=health, breakers=[breaker]) as metrics:

        def fail() -> None:
            raise OSError("down")

        for _ in range(2):
            with contextlib.suppress(OSError, CircuitOpenError):
                breaker.call(fail)
        Retry(on=OSError, max_attempts=2, clock=clock).call(lambda: None)
        asyncio.run(health.run_once("database_pool"))
        text = metrics.exposition()[0].decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_the_rules_and_the_dashboard_use_only_exposed_metric_names() -> None:
    exposed = exposed_names()
    dashboard = json.loads(asset("grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = set(METRIC.findall(asset("alerts.yml").read_text())) | {
        name for expr in exprs for name in METRIC.findall(expr)
    }
    assert used
    assert used <= exposed, sorted(used - exposed)


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    dashboard = json.loads(asset("grafana-dashboard.json").read_text())
    assert dashboard["uid"] == "stalwart-overview"
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 8
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}


def test_an_unknown_file_name_is_refused() -> None:
    with pytest.raises(ValueError, match=r"alerts\.yml"):
        asset("rules.yml")
