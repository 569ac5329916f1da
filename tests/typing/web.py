"""The ops app, metrics and httpx helpers as users write them (checked by mypy --strict)."""

from __future__ import annotations

import httpx

from stalwart import CircuitBreaker
from stalwart.health import HealthRegistry, tcp_check
from stalwart.http import is_failure, raise_for_outcome
from stalwart.metrics import PrometheusMetrics
from stalwart.web import OpsApp, flask_blueprint, ops_app

registry = HealthRegistry("orders")
registry.add("queue", tcp_check("127.0.0.1", 5672), critical=False)
app: OpsApp = ops_app(health=registry, api_key="k", metrics=False)
blueprint = flask_blueprint(app)
metrics: PrometheusMetrics = PrometheusMetrics().install()
breaker = CircuitBreaker("payments", failure_if=is_failure)


def fetch(client: httpx.Client) -> httpx.Response:
    response: httpx.Response = raise_for_outcome(client.get("http://127.0.0.1:9000/"))
    return response
