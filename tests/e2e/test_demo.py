"""`stalwart demo` end to end: a real upstream on loopback behind two real chaos proxies (one
per side), real httpx workers, the real CLI, and the ops app served by uvicorn meanwhile.

The demo runs once (8 s) through ``stalwart.cli.main``; the tests read its JSON summary, and
what a client polling the served ``/health`` and ``/breakers/{name}`` from outside saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import socket
import subprocess
import sys
import threading
import time
import warnings
import webbrowser
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from stalwart import CircuitBreaker
from stalwart.cli import main
from stalwart.cli._callers import make_client
from stalwart.cli._demo import _ops_server
from stalwart.cli._ops import INSTALL_HINT, OpsServer, OpsUnavailable
from stalwart.cli._plan import DemoPlan, Phase
from stalwart.cli._upstream import Proxies, Upstream
from stalwart.cli._view import Status

DURATION = 8
PHASES = ["healthy", "blackhole", "reset", "recovery"]
FAILING = ("blackhole", "reset")
TOLERANCE = 0.25  # scheduling slack on top of call_timeout, as the acceptance rule states


@dataclass(frozen=True)
class Seen:
    """One poll of the served app from outside: /health's code and status, the breaker's."""

    at: float
    health: int | None
    status: str | None
    breaker: str | None


@dataclass(frozen=True)
class DemoRun:
    status: int
    summary: dict[str, Any]
    leaks: list[str]
    port: int
    seen: list[Seen] = field(default_factory=list)
    progress: list[str] = field(default_factory=list)
    """The lines the demo printed while it ran (stderr, as --json puts them there)."""
    opened: list[str] = field(default_factory=list)
    """The URLs the demo asked the desktop's browser to open."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _poll(port: int, stop: threading.Event, seen: list[Seen]) -> None:
    """GET /health and /breakers/demo-upstream every 0.2 s, as a person's browser would."""
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(timeout=2, trust_env=False) as client:
        for _ in range(int(3 * DURATION / 0.2)):  # bounded: well past the run's length
            if stop.wait(0.2):
                return
            try:
                health = client.get(f"{base}/health")
                breaker = client.get(f"{base}/breakers/demo-upstream")
            except httpx.TransportError:
                continue  # not serving yet, or no longer
            seen.append(
                Seen(
                    time.monotonic(),
                    health.status_code,
                    health.json().get("status"),
                    breaker.json().get("state"),
                )
            )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    out, err = io.StringIO(), io.StringIO()
    port = _free_port()
    seen: list[Seen] = []
    stop = threading.Event()
    poller = threading.Thread(target=_poll, args=(port, stop, seen), daemon=True)
    # The "desktop browser" --open starts: a real program (webbrowser's GenericBrowser)
    # that writes down the URL it was given.
    opened = tmp_path_factory.mktemp("browser") / "opened.txt"
    record = f"import sys; open({str(opened)!r}, 'a').write(sys.argv[1] + '\\n')"
    webbrowser.register(
        "stalwart-test", None, webbrowser.GenericBrowser([sys.executable, "-c", record, "%s"]),
        preferred=True,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        poller.start()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                args = ["demo", "--duration", str(DURATION), "--json", "--ops-port", str(port),
                        "--open"]  # fmt: skip
                status = main(args)
        finally:
            stop.set()
            poller.join(10)
        gc.collect()  # unclosed transports and sockets warn when collected
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    urls = opened.read_text().split() if opened.exists() else []
    progress = err.getvalue().splitlines()
    return DemoRun(status, json.loads(out.getvalue()), leaks, port, seen, progress, urls)


def test_the_dashboard_url_is_printed_and_opened_as_the_outage_begins(run: DemoRun) -> None:
    dashboard = f"http://127.0.0.1:{run.port}/dashboard"
    line = f"the outage is on: watch it live at {dashboard}"
    assert line in run.progress
    where = run.progress.index(line)
    assert "blackhole:" in run.progress[where - 1]  # right after the outage began
    assert run.opened == [dashboard]


def test_the_view_says_what_a_polling_page_would_do_and_why(run: DemoRun) -> None:
    paces = [line.split("] ", 1)[1] for line in run.progress if "a page polling it" in line]
    assert paces[0] == "a page polling it waits 5 s: demo-upstream is available"
    assert any(
        p.startswith("a page polling it waits 60 s: demo-upstream is unavailable") for p in paces
    )
    assert "a page polling it waits 15 s: demo-upstream is recovering; probing" in paces
    assert paces[-1] == "a page polling it waits 5 s: demo-upstream is available"


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


def test_the_ops_app_is_served_on_the_port_asked_for_with_every_route(run: DemoRun) -> None:
    ops = run.summary["ops"]
    assert ops["served"] is True
    assert ops["url"] == f"http://127.0.0.1:{run.port}"
    assert set(ops["routes"]) == {"health", "breakers", "metrics", "events", "dashboard"}
    assert ops["breaker_url"] == f"http://127.0.0.1:{run.port}/breakers/demo-upstream"


def test_the_served_health_said_unhealthy_during_the_outage_and_healthy_after_it(
    run: DemoRun,
) -> None:
    ops = run.summary["ops"]
    said = {phase: (r["http_status"], r["status"]) for phase, r in ops["health_by_phase"].items()}
    assert said == {
        "healthy": (200, "healthy"),
        "blackhole": (503, "unhealthy"),
        "reset": (503, "unhealthy"),
        "recovery": (200, "healthy"),
    }
    assert ops["unhealthy_in_outage_and_healthy_after"] is True
    # The registry's own changes: unhealthy first during the blackhole, healthy again only
    # once the faults were cleared.
    changes = [(c["new"], c["phase"]) for c in ops["health_changes"]]
    unhealthy = [phase for new, phase in changes if new == "unhealthy"]
    assert unhealthy[0] == "blackhole", changes
    assert changes[-1] == ("healthy", "recovery"), changes
    assert not [c for c in changes if c[0] == "healthy" and c[1] in FAILING], changes


def test_the_served_breakers_showed_the_breaker_open_with_its_poll_hint(run: DemoRun) -> None:
    readings = run.summary["ops"]["readings"]
    (opened,) = [r for r in readings if r["moment"] == "opened"]
    assert opened["phase"] == "blackhole"
    assert opened["breaker"]["state"] == "open"
    assert opened["breaker"]["available"] is False
    assert opened["breaker"]["poll_interval_s"] > 5.0  # slower than while closed
    ends = {r["phase"]: r["breaker"]["state"] for r in readings if r["moment"] == "end"}
    assert ends["healthy"] == ends["recovery"] == "closed"
    assert ends["reset"] in ("open", "half_open")


def test_a_client_polling_the_served_urls_saw_health_fail_and_recover_and_the_breaker_open(
    run: DemoRun,
) -> None:
    seen = run.seen
    assert len(seen) >= DURATION * 2, "the served app hardly answered"
    codes = [s.health for s in seen]
    first_503 = codes.index(503)
    assert first_503 > 0
    before = [s.status for s in seen[:first_503] if s.health == 200]
    # Healthy before the outage. "degraded" is allowed too: the first run of the check may
    # not have completed yet ("not checked yet"), or a check under way in a loaded machine
    # may be slow; neither is a 503.
    assert "healthy" in before
    assert set(before) <= {"healthy", "degraded"}, before
    assert seen[-1].health == 200
    assert seen[-1].status == "healthy"
    assert seen[-1].breaker == "closed"
    # While /health said unhealthy, /breakers showed the breaker open at least once.
    assert any(s.breaker == "open" for s in seen if s.health == 503)
    # Unhealthy for a stretch, healthy after: the 503s sit between the first and last 200s.
    last_503 = len(codes) - 1 - codes[::-1].index(503)
    assert all(code == 200 for code in codes[last_503 + 1 :])
    outage = run.summary["verdict"]["outage_s"]
    assert seen[last_503].at - seen[first_503].at >= 0.5 * (outage[1] - outage[0])


def test_the_health_check_s_requests_count_against_neither_side(run: DemoRun) -> None:
    """It has a proxy of its own: the sides' proxies count only their callers' requests."""
    for side in ("protected", "unprotected"):
        figures = run.summary[side]
        reached = figures["answered"] + figures["failed"]
        assert figures["proxy"]["total"] <= reached + figures["in_flight_at_end"]


def test_without_uvicorn_the_demo_goes_on_without_the_ops_app_and_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn raises
    events: list[str] = []

    async def main() -> tuple[object, str | None]:
        breaker = CircuitBreaker("demo-upstream")
        async with _ops_server(breaker, DemoPlan.for_run(8), 0, _Events(events)) as got:
            return got

    ops, why = asyncio.run(asyncio.wait_for(main(), 10))
    assert ops is None
    assert why is not None
    assert INSTALL_HINT in why
    assert events == [why]


def test_a_taken_ops_port_is_reported_and_the_server_cleaned_up() -> None:
    async def main() -> str:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            ops = OpsServer(CircuitBreaker("demo-upstream"), DemoPlan.for_run(8), port)
            with pytest.raises(OpsUnavailable) as info:
                await ops.start()
            assert not ops._thread.is_alive()
            return str(info.value)

    before = threading.active_count()
    message = asyncio.run(asyncio.wait_for(main(), 20))
    assert "could not serve the ops app on 127.0.0.1:" in message
    assert "--ops-port 0" in message
    assert threading.active_count() == before


class _Events:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def event(self, text: str) -> None:
        self.lines.append(text)

    def update(self, status: Status) -> None:
        pass


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
