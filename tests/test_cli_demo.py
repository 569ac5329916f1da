"""The demo's pure parts: the phase plan, the counters read at chosen moments, and the verdict.

The demo itself runs end to end in tests/e2e/test_demo.py; here the scenarios are written out
as the proxy's counter and the breaker's transitions would report them.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

import pytest
from rich.console import Console

from stalwart.chaos import ProxyFaults
from stalwart.cli import _demo, main
from stalwart.cli._fit import ELLIPSIS
from stalwart.cli._ops import ROUTES, Change, OpsRecord, reading_of, urls_text
from stalwart.cli._plan import MIN_DURATION, PHASES, UNPROTECTED_TIMEOUT_CAP, DemoPlan, Phase
from stalwart.cli._report import label as phase_label
from stalwart.cli._report import phase_line, summary_lines, transition_line
from stalwart.cli._stats import Outcome, SideStats, Tally, Timeline
from stalwart.cli._upstream import Proxies
from stalwart.cli._verdict import Summary, Transition, Verdict, judge, side_summary
from stalwart.cli._view import SideRow, Status, _table

PLAN = DemoPlan.for_run(8)  # healthy 0-1.2 s, blackhole 1.2-4.4, reset 4.4-5.6, recovery 5.6-8
DURATIONS = [MIN_DURATION, 6.0, 8.0, 20.0, 30.0, 600.0]


def _timeline(plan: DemoPlan = PLAN, upto: Phase = Phase.RECOVERY) -> Timeline:
    timeline = Timeline()
    for phase in PHASES[: PHASES.index(upto) + 1]:
        timeline.begin(phase, plan.phase_start(phase))
    return timeline


def _tally(accepted: Iterable[float], moments: Iterable[float]) -> Tally:
    """The counter of a proxy that accepted connections at ``accepted``, read at ``moments``."""
    times = sorted(accepted)
    tally = Tally()
    for at in moments:
        tally.mark(at, sum(1 for t in times if t <= at))
    return tally


def _moments(timeline: Timeline, transitions: Sequence[Transition], end: float) -> list[float]:
    """When the demo reads the proxy's counter: phase switches, breaker transitions, the end."""
    return [*timeline.started.values(), *(t.at for t in transitions), end]


def _t(at: float, old: str, new: str) -> Transition:
    reasons = {"open": "failure_threshold", "half_open": "recovery_timeout_elapsed"}
    return Transition(at, old, new, reasons.get(new, "probes_succeeded"))


# The breaker as the demo sees it: open 1.1 s into the blackhole, a probe hung in the blackhole
# and cut by the reset, one probe reset at once, then closed in the recovery.
RIDE_OUT = (
    _t(2.3, "closed", "open"),
    _t(3.1, "open", "half_open"),
    _t(4.4, "half_open", "open"),
    _t(5.2, "open", "half_open"),
    _t(5.21, "half_open", "open"),
    _t(6.01, "open", "half_open"),
    _t(6.02, "half_open", "closed"),
)
HEALTHY_TRAFFIC = [0.05 + 0.1 * i for i in range(12)] + [5.7 + 0.1 * i for i in range(20)]
INTO_THE_FAULTS = [1.21 + 0.02 * i for i in range(8)] + [3.11, 5.2]


def _judge(
    accepted: Iterable[float] = (*HEALTHY_TRAFFIC, *INTO_THE_FAULTS),
    transitions: Sequence[Transition] = RIDE_OUT,
    *,
    final_state: str = "closed",
    worst_wait: float = 1.004,
    timeline: Timeline | None = None,
    end: float = PLAN.duration,
) -> Verdict:
    timeline = timeline or _timeline()
    tally = _tally(accepted, _moments(timeline, transitions, end))
    return judge(PLAN, timeline, end, tally, transitions, final_state, worst_wait)


def _check(verdict: Verdict, name: str) -> bool:
    (check,) = [c for c in verdict.checks if c.name == name]
    return check.ok


