"""Chaos for tests: inject faults, latency or results into calls, in process.

``ChaosFault``, ``ChaosLatency`` and ``ChaosResult`` are strategies: decorate a function
with them, or put them innermost in a ``Pipeline`` to see how the strategies around them
cope. ``ChaosProxy`` is a TCP proxy on loopback to put between a client and a real server,
whose network faults (latency, blackhole, reset, refuse, bandwidth ...) switch at run time.
``ProxyThread`` runs proxies in a background thread for synchronous code and tests;
``ControlServer`` switches their faults over HTTP/JSON from another process.
"""

from ._control import ControlServer as ControlServer
from ._inject import ChaosFault as ChaosFault
from ._inject import ChaosInjected as ChaosInjected
from ._inject import ChaosLatency as ChaosLatency
from ._inject import ChaosResult as ChaosResult
from ._proxy import ChaosProxy as ChaosProxy
from ._proxy import ProxyFaults as ProxyFaults
from ._proxy import ProxyStats as ProxyStats
from ._runner import ProxyThread as ProxyThread
from ._runner import ThreadedProxy as ThreadedProxy

__all__ = (
    "ChaosFault",
    "ChaosInjected",
    "ChaosLatency",
    "ChaosProxy",
    "ChaosResult",
    "ControlServer",
    "ProxyFaults",
    "ProxyStats",
    "ProxyThread",
    "ThreadedProxy",
)
