"""The shared table of poller decisions (cases.json), read by the Python and the browser tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stalwart.poller import PollAnswer, PollSettings

NOW = 1_700_000_000.0
"""The Unix time every case is decided at (Retry-After dates are relative to it)."""

CASES: list[dict[str, Any]] = json.loads((Path(__file__).parent / "cases.json").read_text())[
    "cases"
]
IDS = [case["name"] for case in CASES]


def answer_of(case: dict[str, Any]) -> PollAnswer:
    raw = case["answer"]
    return PollAnswer(
        raw["status"], body=raw.get("body"), headers=raw.get("headers", {}), error=raw.get("error")
    )


def settings_of(case: dict[str, Any]) -> PollSettings:
    return PollSettings(**case.get("settings", {}))


def js_settings(case: dict[str, Any]) -> dict[str, Any]:
    """The same settings under stalwart-poller.js's names (camelCase)."""
    settings = settings_of(case)
    return {
        "interval": settings.interval,
        "errorInterval": settings.error_interval,
        "minInterval": settings.min_interval,
        "maxInterval": settings.max_interval,
        "timeout": settings.timeout,
        "jitter": settings.jitter,
    }
