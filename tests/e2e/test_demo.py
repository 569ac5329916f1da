"""`stalwart demo` end to end: a real upstream on loopback behind two real chaos proxies (one
per side), real httpx workers, the real CLI.

The demo runs once (8 s) through ``stalwart.cli.main``; the tests read its JSON summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from stalwart.cli import main
from stalwart.cli._callers import make_client
from stalwart.cli._plan import Phase
from stalwart.cli._upstream import Proxies, Upstream

DURATION = 8
PHASES = ["healthy", "blackhole", "reset", "recovery"]
FAILING = ("blackhole", "reset")
TOLERANCE = 0.25  # scheduling slack on top of call_timeout, as the acceptance rule states


@dataclass(frozen=True)
class DemoRun:
    status: int
    summary: dict[str, Any]
    leaks: list[str]


@pytest.fixture(scope="module")
def run() -> DemoRun:
    out = io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.redirect_stdout(out):
            status = main(["demo", "--duration", str(DURATION), "--json"])
        gc.collect()  # unclosed transports and sockets warn when collected
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    return DemoRun(status, json.loads(out.getvalue()), leaks)


def test_the_verdict_holds_and_the_exit_status_says_so(run: DemoRun) -> None:
    verdict = run.summary["verdict"]
    assert verdict["holds"], verdict["checks"]
    assert run.status == 0
    assert not run.summary["interrupted"]


def test_protected_side_sends_at_most_threshold_plus_probes_per_recovery_period(
    run: DemoRun,
) -> None:
    settings = run.summary["protected"]["breaker_settings"]
    bound = settings["failure_threshold"] + settings["half_open_max_calls"]
    verdict = run.summary["verdict"]
    assert verdict["per_period_bound"] == bound
    periods = verdict["periods"]
    assert periods, "the breaker never opened during the outage"
    assert all(p["requests"] <= bound for p in periods), periods
    # The stretch before the first opening is bounded by the workers already in flight.
    before = verdict["before_first_opening"]
    workers = run.summary["workers_per_side"]
    assert before["requests"] <= settings["failure_threshold"] + workers - 1
    # Every protected request sent into the faults is accounted to exactly one period.
    sent = run.summary["protected"]["reached_dead_upstream"]
    assert sent == before["requests"] + sum(p["requests"] for p in periods)
    requests = run.summary["protected"]["requests_by_phase"]
    assert sent == sum(requests[phase] for phase in FAILING)


def test_no_protected_call_waits_past_its_timeout(run: DemoRun) -> None:
    protected = run.summary["protected"]
    limit = protected["breaker_settings"]["call_timeout_s"] + TOLERANCE
    assert protected["worst_wait_s"] <= limit
    assert run.summary["verdict"]["worst_wait_s"] == protected["worst_wait_s"]


def test_unprotected_callers_wait_much_longer(run: DemoRun) -> None:
    protected, unprotected = run.summary["protected"], run.summary["unprotected"]
    assert unprotected["worst_wait_s"] >= 0.95 * unprotected["http_timeout_s"]
    assert unprotected["worst_wait_s"] >= 2 * protected["worst_wait_s"]
    assert unprotected["failed_time_s"] > 2 * protected["failed_time_s"]


def test_breaker_opens_in_the_blackhole_stays_open_and_closes_after_recovery(
    run: DemoRun,
) -> None:
    breaker = run.summary["breaker"]
    transitions = breaker["transitions"]
    assert transitions[0]["new"] == "open"
    assert transitions[0]["phase"] == "blackhole", transitions
    # Between the first opening and the clearing of the faults, no probe succeeds.
    assert not [t for t in transitions if t["new"] == "closed" and t["phase"] in FAILING]
    assert transitions[-1]["new"] == "closed"
    assert transitions[-1]["phase"] == "recovery"
    assert breaker["final_state"] == "closed"
    assert run.summary["verdict"]["closed_after_outage_s"] is not None


def test_json_names_the_phases_and_their_faults_in_order(run: DemoRun) -> None:
    phases = run.summary["phases"]
    assert [p["name"] for p in phases] == PHASES
    assert [p["fault"] for p in phases] == ["none", "blackhole", "reset", "recovered"]
    began = [p["began_at_s"] for p in phases]
    assert began == sorted(began)
    for phase in phases:
        # Switched when planned, give or take the event loop's scheduling.
        assert abs(phase["began_at_s"] - phase["planned_s"][0]) <= TOLERANCE
    assert list(run.summary["phases_s"]) == PHASES


def test_each_sides_proxy_counts_every_request_that_side_sent(run: DemoRun) -> None:
    for side in ("protected", "unprotected"):
        figures = run.summary[side]
        proxy, requests = figures["proxy"], figures["requests_by_phase"]
        assert sum(requests.values()) == proxy["total"]
        # One connection per call that reached for the upstream (rejections never connect).
        reached = figures["answered"] + figures["failed"]
        assert reached <= proxy["total"] <= reached + figures["in_flight_at_end"], figures
        assert proxy["bytes_dropped"] > 0  # the blackhole swallowed requests


def test_both_sides_sent_requests_in_every_phase_and_the_upstream_saw_none_in_the_resets(
    run: DemoRun,
) -> None:
    workers = run.summary["workers_per_side"]
    for side in ("protected", "unprotected"):
        figures = run.summary[side]
        assert all(figures["requests_by_phase"][phase] > 0 for phase in PHASES), figures
        saw = figures["upstream_saw_by_phase"]
        assert saw["healthy"] > 0
        assert saw["recovery"] > 0
        # At most the requests already forwarded when the blackhole began reach it late.
        assert saw["blackhole"] <= workers
        assert saw["reset"] == 0


def test_resets_fail_fast_and_the_breaker_keeps_them_off_the_upstream(run: DemoRun) -> None:
    protected, unprotected = run.summary["protected"], run.summary["unprotected"]
    timeout = protected["breaker_settings"]["call_timeout_s"]
    for figures in (protected, unprotected):
        reset = figures["phases"]["reset"]
        assert reset["failed"] > 0
        assert reset["answered"] == 0
        assert reset["worst_wait_s"] < timeout  # a reset never waits for a timeout
    assert protected["phases"]["reset"]["rejected"] > 0
    assert protected["requests_by_phase"]["reset"] < unprotected["requests_by_phase"]["reset"]


def test_blackholed_callers_wait_for_their_timeouts(run: DemoRun) -> None:
    protected, unprotected = run.summary["protected"], run.summary["unprotected"]
    blackhole = protected["phases"]["blackhole"]
    assert blackhole["answered"] == 0
    assert blackhole["worst_wait_s"] >= 0.95 * protected["breaker_settings"]["call_timeout_s"]
    assert (
        unprotected["phases"]["blackhole"]["worst_wait_s"] >= 0.95 * unprotected["http_timeout_s"]
    )


def test_a_call_whose_answer_the_blackhole_swallows_waits_for_its_timeout() -> None:
    """The request went through before the blackhole, the answer comes after: the caller must
    hit its timeout, as for any blackholed call, not fail at once on the upstream's hang-up."""

    async def main() -> None:
        origin = time.monotonic()
        async with (
            make_client(0.5, 1) as client,
            Upstream(0.2, origin) as upstream,
            Proxies(upstream.address, ["protected"]) as proxies,
        ):
            call = asyncio.create_task(client.get(proxies.url("protected")))
            for _ in range(100):  # 1 s at most
                if upstream.seen:
                    break
                await asyncio.sleep(0.01)
            assert upstream.seen, "the request never reached the upstream"
            proxies.switch(Phase.BLACKHOLE, time.monotonic() - origin)
            with pytest.raises(httpx.ReadTimeout):
                await call

    asyncio.run(asyncio.wait_for(main(), 10))


def test_the_run_leaks_no_sockets_or_transports(run: DemoRun) -> None:
    assert run.leaks == []


def test_duration_below_the_minimum_is_a_usage_error_naming_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--duration", "2"])
    assert exit_info.value.code == 2
    assert "--duration" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["demo", "--workers", "0"], ["demo", "--bogus"], []])
def test_bad_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert "usage: stalwart" in capsys.readouterr().err


def test_module_entry_point_prints_the_version_without_loading_the_cli_extra() -> None:
    code = (
        "import runpy, sys\n"
        "sys.argv = ['stalwart', '--version']\n"
        "try:\n"
        "    runpy.run_module('stalwart.cli', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "loaded = sorted({'rich', 'httpx'} & sys.modules.keys())\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("stalwart ")