# -- the plan -------------------------------------------------------------------------------


@pytest.mark.parametrize("duration", DURATIONS)
def test_phases_run_healthy_blackhole_reset_recovery_back_to_back_over_the_whole_run(
    duration: float,
) -> None:
    plan = DemoPlan.for_run(duration)
    assert [p.value for p in PHASES] == ["healthy", "blackhole", "reset", "recovery"]
    assert plan.phase_start(Phase.HEALTHY) == 0.0
    for phase, after in itertools.pairwise(PHASES):
        assert plan.phase_end(phase) == plan.phase_start(after)
        assert plan.phase_start(phase) < plan.phase_end(phase)
    assert plan.phase_end(Phase.RECOVERY) == duration
    assert plan.outage_start == plan.phase_start(Phase.BLACKHOLE)
    assert plan.outage_end == plan.phase_end(Phase.RESET) == plan.phase_start(Phase.RECOVERY)


def test_phases_scale_with_the_duration() -> None:
    short, long = DemoPlan.for_run(10), DemoPlan.for_run(40)
    for phase in PHASES:
        assert long.phase_start(phase) == pytest.approx(4 * short.phase_start(phase))
        assert long.phase_end(phase) == pytest.approx(4 * short.phase_end(phase))


def test_phase_at_switches_exactly_at_each_boundary() -> None:
    for phase in PHASES:
        start = PLAN.phase_start(phase)
        assert PLAN.phase_at(start) is phase
        if phase is not Phase.HEALTHY:
            assert PLAN.phase_at(start - 1e-9) is PHASES[PHASES.index(phase) - 1]
    assert PLAN.phase_at(PLAN.duration + 1) is Phase.RECOVERY


def test_only_the_blackhole_and_the_reset_fail_calls_each_with_its_own_proxy_fault() -> None:
    assert [p for p in PHASES if p.failing] == [Phase.BLACKHOLE, Phase.RESET]
    assert Phase.HEALTHY.proxy_faults == {"blackhole": False, "reset": False}
    assert Phase.BLACKHOLE.proxy_faults == {"blackhole": True, "reset": False}
    assert Phase.RESET.proxy_faults == {"blackhole": False, "reset": True}
    assert Phase.RECOVERY.proxy_faults == {"blackhole": False, "reset": False}
    assert [p.fault for p in PHASES] == ["none", "blackhole", "reset", "recovered"]


@pytest.mark.parametrize("duration", DURATIONS)
def test_every_duration_leaves_room_to_open_in_the_blackhole_and_close_in_the_recovery(
    duration: float,
) -> None:
    plan = DemoPlan.for_run(duration)
    blackhole = plan.phase_end(Phase.BLACKHOLE) - plan.phase_start(Phase.BLACKHOLE)
    recovery = plan.phase_end(Phase.RECOVERY) - plan.phase_start(Phase.RECOVERY)
    # Every worker's first call starts within a pause of the blackhole and times out in it.
    assert plan.call_timeout + plan.pause < blackhole
    # The unprotected callers' timeouts fire inside the blackhole too (the reset cuts the rest).
    assert plan.unprotected_timeout + plan.pause <= blackhole
    assert plan.unprotected_timeout <= UNPROTECTED_TIMEOUT_CAP
    assert plan.unprotected_timeout > plan.call_timeout
    # A probe reset just before the faults cleared: one recovery period, then the next call
    # probes and closes it; twice that, for room.
    assert 2 * (plan.recovery_timeout + plan.pause) <= recovery


def test_a_duration_below_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="duration"):
        DemoPlan.for_run(MIN_DURATION - 0.1)


# -- counters and the timeline --------------------------------------------------------------


def test_a_tally_counts_exactly_between_two_of_its_readings() -> None:
    tally = _tally([0.5, 1.0, 1.5, 2.5], [0.0, 1.0, 2.0, 3.0])
    assert tally.at(-1.0) == 0
    assert tally.at(1.0) == 2  # a connection accepted at the reading belongs before it
    assert tally.between(1.0, 2.0) == 1
    assert tally.between(0.0, 3.0) == 4
    assert tally.between(2.0, 1.0) == 0


