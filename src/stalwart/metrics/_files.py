"""Alerting as data: Prometheus rules and a Grafana dashboard over stalwart's metric names."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ("FILES", "asset")

FILES = ("alerts.yml", "grafana-dashboard.json")
"""``alerts.yml``: Prometheus alerting rules (seed 003's list); ``grafana-dashboard.json``:
a Grafana dashboard (breakers, checks, calls, latency, retries)."""


def asset(name: str) -> Path:
    """Where a shipped file is on disk: ``asset("alerts.yml")``, to copy or load it."""
    if name not in FILES:
        raise ValueError(f"no file named {name!r}; there are {', '.join(FILES)}")
    return Path(str(resources.files(__package__).joinpath("files", name)))
