"""Chaos for tests: inject faults, latency or results into calls, in process.

``ChaosFault``, ``ChaosLatency`` and ``ChaosResult`` are strategies: decorate a function
with them, or put them innermost in a ``Pipeline`` to see how the strategies around them
cope. (The TCP chaos proxy for real servers comes with the next release.)
"""

from ._inject import ChaosFault as ChaosFault
from ._inject import ChaosInjected as ChaosInjected
from ._inject import ChaosLatency as ChaosLatency
from ._inject import ChaosResult as ChaosResult

__all__ = ("ChaosFault", "ChaosInjected", "ChaosLatency", "ChaosResult")