def test_a_tally_reads_in_time_order_whatever_order_the_readings_came_in() -> None:
    tally = Tally()
    for at, value in [(2.0, 5), (1.0, 3), (3.0, 9)]:
        tally.mark(at, value)
    assert tally.between(1.0, 2.0) == 2
    assert tally.at(2.5) == 5


def test_a_phase_lasts_until_the_next_one_began_or_the_run_ended() -> None:
    timeline = _timeline(upto=Phase.RESET)
    start = PLAN.phase_start
    assert timeline.window(Phase.BLACKHOLE, 7.0) == (start(Phase.BLACKHOLE), start(Phase.RESET))
    assert timeline.window(Phase.RESET, 5.0) == (start(Phase.RESET), 5.0)
    assert timeline.window(Phase.RECOVERY, 5.0) is None
    assert timeline.phase_at(-0.1) is None
    assert timeline.phase_at(4.5) is Phase.RESET
    assert timeline.outage(5.0) == (start(Phase.BLACKHOLE), 5.0)


def test_a_run_ended_before_the_faults_has_an_empty_outage_at_its_end() -> None:
    assert _timeline(upto=Phase.HEALTHY).outage(1.0) == (1.0, 1.0)


def test_calls_count_in_the_phase_they_started_in_even_when_they_end_after_a_switch() -> None:
    stats = SideStats()
    stats.phase = Phase.BLACKHOLE
    hung = stats.begin(10.0)
    stats.phase = Phase.RESET
    cut = stats.begin(12.0)
    assert stats.worst_wait_in(Phase.BLACKHOLE, 12.0) == 2.0  # still waiting counts
    stats.end(hung, 12.5, Outcome.FAILED)
    stats.end(cut, 12.01, Outcome.FAILED)
    assert (stats.phases[Phase.BLACKHOLE].failed, stats.phases[Phase.RESET].failed) == (1, 1)
    assert stats.phases[Phase.BLACKHOLE].worst_wait == 2.5
    assert stats.phases[Phase.RESET].worst_wait == pytest.approx(0.01)
    assert stats.phases[Phase.BLACKHOLE].failed_time == 2.5
    assert stats.worst_wait(13.0) == 2.5
    assert (stats.run.failed, stats.run.worst_wait) == (2, 2.5)


def test_a_side_summary_counts_requests_at_the_proxy_per_phase_and_what_the_upstream_saw() -> None:
    timeline = _timeline()
    accepted = [*HEALTHY_TRAFFIC, *INTO_THE_FAULTS]
    tally = _tally(accepted, _moments(timeline, (), PLAN.duration))
    summary = side_summary(
        SideStats(),
        100.0,
        elapsed=PLAN.duration,
        sent=tally,
        timeline=timeline,
        upstream_saw=[0.5, 1.25, 6.0],  # 1.25: forwarded just before the blackhole began
        proxy={"total": len(accepted)},
    )
    assert summary.requests == {"healthy": 12, "blackhole": 9, "reset": 1, "recovery": 20}
    assert summary.reached_dead_upstream == 10
    assert [summary.phases[p].upstream_saw for p in PHASES] == [1, 1, 0, 1]
    assert summary.to_dict()["phases"]["reset"]["requests"] == 1


# -- the verdict ----------------------------------------------------------------------------


def test_a_breaker_that_rides_out_the_faults_holds_with_requests_counted_per_period() -> None:
    verdict = _judge()
    assert verdict.holds, verdict.checks
    assert verdict.before_first_opening == 8
    assert [(p.opened_at, p.phase, p.requests) for p in verdict.periods] == [
        (2.3, "blackhole", 1),  # the probe at 3.11, hung until the reset cut it
        (4.4, "reset", 1),  # the probe at 5.2, reset at once
        (5.21, "reset", 0),  # its probe went out after the faults were cleared
    ]
    assert verdict.outage == (PLAN.outage_start, PLAN.outage_end)
    assert verdict.closed_after_outage == pytest.approx(6.02 - PLAN.outage_end)


