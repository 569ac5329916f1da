"""Seed 004's heartbeat payload: this machine's CPU and RAM use (``psutil``, an extra)."""

from __future__ import annotations

import time
from typing import Any

__all__ = ("system_heartbeat",)


def system_heartbeat() -> dict[str, Any]:
    """``{"type": "heartbeat", "cpu_usage": %, "ram_usage": %, "timestamp": ms}``.

    Pass the function itself: ``Supervisor(..., heartbeat=system_heartbeat)``. CPU use is
    measured since the previous call (the first reading is psutil's since-boot figure).
    Needs ``pip install 'stalwart[system]'``.
    """
    try:
        import psutil
    except ImportError as exc:
        raise ImportError(
            f"system_heartbeat needs psutil: pip install 'stalwart[system]' ({exc})"
        ) from exc
    return {
        "type": "heartbeat",
        "cpu_usage": psutil.cpu_percent(interval=None),
        "ram_usage": psutil.virtual_memory().percent,
        "timestamp": int(time.time() * 1000),
    }
