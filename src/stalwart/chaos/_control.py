"""An HTTP/JSON control endpoint for chaos proxies, in the spirit of Toxiproxy's API.

``ControlServer`` serves named :class:`ChaosProxy` instances on loopback so a test in another
process, a shell script or a person with ``curl`` can read their stats and switch their
faults. Stdlib and asyncio only: one request per connection, bounded header and body sizes,
a read timeout, and every error answered with a 4xx JSON body.

Routes::

    GET    /health                   {"status": "ok", "proxies": N}
    GET    /proxies                  {"proxies": {name: view, ...}}
    GET    /proxies/{name}           view: name, listen, upstream, faults, stats
    GET    /proxies/{name}/faults    the faults in force
    POST   /proxies/{name}/faults    merge a JSON object of faults into the current ones
    PUT    /proxies/{name}/faults    replace the faults (fields left out go back to defaults)
    DELETE /proxies/{name}/faults    remove every fault
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import urllib.parse
from collections.abc import Iterable
from http import HTTPStatus
from types import TracebackType
from typing import Any

from .._errors import ConfigError
from .._validate import positive, whole
from ._proxy import ChaosProxy, ProxyFaults, _check_listen

__all__ = ("ControlServer",)

DEFAULT_CONTROL_PORT = 8474
"""Toxiproxy's port, so muscle memory works."""
MAX_HEADER_BYTES = 16384
"""Request line plus headers, at most."""
MAX_BODY_BYTES = 65536
"""A JSON object of faults is a few hundred bytes; anything near this is a mistake."""
READ_TIMEOUT = 5.0
"""Seconds a client has to send its whole request."""
MAX_CONNECTIONS = 64
"""Open control connections at once; more are closed at accept."""

_MUTATING = frozenset({"POST", "PUT", "DELETE"})
_FAULT_FIELDS = frozenset(f.name for f in dataclasses.fields(ProxyFaults))


