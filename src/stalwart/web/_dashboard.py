"""``GET /dashboard`` and ``GET /static/{name}``: the web files shipped in the package.

The dashboard is three files (``dashboard/index.html``, ``app.js``, ``app.css``), served by
the app itself: no CDN, no inline script or style, so the Content-Security-Policy allows
only this origin. The page's URLs are relative to the mount point, so it works under any
prefix; it reads ``/breakers`` and ``/health/detailed`` and follows ``/events``.

``static/`` holds what other pages may load: ``stalwart-poller.js`` (and its ES-module
form ``.mjs``), which the dashboard uses too. Served with CORS open (they hold no data),
so a page on another origin can import the module; :func:`static_path` finds them for
vendoring.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

__all__ = ("CSP", "STATIC_FILES", "page", "shipped", "static_path")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src data:; base-uri 'self'; form-action 'none'; frame-ancestors 'none'"
)
"""Only files and requests from this origin; no inline code; no framing."""

_TYPES = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}


def headers(content_type: str) -> list[tuple[str, str]]:
    return [
        ("content-type", content_type),
        ("cache-control", "no-cache"),
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ]


STATIC_FILES = ("stalwart-poller.js", "stalwart-poller.mjs")
"""The files under ``/static/``: the browser poller as a classic script and an ES module."""


def static_headers(content_type: str) -> list[tuple[str, str]]:
    return [
        ("content-type", content_type),
        ("cache-control", "no-cache"),
        ("access-control-allow-origin", "*"),
        ("x-content-type-options", "nosniff"),
        ("cross-origin-resource-policy", "cross-origin"),
    ]


@functools.cache
def _read(name: str, folder: str = "dashboard") -> bytes:
    return resources.files(__package__).joinpath(folder, name).read_bytes()


def page(path: str) -> bytes:
    """The HTML for a request to ``path`` (below the mount point, e.g. ``/dashboard/``).

    ``<base href>`` points at the mount point relative to the browser's URL: ``./`` for
    ``/dashboard``, one ``../`` per trailing slash, so the page's relative links stay
    under the prefix however the address was typed.
    """
    depth = path.count("/") - 1
    base = "../" * depth if depth > 0 else "./"
    return _read("index.html").replace(b"{base}", base.encode())


def shipped(folder: str, name: str) -> tuple[bytes, list[tuple[str, str]]] | None:
    """The body and headers of a file shipped in ``folder`` ("dashboard": the page's script
    and style; "static": the poller), or None for an unknown name."""
    if folder == "static":
        if name not in STATIC_FILES:
            return None
        return _read(name, "static"), static_headers("text/javascript; charset=utf-8")
    content_type = _TYPES.get(name)
    if content_type is None:
        return None
    return _read(name), headers(content_type)


def static_path(name: str = "stalwart-poller.js") -> Path:
    """Where a shipped static file is on disk, to copy it into your own assets."""
    if name not in STATIC_FILES:
        raise ValueError(f"no static file named {name!r}; there are {', '.join(STATIC_FILES)}")
    return Path(str(resources.files(__package__).joinpath("static", name)))
