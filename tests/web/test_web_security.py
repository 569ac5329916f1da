"""Admin routes need the bearer key; secrets never reach callers without it."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Iterator

import httpx
import pytest

import stalwart
from stalwart.health import HealthRegistry
from stalwart.web import OpsApp, ops_app
from web.support import KEY, SECRET_DSN, SECRETS, Serve

RESET = "/health/services/database/reset"


def broken() -> bool:
    raise ConnectionError(f"could not connect to {SECRET_DSN}: timeout")


@pytest.fixture
def health() -> HealthRegistry:
    registry = HealthRegistry(name="orders")
    registry.add("database", broken, critical=True, groups=("ready", "startup", "live"))

    def details() -> dict[str, object]:
        return {"dsn": SECRET_DSN, "host": "db.internal.example"}

    registry.add("replica", details, critical=False)
    asyncio.run(asyncio.wait_for(registry.run_once(), 10))
    return registry


@pytest.fixture
def app(health: HealthRegistry) -> Iterator[OpsApp]:
    ops = ops_app(health=health, api_key=KEY)
    yield ops
    ops.close()


def test_reset_without_a_key_is_401_with_a_bearer_challenge(client: httpx.Client) -> None:
    response = client.post(RESET)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["status"] == 401


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong-key",
        f"Bearer {KEY}x",
        f"Bearer {KEY[:-1]}",
        "Bearer",
        f"Basic {KEY}",
        f"bearer{KEY}",
        KEY,
    ],
)
def test_reset_with_a_wrong_key_or_scheme_is_401(client: httpx.Client, authorization: str) -> None:
    response = client.post(RESET, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert "Bearer" in response.headers["www-authenticate"]


def test_the_right_key_in_any_scheme_case_is_accepted(client: httpx.Client) -> None:
    response = client.post(RESET, headers={"Authorization": f"bearer  {KEY}"})
    assert response.status_code == 200


def test_without_a_configured_key_admin_routes_are_refused_not_open(
    health: HealthRegistry, serve: Serve
) -> None:
    app = ops_app(health=health, metrics=False)
    with serve(app) as url:
        anonymous = httpx.post(f"{url}{RESET}", timeout=5)
        guessing = httpx.post(f"{url}{RESET}", headers={"Authorization": "Bearer x"}, timeout=5)
    app.close()
    assert anonymous.status_code == 403
    assert guessing.status_code == 403


def test_without_a_configured_key_a_users_bearer_token_keeps_reads_open_and_redacted(
    health: HealthRegistry, serve: Serve
) -> None:
    # An ingress that passes users' JWTs on must not make the health probes fail.
    app = ops_app(health=health, metrics=False)
    with serve(app) as url:
        jwt = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"}
        detailed = httpx.get(f"{url}/health/detailed", headers=jwt, timeout=5)
    app.close()
    assert detailed.status_code == 503  # the database check fails: answered, not 401
    assert not any(secret in detailed.text for secret in SECRETS)


def test_the_key_is_compared_in_constant_time(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr("stalwart.web._routes.hmac.compare_digest", spy)
    assert client.post(RESET, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert compared == [(KEY.encode(), KEY.encode())]


def test_a_wrong_key_on_a_read_route_is_401_not_silently_redacted(client: httpx.Client) -> None:
    response = client.get("/health/detailed", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


def test_a_proxys_basic_credentials_leave_reads_open_and_redacted(client: httpx.Client) -> None:
    response = client.get("/health/detailed", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 503
    assert not any(secret in response.text for secret in SECRETS)


READ_ROUTES = [
    "/",
    "/health",
    "/health/detailed",
    "/health/live",
    "/health/ready",
    "/health/startup",
    "/health/services/database",
    "/health/services/replica",
    "/breakers",
    "/metrics",
    "/openapi.json",
]


@pytest.mark.parametrize("accept", ["application/json", "application/health+json", "*/*"])
def test_no_secret_reaches_a_caller_without_the_key(client: httpx.Client, accept: str) -> None:
    stalwart.circuit_breaker("database", failure_threshold=1)
    for path in READ_ROUTES:
        response = client.get(path, headers={"Accept": accept})
        assert response.status_code < 500 or response.status_code == 503, path
        for secret in SECRETS:
            assert secret not in response.text, (path, secret)


def test_the_key_unlocks_error_details_and_check_output(client: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    detailed = client.get("/health/detailed", headers=headers).json()
    assert "db.internal.example" in detailed["checks"]["database"]["error"]
    replica = client.get("/health/services/replica", headers=headers).json()
    assert replica["details"]["host"] == "db.internal.example"
    ietf = client.get("/health", headers={**headers, "Accept": "application/health+json"})
    assert "db.internal.example" in ietf.json()["checks"]["database:responseTime"][0]["output"]


def test_bad_json_bodies_get_400_never_500(client: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    for body in (b"{", b"[1, 2]", b'"text"', b"\xff\xfe", b"[" * 5000):
        response = client.post(RESET, content=body, headers=headers)
        assert response.status_code == 400, body[:10]
    assert client.post(RESET, content=b"{}", headers=headers).status_code == 200
    assert client.post(RESET, content=b"", headers=headers).status_code == 200


def test_an_oversized_body_gets_413(client: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    response = client.post(RESET, content=b" " * 70_000, headers=headers)
    assert response.status_code == 413


def test_reset_of_an_unknown_service_is_404_after_authentication(client: httpx.Client) -> None:
    path = "/health/services/nope/reset"
    assert client.post(path).status_code == 401
    assert client.post(path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 404


@pytest.mark.parametrize("key", ["", "   ", " padded ", 42])
def test_a_bad_api_key_setting_names_the_field(health: HealthRegistry, key: object) -> None:
    with pytest.raises(stalwart.ConfigError) as err:
        ops_app(health=health, api_key=key, metrics=False)  # type: ignore[arg-type]
    assert err.value.field == "api_key"