def test_requests_outside_the_faults_do_not_count_against_the_breaker() -> None:
    busy = [
        *HEALTHY_TRAFFIC,
        *(0.01 * i for i in range(100)),
        *(6.5 + 0.01 * i for i in range(100)),
    ]
    verdict = _judge([*busy, *INTO_THE_FAULTS])
    assert verdict.holds
    assert [p.requests for p in verdict.periods] == [1, 1, 0]


def test_more_requests_in_a_recovery_period_than_threshold_plus_probes_fail_the_verdict() -> None:
    leaky = [*HEALTHY_TRAFFIC, *INTO_THE_FAULTS, 4.5, 4.6, 4.7, 4.8]  # 5 in the 4.4 period
    verdict = _judge(leaky)
    assert not verdict.holds
    assert not _check(verdict, "per_period")
    assert [p.requests for p in verdict.periods] == [1, 5, 0]


def test_more_requests_before_the_first_opening_than_the_workers_allow_fail_the_verdict() -> None:
    flood = [*HEALTHY_TRAFFIC, *INTO_THE_FAULTS, *(1.3 + 0.01 * i for i in range(5))]
    verdict = _judge(flood)
    assert verdict.before_first_opening == 13 > PLAN.detection_bound
    assert not _check(verdict, "before_first_opening")
    assert _check(verdict, "per_period")


def test_a_breaker_that_closes_while_the_faults_are_on_fails_the_verdict() -> None:
    closes_early = (*RIDE_OUT[:2], _t(3.2, "half_open", "closed"), _t(3.9, "closed", "open"))
    verdict = _judge(transitions=(*closes_early, *RIDE_OUT[3:]))
    assert not _check(verdict, "held_open")
    assert not verdict.holds


def test_a_breaker_that_does_not_close_after_the_faults_fail_the_verdict() -> None:
    verdict = _judge(transitions=RIDE_OUT[:5], final_state="open")
    assert not _check(verdict, "recovered")
    assert verdict.closed_after_outage is None


def test_a_protected_wait_past_call_timeout_plus_tolerance_fails_the_verdict() -> None:
    assert _check(_judge(worst_wait=PLAN.wait_limit), "worst_wait")
    assert not _check(_judge(worst_wait=PLAN.wait_limit + 0.001), "worst_wait")


def test_a_breaker_that_never_opens_fails_and_every_request_counts_before_the_first_opening() -> (
    None
):
    verdict = _judge(transitions=(), final_state="closed")
    assert not _check(verdict, "opened")
    assert not _check(verdict, "per_period")
    assert not _check(verdict, "held_open")
    assert not _check(verdict, "recovered")
    assert verdict.before_first_opening == len(INTO_THE_FAULTS)


def test_a_breaker_that_first_opens_in_the_reset_still_opened_during_the_faults() -> None:
    late = (_t(4.45, "closed", "open"), _t(5.25, "open", "half_open"))
    late += (_t(5.26, "half_open", "open"), _t(6.1, "open", "half_open"))
    late += (_t(6.11, "half_open", "closed"),)
    verdict = _judge(transitions=late)
    assert _check(verdict, "opened")
    assert verdict.periods[0].phase == "reset"
    assert "during the reset" in verdict.checks[0].detail


def test_a_run_interrupted_before_the_faults_is_judged_without_error_and_does_not_hold() -> None:
    timeline = _timeline(upto=Phase.HEALTHY)
    verdict = _judge(HEALTHY_TRAFFIC[:5], (), timeline=timeline, end=0.5)
    assert not verdict.holds
    assert verdict.before_first_opening == 0
    assert verdict.periods == ()


# -- the words ------------------------------------------------------------------------------


