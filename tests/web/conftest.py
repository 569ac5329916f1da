"""Fixtures for the ops app's tests: real servers (uvicorn, werkzeug) on loopback."""

from __future__ import annotations

import pytest

from web.support import Serve, serve_asgi, serve_wsgi


@pytest.fixture
def serve() -> Serve:
    """``with serve(app) as url:`` runs an ASGI app under uvicorn for the block."""
    return serve_asgi


@pytest.fixture
def wsgi() -> Serve:
    """``with serve_wsgi(app) as url:`` runs a WSGI app under werkzeug for the block."""
    return serve_wsgi
