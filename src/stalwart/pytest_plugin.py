"""stalwart's pytest plugin: the ``chaos_proxy`` fixture.

Installed with stalwart (entry point ``pytest11``), so every test can ask for it::

    def test_survives_a_blackhole(chaos_proxy):
        db = chaos_proxy("127.0.0.1:5432")
        db.set(blackhole=True)
        ...  # point the client at db.address

This module loads in every pytest run of everyone who installs stalwart: it imports only
``pytest`` and ``typing`` here; the proxy machinery is imported when a test first uses the
fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from .chaos import ThreadedProxy

__all__ = ("ChaosProxyFactory", "chaos_proxy")


class ChaosProxyFactory(Protocol):
    """The ``chaos_proxy`` fixture: call it to start a proxy in front of ``upstream``."""

    def __call__(
        self,
        upstream: str | tuple[str, int],
        *,
        name: str | None = None,
        seed: int | None = None,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        **faults: Any,
    ) -> ThreadedProxy: ...


@pytest.fixture
def chaos_proxy() -> Iterator[ChaosProxyFactory]:
    """A factory of chaos proxies for this test, all closed when the test ends.

    ``chaos_proxy("127.0.0.1:5432")`` (or a ``(host, port)`` tuple) starts a
    :class:`~stalwart.chaos.ChaosProxy` on a free loopback port, running in a background
    thread, and returns its thread-safe handle: connect the client to ``proxy.address``,
    switch faults with ``proxy.set(...)`` / ``proxy.clear()`` / ``with proxy.fault(...)``.
    Keyword faults (``chaos_proxy(addr, latency=0.05)``) are set before it returns. Works in
    plain tests and in tests that call ``asyncio.run``.
    """
    from .chaos._runner import ProxyThread, parse_address

    runner = ProxyThread(name="stalwart-chaos-pytest")

    def make(
        upstream: str | tuple[str, int],
        *,
        name: str | None = None,
        seed: int | None = None,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        **faults: Any,
    ) -> ThreadedProxy:
        if isinstance(upstream, str):
            upstream = parse_address(upstream, field="upstream")
        proxy = runner.add(upstream, listen=listen, name=name, seed=seed)
        if faults:
            try:
                proxy.set(**faults)
            except BaseException:
                proxy.close()
                raise
        return proxy

    try:
        yield make
    finally:
        runner.close()