def _summary() -> Summary:
    timeline = _timeline()
    tally = _tally([*HEALTHY_TRAFFIC, *INTO_THE_FAULTS], _moments(timeline, RIDE_OUT, 8.0))
    side = side_summary(
        SideStats(), 0.0, elapsed=8.0, sent=tally, timeline=timeline, upstream_saw=[], proxy={}
    )
    return Summary(
        plan=PLAN,
        elapsed=8.0,
        interrupted=False,
        upstream="127.0.0.1:1",
        timeline=timeline,
        protected=side,
        unprotected=side,
        transitions=RIDE_OUT,
        final_state="closed",
        breaker={},
        verdict=judge(PLAN, timeline, 8.0, tally, RIDE_OUT, "closed", 1.0),
    )


def test_event_lines_name_the_current_fault() -> None:
    assert "blackhole:" in phase_line(PLAN, Phase.BLACKHOLE, 1.2)
    assert "reset:" in phase_line(PLAN, Phase.RESET, 4.4)
    assert "recovered:" in phase_line(PLAN, Phase.RECOVERY, 5.6)
    assert transition_line(RIDE_OUT[0], "blackhole").endswith("during blackhole")


def test_the_report_shows_each_fault_phase_and_how_requests_were_counted() -> None:
    text = "\n".join(summary_lines(_summary()))
    assert (
        "faults: healthy 0.0-1.2 s, blackhole 1.2-4.4 s, reset 4.4-5.6 s, recovered from 5.6 s"
        in text
    )
    for label in ("healthy", "blackhole", "reset", "recovered"):
        assert f"\n  {label} " in text  # a row of the per-phase table
    assert "Counting:" in text
    assert "Verdict: HOLDS" in text


def test_json_lists_the_phases_with_their_faults_and_the_outage_window() -> None:
    data = _summary().to_dict()
    assert [(p["name"], p["fault"]) for p in data["phases"]] == [
        ("healthy", "none"),
        ("blackhole", "blackhole"),
        ("reset", "reset"),
        ("recovery", "recovered"),
    ]
    assert data["verdict"]["outage_s"] == [round(PLAN.outage_start, 4), round(PLAN.outage_end, 4)]
    assert [t["phase"] for t in data["breaker"]["transitions"]][:3] == [
        "blackhole",
        "blackhole",
        "reset",
    ]
    assert "proxy" in data["counting"]


def test_the_live_view_names_the_current_fault_and_the_requests_each_proxy_counted() -> None:
    stats = SideStats()
    rows = (
        SideRow.of("protected", stats, 0.0, "open", 12),
        SideRow.of("unprotected", stats, 0.0, None, 40),
    )
    for phase, name in zip(PHASES, ["healthy", "blackhole", "reset", "recovered"], strict=True):
        out = io.StringIO()
        Console(file=out, width=160).print(_table(Status(PLAN, 2.0, phase, rows)))
        text = out.getvalue()
        assert f"fault: {name} (" in text
        assert re.search(r"protected\s*│\s*open\s*│\s*12\s*│", text), text


@pytest.mark.parametrize("width", [80, 100, 200])
def test_the_live_view_fits_the_terminal_and_cuts_no_cell_into_a_stub(width: int) -> None:
    busy = SideRow(
        "protected", "half_open", 123456, 234567, 200000, 30000, 4567, 12, 0.0123, 0.51, 1.02
    )
    slow = SideRow("unprotected", None, 99999, 99999, 50000, 49000, None, 999, 9.9, 10.0, 10.0)
    urls = urls_text("http://127.0.0.1:41577", ROUTES)
    poller = "poll every 60 s: the breaker is open, so the page waits (retry in 4.2 s)"
    status = Status(PLAN, 2.0, Phase.BLACKHOLE, (busy, slow), urls, "unhealthy", poller)
    out = io.StringIO()
    Console(file=out, width=width).print(_table(status, width))
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width, "\n".join(lines)
    text = out.getvalue()
    # Every number, state and time is whole: only a side name may give way, in the middle.
    for cell in (
        "half_open",
        "123456",
        "200000",
        "30000",
        "4567",
        "12 ms",
        "510 ms",
        "1.02 s",
        "99999",
        "49000",
        "999",
        "9.90 s",
        "10.00 s",
        "unhealthy",
    ):
        assert cell in text, (cell, text)
    assert ("calls" in text) == ("234567" in text)  # a narrow terminal may drop the sum
    assert "calls" in text or width == 80
    assert re.search(rf"pro\w*{ELLIPSIS}?\w*ted ", text), text
    for whole in ("breaker", "/dashboard", "retry in 4.2 s"):
        assert whole in text
    assert not re.search(rf"{ELLIPSIS}(\s|$)", text), "a cell was cut at its end: " + text