class _HTTPError(Exception):
    """An answer other than 200, with its JSON body."""

    def __init__(
        self,
        status: HTTPStatus,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": message, **extra}
        self.headers = headers or {}


@dataclasses.dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def _hostport(address: tuple[str, int]) -> str:
    host, port = address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def proxy_view(proxy: ChaosProxy) -> dict[str, Any]:
    """What the endpoint shows of one proxy (plain JSON types)."""
    described = proxy.describe()
    return {
        "name": proxy.name,
        "listen": _hostport(described["listen"]),
        "upstream": _hostport(proxy.upstream),
        "faults": dataclasses.asdict(proxy.faults),
        "stats": dataclasses.asdict(proxy.stats()),
    }


class ControlServer:
    """Serve chaos proxies' faults and stats over HTTP/JSON on loopback.

    Run it on the event loop of the proxies it serves (``async with ControlServer(...)``, or
    ``ProxyThread.serve_control`` for proxies run in a thread). With a ``token``, the routes
    that change faults need ``Authorization: Bearer <token>``; reads never do.
    """

    def __init__(
        self,
        proxies: Iterable[ChaosProxy] = (),
        *,
        listen: tuple[str, int] = ("127.0.0.1", DEFAULT_CONTROL_PORT),
        token: str | None = None,
        read_timeout: float = READ_TIMEOUT,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self._listen = _check_listen(listen)
        if token is not None and (not isinstance(token, str) or not token):
            raise ConfigError("token", f"must be a non-empty string or None, got {token!r}")
        self._token = None if token is None else token.encode()
        positive("read_timeout", read_timeout)
        whole("max_body", max_body)
        self.read_timeout = read_timeout
        self.max_body = max_body
        self._proxies: dict[str, ChaosProxy] = {}
        for proxy in proxies:
            self.add(proxy)
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    # -- proxies --------------------------------------------------------------------------

    def add(self, proxy: ChaosProxy) -> None:
        """Serve ``proxy`` under its name (names are unique per server)."""
        if not isinstance(proxy, ChaosProxy):
            raise ConfigError("proxies", f"must be ChaosProxy instances, got {proxy!r}")
        if proxy.name in self._proxies:
            raise ConfigError(
                "name", f"a proxy named {proxy.name!r} is already served; give each a name="
            )
        self._proxies[proxy.name] = proxy

    def remove(self, name: str) -> None:
        """Stop serving the proxy called ``name`` (it keeps running)."""
        self._proxies.pop(name, None)

    @property
    def proxies(self) -> dict[str, ChaosProxy]:
        """The proxies served, by name (a copy)."""
        return dict(self._proxies)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) it listens on (the real port when 0 was asked)."""
        if self._address is None:
            raise RuntimeError("control server is not started")
        return self._address

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8474``."""
        return f"http://{_hostport(self.address)}"

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("control server is already started")
        host, port = self._listen
        self._server = await asyncio.start_server(self._handle, host, port, limit=MAX_HEADER_BYTES)
        self._address = self._server.sockets[0].getsockname()[:2]

    async def aclose(self) -> None:
        """Stop listening and drop open control connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._handlers:
            await asyncio.wait(list(self._handlers))
        await server.wait_closed()

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        where = _hostport(self._address or self._listen)
        return f"ControlServer({where}, proxies={sorted(self._proxies)})"

    # -- HTTP -----------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._handlers) >= MAX_CONNECTIONS:
            writer.transport.abort()
            return
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            try:
                request = await asyncio.wait_for(self._read(reader), self.read_timeout)
                status, body, headers = HTTPStatus.OK, self._route(request), {}
            except _HTTPError as exc:
                status, body, headers = exc.status, exc.body, exc.headers
            except TimeoutError:
                status, body, headers = (
                    HTTPStatus.REQUEST_TIMEOUT,
                    {"error": f"the request did not arrive within {self.read_timeout:g} s"},
                    {},
                )
            payload = json.dumps(body, indent=2).encode() + b"\n"
            head = [f"HTTP/1.1 {status.value} {status.phrase}"]
            head += [f"{key}: {value}" for key, value in headers.items()]
            head += [
                "Content-Type: application/json",
                f"Content-Length: {len(payload)}",
                "Connection: close",
            ]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
            await writer.drain()
        except OSError:
            pass  # the client went away: nothing to answer
        finally:
            writer.close()
            self._writers.discard(writer)
            self._handlers.discard(task)

    async def _read(self, reader: asyncio.StreamReader) -> _Request:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _HTTPError(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"request line and headers are limited to {MAX_HEADER_BYTES} bytes",
            ) from None
        except asyncio.IncompleteReadError:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, "incomplete request") from None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1") or not parts[0].isalpha():
            raise _HTTPError(HTTPStatus.BAD_REQUEST, f"bad request line {lines[0][:200]!r}")
        method, target, _ = parts
        if not target.startswith("/"):
            raise _HTTPError(HTTPStatus.BAD_REQUEST, f"bad request target {target[:200]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise _HTTPError(HTTPStatus.BAD_REQUEST, f"bad header line {line[:200]!r}")
            headers[name.lower()] = value.strip()
        if "transfer-encoding" in headers:
            raise _HTTPError(
                HTTPStatus.BAD_REQUEST, "chunked bodies are not supported: send Content-Length"
            )
        length_text = headers.get("content-length", "0")
        if not (length_text.isascii() and length_text.isdigit()) or len(length_text) > 19:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length_text[:50]!r}")
        length = int(length_text)
        if length > self.max_body:
            raise _HTTPError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body is limited to {self.max_body} bytes, got {length}",
            )
        try:
            body = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise _HTTPError(
                HTTPStatus.BAD_REQUEST, "the body is shorter than its length"
            ) from None
        path = urllib.parse.unquote(target.partition("?")[0])
        return _Request(method.upper(), path, headers, body)

    def _route(self, request: _Request) -> dict[str, Any]:
        segments = [part for part in request.path.split("/") if part]
        if segments == ["health"]:
            self._allow(request, "GET")
            return {"status": "ok", "proxies": len(self._proxies)}
        if segments == ["proxies"]:
            self._allow(request, "GET")
            return {"proxies": {name: proxy_view(p) for name, p in self._proxies.items()}}
        if len(segments) == 2 and segments[0] == "proxies":
            self._allow(request, "GET")
            return proxy_view(self._proxy(segments[1]))
        if len(segments) == 3 and segments[0] == "proxies" and segments[2] == "faults":
            self._allow(request, "GET", "POST", "PUT", "DELETE")
            proxy = self._proxy(segments[1])
            if request.method in _MUTATING:
                self._authorize(request)
                self._change(proxy, request)
            return dataclasses.asdict(proxy.faults)
        raise _HTTPError(HTTPStatus.NOT_FOUND, f"no route {request.path[:200]!r}")

    @staticmethod
    def _allow(request: _Request, *methods: str) -> None:
        if request.method not in methods:
            raise _HTTPError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{request.method} is not allowed here; allowed: {', '.join(methods)}",
                headers={"Allow": ", ".join(methods)},
            )

    def _proxy(self, name: str) -> ChaosProxy:
        proxy = self._proxies.get(name)
        if proxy is None:
            raise _HTTPError(
                HTTPStatus.NOT_FOUND,
                f"no proxy named {name[:200]!r}",
                proxies=sorted(self._proxies),
            )
        return proxy

    def _authorize(self, request: _Request) -> None:
        if self._token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self._token
        ):
            raise _HTTPError(
                HTTPStatus.UNAUTHORIZED,
                "changing faults needs Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @staticmethod
    def _change(proxy: ChaosProxy, request: _Request) -> None:
        if request.method == "DELETE":
            proxy.clear()
            return
        try:
            faults = json.loads(request.body)
        except (ValueError, RecursionError) as exc:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {exc}") from None
        if not isinstance(faults, dict):
            raise _HTTPError(
                HTTPStatus.BAD_REQUEST,
                f"the body must be a JSON object of faults, got {type(faults).__name__}",
            )
        unknown = sorted(set(faults) - _FAULT_FIELDS)
        if unknown:
            raise _HTTPError(
                HTTPStatus.BAD_REQUEST,
                f"{unknown[0]!r} is not a proxy fault",
                field=unknown[0],
                faults=sorted(_FAULT_FIELDS),
            )
        if request.method == "PUT":
            faults = {**dataclasses.asdict(ProxyFaults()), **faults}
        try:
            proxy.set(**faults)  # validated as ProxyFaults validates; nothing changes on error
        except ConfigError as exc:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, str(exc), field=exc.field) from None
        except OSError as exc:  # listening again after ``refuse``: the port was taken meanwhile
            raise _HTTPError(HTTPStatus.CONFLICT, f"could not apply the faults: {exc}") from None
