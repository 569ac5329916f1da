"""The ops HTTP app: health probes, breakers with poll hints, Prometheus metrics and live
state changes, as a pure ASGI app mountable at any prefix (FastAPI, Starlette) and as a
Flask blueprint sharing the same request handling.

``RateLimit`` and ``ApiKey`` guard your own ASGI routes (``Guarded`` middleware, or
``Depends(guard.dependency)`` in FastAPI). ``static_path()`` finds ``stalwart-poller.js``
(the browser poller, also served under ``/static/``) for copying into your own assets.

Needs the ``web`` extra for serving (uvicorn); ``/metrics`` needs ``prometheus``.
"""

from ._asgi import OpsApp as OpsApp
from ._asgi import ops_app as ops_app
from ._dashboard import static_path as static_path
from ._flask import flask_blueprint as flask_blueprint
from ._guards import ApiKey as ApiKey
from ._guards import Guarded as Guarded
from ._guards import RateLimit as RateLimit
from ._guards import by_address as by_address
from ._guards import by_api_key as by_api_key

__all__ = (
    "ApiKey",
    "Guarded",
    "OpsApp",
    "RateLimit",
    "by_address",
    "by_api_key",
    "flask_blueprint",
    "ops_app",
    "static_path",
)