# -- switching the proxies ------------------------------------------------------------------


def test_switching_a_phase_reads_each_proxy_s_counter_then_sets_its_faults() -> None:
    async def main() -> list[tuple[ProxyFaults, ProxyFaults]]:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        seen = []
        try:
            async with Proxies(server.sockets[0].getsockname()[:2], ("a", "b")) as proxies:
                for phase in PHASES:
                    proxies.switch(phase, PLAN.phase_start(phase))
                    seen.append((proxies.faults("a"), proxies.faults("b")))
                    if phase is Phase.HEALTHY:  # one request through a's proxy
                        _, writer = await asyncio.open_connection(*_address(proxies.url("a")))
                        writer.close()
                        await _until(lambda: proxies.total("a") == 1)
                for side in ("a", "b"):
                    assert [at for at, _ in proxies.sent[side].marks] == [
                        PLAN.phase_start(p) for p in PHASES
                    ]
                assert proxies.sent["a"].between(0.0, PLAN.phase_start(Phase.BLACKHOLE)) == 1
                assert proxies.sent["b"].between(0.0, PLAN.duration) == 0
        finally:
            server.close()
            await server.wait_closed()
        return seen

    seen = asyncio.run(asyncio.wait_for(main(), 10))
    expected = [ProxyFaults(), ProxyFaults(blackhole=True), ProxyFaults(reset=True), ProxyFaults()]
    assert seen == [(faults, faults) for faults in expected]


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    return host, int(port)


async def _until(done: Callable[[], bool]) -> None:
    for _ in range(200):  # 2 s at most
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


# -- the ops app's record -------------------------------------------------------------------


@pytest.mark.parametrize("duration", DURATIONS)
def test_every_duration_leaves_room_for_health_to_fail_in_each_fault_and_pass_in_the_recovery(
    duration: float,
) -> None:
    plan = DemoPlan.for_run(duration)
    length = {p: plan.phase_end(p) - plan.phase_start(p) for p in PHASES}
    # A run started just before the blackhole passes; the next one times out inside it.
    assert plan.health_interval + plan.health_timeout < length[Phase.BLACKHOLE]
    # At least one run starts in the reset (and fails at once there).
    assert plan.health_interval < length[Phase.RESET]
    # A run in flight when the faults clear fails within its timeout, the next one starts
    # within an interval of its start and passes: well before the run ends.
    assert plan.health_interval + plan.health_timeout < length[Phase.RECOVERY]


def _health(code: int, status: str) -> tuple[int, dict[str, object]]:
    return code, {"status": status, "services": {"total": 1}}


def _breaker(state: str, available: bool, interval: float) -> tuple[int, dict[str, object]]:
    return 200, {"state": state, "available": available, "poll_interval": interval}


def test_a_reading_takes_the_health_status_and_the_breaker_s_poll_hint_from_the_answers() -> None:
    reading = reading_of(
        2.3, Phase.BLACKHOLE, "opened", _health(503, "unhealthy"), _breaker("open", False, 60)
    )
    assert (reading.http_status, reading.health) == (503, "unhealthy")
    assert (reading.breaker, reading.available, reading.poll_interval) == ("open", False, 60.0)
    assert reading.error is None
    assert reading.to_dict()["breaker"] == {
        "state": "open",
        "available": False,
        "poll_interval_s": 60.0,
    }


