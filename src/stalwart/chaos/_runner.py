"""Chaos proxies for synchronous code: run them on a private event loop in a daemon thread.

``ProxyThread`` owns one event loop in one daemon thread and runs any number of
:class:`ChaosProxy` instances (and optionally a :class:`ControlServer`) on it. ``add()`` returns
a :class:`ThreadedProxy`, a handle whose methods may be called from any thread: each runs on
the loop and returns once the loop has done it, so a fault switched from a test is in force
for the very next byte. ``close()`` closes every connection and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from .._errors import ConfigError
from .._validate import positive
from ._control import DEFAULT_CONTROL_PORT, ControlServer
from ._proxy import DEFAULT_MAX_BUFFER, ChaosProxy, ProxyFaults, ProxyStats, _check_listen

__all__ = ("ProxyThread", "ThreadedProxy", "parse_address")

T = TypeVar("T")

CALL_TIMEOUT = 10.0
"""Seconds a call from another thread waits for the loop before giving up."""
JOIN_TIMEOUT = 10.0
"""Seconds ``close()`` waits for the thread to end."""


def parse_address(text: str, *, field: str, loopback: bool = False) -> tuple[str, int]:
    """``"127.0.0.1:5432"`` or ``"[::1]:5432"`` as ``(host, port)``; ConfigError if not."""
    if not isinstance(text, str):
        raise ConfigError(field, f"must be 'HOST:PORT', got {text!r}")
    host, colon, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if (
        not (colon and host and port_text.isascii() and port_text.isdigit())
        or int(port_text) > 65535
    ):
        raise ConfigError(field, f"must be 'HOST:PORT' with a port in 0..65535, got {text!r}")
    if loopback:
        try:
            _check_listen((host, int(port_text)))
        except ConfigError as exc:
            raise ConfigError(field, exc.problem) from None
    return host, int(port_text)


class ThreadedProxy:
    """A handle on a :class:`ChaosProxy` running in a :class:`ProxyThread`; thread-safe."""

    __slots__ = ("_proxy", "_runner", "address", "name", "upstream")

    def __init__(self, runner: ProxyThread, proxy: ChaosProxy) -> None:
        self._runner = runner
        self._proxy = proxy
        self.name = proxy.name
        self.upstream = proxy.upstream
        self.address = proxy.address
        """The (host, port) clients connect to instead of the upstream."""

    @property
    def faults(self) -> ProxyFaults:
        """The faults in force now."""
        return self._runner.call(lambda: self._proxy.faults)

    def set(self, **faults: Any) -> None:
        """Change the given faults (the others stay); in force when this returns."""
        self._runner.call(lambda: self._proxy.set(**faults))

    def clear(self) -> None:
        """Remove every fault."""
        self._runner.call(self._proxy.clear)

    @contextlib.contextmanager
    def fault(self, **faults: Any) -> Iterator[ProxyFaults]:
        """Add ``faults`` for the block, then restore the settings from before it."""

        def swap() -> tuple[ProxyFaults, ProxyFaults]:
            before = self._proxy.faults
            self._proxy.set(**faults)
            return before, self._proxy.faults

        before, now = self._runner.call(swap)
        try:
            yield now
        finally:
            self._runner.call(lambda: self._proxy.set(**dataclasses.asdict(before)))

    def stats(self) -> ProxyStats:
        return self._runner.call(self._proxy.stats)

    def describe(self) -> dict[str, Any]:
        return self._runner.call(self._proxy.describe)

    def close(self) -> None:
        """Stop this proxy and drop its connections (the thread keeps running)."""
        self._runner._remove(self)

    def __repr__(self) -> str:
        return f"ThreadedProxy({self.name!r}, {self.address} -> {self.upstream})"


class ProxyThread:
    """Run chaos proxies on a private event loop in a daemon thread.

    ``with ProxyThread() as chaos: db = chaos.add(("127.0.0.1", 5432))``; the thread starts
    at ``__enter__`` (or the first ``add``) and ``close()`` stops every proxy and joins it.
    """

    def __init__(self, *, name: str = "stalwart-chaos", call_timeout: float = CALL_TIMEOUT) -> None:
        positive("call_timeout", call_timeout)
        self.name = name
        self.call_timeout = call_timeout
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._closed = False
        self._proxies: dict[str, ThreadedProxy] = {}
        self._starting: set[str] = set()
        """Names of proxies being started on the loop (taken, not in ``_proxies`` yet)."""
        self._controls: list[ControlServer] = []
        self._ready = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> ProxyThread:
        """Start the thread and its loop (once); returns self."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"proxy thread {self.name!r} is closed")
            if self._thread is None:
                self._ready = threading.Event()
                self._thread = threading.Thread(
                    target=asyncio.run, args=(self._main(self._ready),), name=self.name, daemon=True
                )
                self._thread.start()
            ready = self._ready
        if not ready.wait(self.call_timeout):
            raise RuntimeError(f"proxy thread {self.name!r} did not start")
        return self

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        ready.set()
        await self._stop.wait()

    def close(self, timeout: float = JOIN_TIMEOUT) -> None:
        """Close every proxy (and control server), drop their connections, join the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or loop is None or stop is None:
            return
        try:
            self._submit(self._shutdown())
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"proxy thread {self.name!r} did not stop within {timeout:g} s")

    async def _shutdown(self) -> None:
        controls, self._controls = self._controls, []
        proxies, self._proxies = list(self._proxies.values()), {}
        for control in controls:
            await control.aclose()
        for handle in proxies:
            await handle._proxy.aclose()

    def __enter__(self) -> ProxyThread:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- proxies --------------------------------------------------------------------------

    def add(
        self,
        upstream: tuple[str, int],
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        name: str | None = None,
        seed: int | None = None,
        max_buffer: int = DEFAULT_MAX_BUFFER,
    ) -> ThreadedProxy:
        """Start a :class:`ChaosProxy` in front of ``upstream`` on this thread's loop."""
        self.start()

        async def launch() -> ThreadedProxy:
            proxy = ChaosProxy(
                upstream,
                listen=listen,
                name=self._free_name() if name is None else name,
                seed=seed,
                max_buffer=max_buffer,
            )
            if proxy.name in self._proxies or proxy.name in self._starting:
                raise ConfigError("name", f"a proxy named {proxy.name!r} already runs here")
            # The name is taken before the await: a launch from another thread meanwhile
            # must pick another, or one proxy would be lost (never closed).
            self._starting.add(proxy.name)
            try:
                await proxy.start()
            finally:
                self._starting.discard(proxy.name)
            handle = ThreadedProxy(self, proxy)
            self._proxies[proxy.name] = handle
            for control in self._controls:
                control.add(proxy)
            return handle

        return self._submit(launch())

    def _free_name(self) -> str:
        name, number = "chaos_proxy", 1
        while name in self._proxies or name in self._starting:
            number += 1
            name = f"chaos_proxy-{number}"
        return name

    def _remove(self, handle: ThreadedProxy) -> None:
        async def remove() -> None:
            if self._proxies.get(handle.name) is not handle:
                return  # closed already
            del self._proxies[handle.name]
            for control in self._controls:
                control.remove(handle.name)
            await handle._proxy.aclose()

        self._submit(remove())

    @property
    def proxies(self) -> dict[str, ThreadedProxy]:
        """The proxies running now, by name (a copy)."""
        return self.call(lambda: dict(self._proxies)) if self._running() else {}

    def serve_control(
        self,
        listen: tuple[str, int] = ("127.0.0.1", DEFAULT_CONTROL_PORT),
        *,
        token: str | None = None,
    ) -> ControlServer:
        """Serve this thread's proxies (those added later too) over HTTP/JSON.

        Returns the running :class:`ControlServer`: read its ``url`` and ``address``; it
        is closed with the thread.
        """
        self.start()

        async def launch() -> ControlServer:
            control = ControlServer(
                [handle._proxy for handle in self._proxies.values()], listen=listen, token=token
            )
            await control.start()
            self._controls.append(control)
            return control

        return self._submit(launch())

    # -- crossing threads -----------------------------------------------------------------

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the loop and return its result (or raise its exception)."""
        if self._in_loop_thread():
            return fn()

        async def run() -> T:
            return fn()

        return self._submit(run())

    def _in_loop_thread(self) -> bool:
        thread = self._thread
        return thread is not None and thread.ident == threading.get_ident()

    def _running(self) -> bool:
        loop, thread = self._loop, self._thread
        return (
            loop is not None and not loop.is_closed() and thread is not None and thread.is_alive()
        )

    def _submit(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._in_loop_thread():
            coro.close()
            raise RuntimeError(
                "this would wait for the loop from the loop's own thread; "
                "use the ChaosProxy directly there"
            )
        loop = self._loop
        if loop is None or not self._running():
            coro.close()
            raise RuntimeError(f"proxy thread {self.name!r} is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(self.call_timeout)

    def __repr__(self) -> str:
        return f"ProxyThread({self.name!r}, proxies={sorted(self._proxies)})"
