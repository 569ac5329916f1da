"""The ops app of every process shows a shared breaker alike, and an operator's reset or
force_open through any one of them acts on all (real HTTP under uvicorn, real Redis)."""

from __future__ import annotations

import httpx

from distributed.conftest import MakeStore
from distributed.support import until
from stalwart import CircuitBreaker, State
from stalwart.health import HealthRegistry
from stalwart.web import ops_app
from web.support import KEY, serve_asgi


def test_reset_and_force_open_through_one_ops_app_act_on_every_process(
    make_store: MakeStore,
) -> None:
    a = CircuitBreaker("payments", store=make_store())
    b = CircuitBreaker("payments", store=make_store())
    app_a = ops_app(breakers=[a], api_key=KEY, metrics=False)
    app_b = ops_app(breakers=[b], api_key=KEY, metrics=False)
    auth = {"authorization": f"Bearer {KEY}"}
    with serve_asgi(app_a) as url_a, serve_asgi(app_b) as url_b, httpx.Client(timeout=5) as http:
        listed = http.get(f"{url_b}/breakers").json()["breakers"]["payments"]
        assert listed["shared"].startswith("shared: redis")
        assert http.post(f"{url_a}/breakers/payments/force_open").status_code == 401
        forced = http.post(f"{url_a}/breakers/payments/force_open", headers=auth)
        assert forced.status_code == 200
        assert forced.json()["state"] == "forced_open"
        until(lambda: b.state is State.FORCED_OPEN, "the other process is forced open too")
        seen = http.get(f"{url_b}/breakers/payments").json()
        assert seen["state"] == "forced_open"
        assert seen["available"] is False
        assert http.post(f"{url_b}/breakers/payments/reset", headers=auth).status_code == 200
        until(lambda: a.state is State.CLOSED, "reset through the other app closes it here")
        missing = http.post(f"{url_a}/breakers/nope/reset", headers=auth)
        assert missing.status_code == 404
        bad = http.post(f"{url_a}/breakers/payments/reset", headers=auth, content=b"[1]")
        assert bad.status_code == 400
    app_a.close()
    app_b.close()


def test_the_store_health_check_in_the_ops_app(make_store: MakeStore) -> None:
    store = make_store()
    registry = HealthRegistry(name="orders")
    registry.add("redis_state", store.health_check(), critical=False)
    app = ops_app(health=registry, metrics=False)
    with registry.running_in_thread(), serve_asgi(app) as url, httpx.Client(timeout=5) as http:
        until(lambda: http.get(f"{url}/health").json()["status"] == "healthy", "healthy")
        detail = http.get(f"{url}/health/services/redis_state").json()
        assert detail["component_type"] == "datastore"
    app.close()