def test_a_reading_without_an_answer_says_why_and_keeps_what_did_answer() -> None:
    reading = reading_of(
        1.2, Phase.HEALTHY, "end", ConnectionError("refused"), _breaker("closed", True, 5)
    )
    assert reading.http_status is None
    assert reading.health is None
    assert reading.breaker == "closed"
    assert reading.error == "ConnectionError: refused"
    odd = reading_of(1.2, Phase.HEALTHY, "end", (200, ["not", "a", "dict"]), (404, {}))
    assert (odd.http_status, odd.health, odd.breaker) == (200, None, None)


def _record(**said: tuple[int, str]) -> OpsRecord:
    ends = {Phase.HEALTHY: 1.2, Phase.BLACKHOLE: 4.4, Phase.RESET: 5.6, Phase.RECOVERY: 8.0}
    readings = [
        reading_of(ends[Phase(name)], Phase(name), "end", _health(*answer), (200, {}))
        for name, answer in said.items()
    ]
    readings.append(
        reading_of(
            2.3, Phase.BLACKHOLE, "opened", _health(200, "healthy"), _breaker("open", False, 60)
        )
    )
    return OpsRecord(
        url="http://127.0.0.1:8123",
        check_url="http://127.0.0.1:9000/api/torrents",
        interval=0.5,
        timeout=0.8,
        readings=tuple(sorted(readings, key=lambda r: r.at)),
        changes=(
            Change(0.03, None, "healthy"),
            Change(2.3, "healthy", "unhealthy"),
            Change(5.9, "unhealthy", "healthy"),
        ),
    )


RODE_OUT = {
    "healthy": (200, "healthy"),
    "blackhole": (503, "unhealthy"),
    "reset": (503, "unhealthy"),
    "recovery": (200, "healthy"),
}


def test_health_that_failed_through_the_faults_and_passed_at_the_end_is_recognised() -> None:
    assert _record(**RODE_OUT).unhealthy_in_outage_and_healthy_after


@pytest.mark.parametrize(
    "changed",
    [
        {"reset": (200, "healthy")},  # passed while the resets were on
        {"blackhole": (200, "degraded")},
        {"recovery": (503, "unhealthy")},  # never came back
        {"recovery": (200, "degraded")},
    ],
)
def test_health_that_passed_in_a_fault_or_did_not_pass_at_the_end_is_not_recognised(
    changed: dict[str, tuple[int, str]],
) -> None:
    assert not _record(**{**RODE_OUT, **changed}).unhealthy_in_outage_and_healthy_after


def test_a_record_without_a_reading_for_a_phase_is_not_recognised() -> None:
    partial = {k: v for k, v in RODE_OUT.items() if k != "reset"}
    assert not _record(**partial).unhealthy_in_outage_and_healthy_after


def test_json_gives_the_ops_urls_what_health_said_per_phase_and_when_it_changed() -> None:
    data = _record(**RODE_OUT).to_dict(lambda at: PLAN.phase_at(at).value)
    assert data["served"] is True
    assert data["url"] == "http://127.0.0.1:8123"
    assert data["routes"] == {r: f"http://127.0.0.1:8123/{r}" for r in ROUTES}
    assert data["breaker_url"] == "http://127.0.0.1:8123/breakers/demo-upstream"
    assert data["health_check"]["url"] == "http://127.0.0.1:9000/api/torrents"
    assert {k: v["http_status"] for k, v in data["health_by_phase"].items()} == {
        "healthy": 200,
        "blackhole": 503,
        "reset": 503,
        "recovery": 200,
    }
    assert [(c["new"], c["phase"]) for c in data["health_changes"]] == [
        ("healthy", "healthy"),
        ("unhealthy", "blackhole"),
        ("healthy", "recovery"),
    ]
    assert [r["moment"] for r in data["readings"]] == ["end", "opened", "end", "end", "end"]
    assert data["unhealthy_in_outage_and_healthy_after"] is True


