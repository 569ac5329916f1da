"""/openapi.json says what each route really answers: one test per gap schemathesis found.

Each test makes the route give the answer the document used to leave out, over real HTTP,
and checks that the document lists its status code and content type and that the body
matches the schema given for them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import schemathesis
from openapi_spec_validator import validate

from stalwart.health import HealthRegistry
from stalwart.health._model import HealthStatus
from stalwart.web import ops_app
from stalwart.web._openapi import HEALTH_STATUSES, openapi
from stalwart.web._routes import ROUTES
from web.support import KEY, Serve


def documented(document: dict[str, Any], template: str, response: httpx.Response) -> None:
    """``response`` (to GET or POST ``template``) is one that ``document`` describes."""
    method = response.request.method.lower()
    answers = document["paths"][template][method]["responses"]
    assert str(response.status_code) in answers, f"{response.status_code} is not documented"
    media = response.headers["content-type"].split(";")[0]
    assert media in answers[str(response.status_code)]["content"], f"{media} is not documented"
    operation = schemathesis.openapi.from_dict(document)[template][method.upper()]
    operation.validate_response(response)  # raises when the body does not match


def unhealthy(**registry: Any) -> HealthRegistry:
    health = HealthRegistry("orders", **registry)
    health.add("database", lambda: False, critical=True)
    asyncio.run(health.run_once())
    return health


def test_a_wrong_key_on_any_read_route_is_a_documented_401(serve: Serve) -> None:
    app = ops_app(api_key=KEY, metrics=False)
    with serve(app) as url, httpx.Client(base_url=url, timeout=5) as http:
        document = http.get("/openapi.json").json()
        wrong = {"Authorization": "Bearer not-the-key"}
        for template in ("/", "/breakers", "/static/{name}", "/openapi.json"):
            path = template.replace("{name}", "stalwart-poller.js")
            answer = http.get(path, headers=wrong)
            assert answer.status_code == 401
            documented(document, template, answer)
    app.close()
    for item in document["paths"].values():
        for operation in (v for k, v in item.items() if k != "parameters"):
            assert "401" in operation["responses"]
            # Reads are open, and take the key for details: the key is optional there.
            assert {"bearer": []} in operation["security"]


def test_detailed_health_documents_its_503_and_its_ietf_body(serve: Serve) -> None:
    app = ops_app(health=unhealthy(), metrics=False)
    with serve(app) as url, httpx.Client(base_url=url, timeout=5) as http:
        document = http.get("/openapi.json").json()
        plain = http.get("/health/detailed")
        ietf = http.get("/health/detailed", headers={"Accept": "application/health+json"})
    app.close()
    assert (plain.status_code, ietf.status_code) == (503, 503)
    assert ietf.headers["content-type"] == "application/health+json"
    documented(document, "/health/detailed", plain)
    documented(document, "/health/detailed", ietf)


def test_an_empty_registrys_unknown_status_is_in_the_document(serve: Serve) -> None:
    app = ops_app(metrics=False)
    with serve(app) as url, httpx.Client(base_url=url, timeout=5) as http:
        document = http.get("/openapi.json").json()
        answer = http.get("/health")
    app.close()
    assert (answer.status_code, answer.json()["status"]) == (503, "unknown")
    documented(document, "/health", answer)
    assert set(HEALTH_STATUSES) == {s.value for s in HealthStatus}


def test_metrics_document_openmetrics_and_the_404_when_off(serve: Serve) -> None:
    with_metrics, without = ops_app(), ops_app(metrics=False)
    openmetrics = {"Accept": "application/openmetrics-text; version=1.0.0"}
    with serve(with_metrics) as url, serve(without) as bare:
        document = httpx.get(f"{url}/openapi.json", timeout=5).json()
        scraped = httpx.get(f"{url}/metrics", headers=openmetrics, timeout=5)
        off = httpx.get(f"{bare}/metrics", timeout=5)
    with_metrics.close()
    without.close()
    assert scraped.headers["content-type"].startswith("application/openmetrics-text")
    documented(document, "/metrics", scraped)
    assert off.status_code == 404
    documented(document, "/metrics", off)


def test_events_document_the_503_for_too_many_clients(serve: Serve) -> None:
    app = ops_app(metrics=False, max_event_clients=1)
    with (
        serve(app) as url,
        httpx.Client(base_url=url, timeout=5) as http,
        http.stream("GET", "/events") as first,
    ):
        chunks = first.iter_bytes()  # kept: a collected iterator would close the stream
        next(chunks)  # the hello: the first client is subscribed
        refused = http.get("/events")
        document = http.get("/openapi.json").json()
    app.close()
    assert (refused.status_code, refused.headers["retry-after"]) == (503, "10")
    documented(document, "/events", refused)
    assert "Retry-After" in document["paths"]["/events"]["get"]["responses"]["503"]["headers"]


@pytest.mark.parametrize("fail_status", [500, 503])
def test_the_health_routes_document_the_registrys_fail_status(
    serve: Serve, fail_status: int
) -> None:
    app = ops_app(health=unhealthy(fail_status=fail_status), metrics=False)
    with serve(app) as url, httpx.Client(base_url=url, timeout=5) as http:
        document = http.get("/openapi.json").json()
        answers = {
            "/health": http.get("/health"),
            "/health/services/{name}": http.get("/health/services/database"),
        }
    app.close()
    for template, answer in answers.items():
        assert answer.status_code == fail_status
        documented(document, template, answer)
    other = {500: "503", 503: "500"}[fail_status]
    assert other not in document["paths"]["/health"]["get"]["responses"]


@pytest.mark.parametrize("root_path", ["", "/ops"])
def test_the_document_is_valid_openapi_3_1(root_path: str) -> None:
    # schemathesis skips what it cannot read (a response without "content" is not checked),
    # so the document's own shape is checked first.
    validate(openapi(ROUTES, root_path, fail_status=500))
