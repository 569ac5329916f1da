"""``GET /dashboard``: a live web page over the ops app's own JSON routes.

Three files shipped in the package (``dashboard/index.html``, ``app.js``, ``app.css``),
served by the app itself: no CDN, no inline script or style, so the Content-Security-Policy
allows only this origin. The page's URLs are relative to the mount point, so it works under
any prefix; it reads ``/breakers`` and ``/health/detailed`` and follows ``/events``.
"""

from __future__ import annotations

import functools
from importlib import resources

__all__ = ("CSP", "asset", "page")

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


@functools.cache
def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath("dashboard", name).read_bytes()


def page(path: str) -> bytes:
    """The HTML for a request to ``path`` (below the mount point, e.g. ``/dashboard/``).

    ``<base href>`` points at the mount point relative to the browser's URL: ``./`` for
    ``/dashboard``, one ``../`` per trailing slash, so the page's relative links stay
    under the prefix however the address was typed.
    """
    depth = path.count("/") - 1
    base = "../" * depth if depth > 0 else "./"
    return _read("index.html").replace(b"{base}", base.encode())


def asset(name: str) -> tuple[bytes, str] | None:
    """The body and content type of a shipped file, or None for an unknown name."""
    content_type = _TYPES.get(name)
    if content_type is None:
        return None
    return _read(name), content_type