def test_without_prometheus_the_urls_leave_out_metrics_and_say_how_to_get_it() -> None:
    served = tuple(r for r in ROUTES if r != "metrics")
    text = urls_text("http://127.0.0.1:8123", served)
    assert "/metrics" not in text.split("(")[0]
    assert "pip install 'stalwart[prometheus]'" in text
    full = urls_text("http://127.0.0.1:8123", ROUTES)
    assert full.split() == [f"http://127.0.0.1:8123/{r}" for r in ROUTES]


def test_the_report_prints_the_ops_urls_and_what_health_said_per_phase() -> None:
    summary = replace(_summary(), ops=_record(**RODE_OUT))
    text = "\n".join(summary_lines(summary))
    assert "ops app (served while the demo ran): http://127.0.0.1:8123/health, /breakers, " in text
    assert "/metrics, /events" in text
    assert (
        "/health said: healthy (200) as healthy ended, unhealthy (503) as blackhole ended, "
        "unhealthy (503) as reset ended, healthy (200) at the end"
    ) in text
    assert "healthy -> unhealthy at 2.3 s (blackhole)" in text
    assert "unhealthy -> healthy at 5.9 s (recovered)" in text
    assert "/breakers/demo-upstream right after the breaker opened at 2.3 s: state open" in text


def test_a_run_without_the_ops_app_says_why_in_the_report_and_the_json() -> None:
    summary = replace(_summary(), ops_off="switched off (--no-ops)")
    assert "  ops app: not served, switched off (--no-ops)" in summary_lines(summary)
    assert summary.to_dict()["ops"] == {"served": False, "reason": "switched off (--no-ops)"}


def test_the_live_view_shows_the_ops_urls_and_the_health_status_now() -> None:
    rows = (SideRow.of("protected", SideStats(), 0.0, "open", 12),)
    urls = urls_text("http://127.0.0.1:8123", ROUTES)
    out = io.StringIO()
    Console(file=out, width=200).print(
        _table(Status(PLAN, 2.0, Phase.BLACKHOLE, rows, urls, "unhealthy"))
    )
    text = out.getvalue()
    assert "ops app: http://127.0.0.1:8123/health  http://127.0.0.1:8123/breakers" in text
    assert "/health: unhealthy" in text
    out = io.StringIO()
    Console(file=out, width=200).print(_table(Status(PLAN, 2.0, Phase.BLACKHOLE, rows)))
    assert "ops app" not in out.getvalue()


def test_no_ops_and_ops_port_reach_the_demo_command(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int | None, bool]] = []

    def command(
        duration: float, workers: int, *, as_json: bool, ops_port: int | None, open_dashboard: bool
    ) -> int:
        seen.append((ops_port, open_dashboard))
        return 0

    monkeypatch.setattr(_demo, "command", command)
    assert main(["demo"]) == 0
    assert main(["demo", "--ops-port", "8123"]) == 0
    assert main(["demo", "--ops-port", "8123", "--no-ops"]) == 0
    assert main(["demo", "--open"]) == 0
    assert seen == [(0, False), (8123, False), (None, False), (0, True)]


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_an_ops_port_outside_0_to_65535_is_a_usage_error_naming_the_option(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--ops-port", port])
    assert exit_info.value.code == 2
    assert "--ops-port" in capsys.readouterr().err


def test_a_run_stopped_in_a_fault_reports_its_last_reading_as_the_end_not_the_phase_s() -> None:
    stopped = _record(healthy=(200, "healthy"), blackhole=(503, "unhealthy"))
    text = "\n".join(stopped.lines(phase_label, lambda at: PLAN.phase_at(at).value))
    assert "/health said: healthy (200) as healthy ended, unhealthy (503) at the end" in text
    assert not stopped.unhealthy_in_outage_and_healthy_after
