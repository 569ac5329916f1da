"""Fixtures for the ops app's tests: real servers (uvicorn, werkzeug) on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from stalwart.web import OpsApp
from web.support import Serve, serve_asgi, serve_wsgi


@pytest.fixture
def serve() -> Serve:
    """``with serve(app) as url:`` runs an ASGI app under uvicorn for the block."""
    return serve_asgi


@pytest.fixture
def wsgi() -> Serve:
    """``with wsgi(app) as url:`` runs a WSGI app under werkzeug for the block."""
    return serve_wsgi


@pytest.fixture
def client(app: OpsApp, serve: Serve) -> Iterator[httpx.Client]:
    """An HTTP client of the test module's ``app`` fixture, served by uvicorn."""
    with serve(app) as url, httpx.Client(base_url=url, timeout=5) as http:
        yield http
