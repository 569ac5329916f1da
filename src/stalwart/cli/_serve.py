"""``stalwart serve CONFIG.yaml``: the ops app for the checks a YAML file describes.

The checks run in the background for the server's lifetime (the app's ``run_checks``);
uvicorn serves the routes of ``stalwart.web`` and stops cleanly on SIGINT / SIGTERM.
``--check`` only reads and checks the file, prints what it would serve, and exits.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ._config import ServeConfig, load, parse_listen

__all__ = ("EXIT_BAD_CONFIG", "command")

EXIT_BAD_CONFIG = 2
"""Like a usage error: nothing was started."""


def command(path: Path, *, listen: str | None, check_only: bool) -> int:
    try:
        config = load(path)
        if listen is not None:
            config = _listening_on(config, listen)
    except ConfigError as exc:
        print(f"stalwart serve: {path}: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if check_only:
        print(json.dumps(_plan(config), indent=2))
        return 0
    return _run(config)


def _listening_on(config: ServeConfig, listen: str) -> ServeConfig:
    from dataclasses import replace

    host, port = parse_listen(listen)
    return replace(config, host=host, port=port)


def _plan(config: ServeConfig) -> dict[str, object]:
    return {
        "service": config.service,
        "listen": f"{config.host}:{config.port}",
        "admin_key": "from the environment" if config.api_key else "none: admin routes refused",
        "cache_max_age": config.cache_max_age,
        "checks": list(config.checks),
    }


def _run(config: ServeConfig) -> int:
    from ..web import ops_app

    app = ops_app(
        health=config.registry,
        breakers=config.breakers,
        api_key=config.api_key,
        cache_max_age=config.cache_max_age,
        service_id=config.service,
        run_checks=True,
    )
    names = ", ".join(config.registry.names()) or "none"
    print(
        f"stalwart serve: {config.service} on http://{_url_host(config.host)}:{config.port}/health "
        f"(checks: {names})",
        flush=True,
    )
    server = _server_class()(_uvicorn_config(app, config))
    server.run()
    return 0


def _uvicorn_config(app: Any, config: ServeConfig) -> Any:
    """How uvicorn serves ``app``: its "auto" loop and HTTP parser pick uvloop and httptools
    when they are installed (the ``web`` extra's ``uvicorn[standard]`` brings them)."""
    import uvicorn

    return uvicorn.Config(
        app, host=config.host, port=config.port, log_level="warning", lifespan="on"
    )


def _server_class() -> type[Any]:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that SIGINT / SIGTERM end it with status 0.

        uvicorn raises the signal again after its graceful shutdown, so the process would
        die of it (status -15); here the stop the signal asked for is the normal end."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                captured = getattr(self, "_captured_signals", None)
                if isinstance(captured, list):
                    captured.clear()

    return Server


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
