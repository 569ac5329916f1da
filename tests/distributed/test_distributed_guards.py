"""The ASGI rate-limit guard shared through Redis: one bucket per client for every process."""

from __future__ import annotations

from typing import Any

from distributed.conftest import MakeStore
from stalwart.web import RateLimit


def scope(address: str) -> dict[str, Any]:
    return {"type": "http", "path": "/search", "headers": [], "client": (address, 50000)}


def test_two_processes_share_each_clients_bucket(make_store: MakeStore) -> None:
    first = RateLimit("3/minute", name="search", store=make_store())
    second = RateLimit("3/minute", name="search", store=make_store())
    verdicts = [g.decide(scope("10.0.0.1")) for g in (first, second, first, second)]
    assert [v.refusal is None for v in verdicts] == [True, True, True, False]
    refusal = verdicts[3].refusal
    assert refusal is not None
    assert refusal.status == 429
    assert dict(refusal.headers)["retry-after"] == "20"
    # Another client has a bucket of its own, in both processes.
    assert second.decide(scope("10.0.0.2")).refusal is None
