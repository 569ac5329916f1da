"""``stalwart status URL`` against a real ops app under uvicorn, and its 80-column layout."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator

import pytest

from servers import free_port
from stalwart import CircuitBreaker
from stalwart.cli import main
from stalwart.cli._fit import ELLIPSIS, MIN_KEEP, columns, middle, pack
from stalwart.cli._status import command, read, render
from stalwart.health import HealthRegistry
from stalwart.testing import FakeClock
from stalwart.web import ops_app
from web.support import Serve

KEY = "status-cli-key-0123456789"
LONG_NAME = "payments-database-replica-eu-west-1-standby"
LONG_ERROR = (
    "OperationalError: connection to server at 10.20.30.40, port 5432 failed: timeout expired "
    "after 2.0 s while waiting for the server to accept the connection (replica standby)"
)


# -- the layout (pure) ------------------------------------------------------------------


@pytest.mark.parametrize("width", [7, 10, 20, 33])
def test_middle_keeps_both_ends_and_the_width(width: int) -> None:
    text = "payments-database-replica-eu-west-1"
    short = middle(text, width)
    assert len(short) == width
    head, _, tail = short.partition(ELLIPSIS)
    assert len(head) >= MIN_KEEP
    assert len(tail) >= MIN_KEEP
    assert text.startswith(head)
    assert text.endswith(tail)


def test_middle_leaves_what_fits_alone_and_makes_one_line() -> None:
    assert middle("database", 8) == "database"
    assert middle("line one\n  line two", 40) == "line one line two"
    assert middle("abcdef", 1) == ELLIPSIS
    assert middle("abcdef", 0) == ""


def test_columns_share_the_room_between_the_flexible_ones() -> None:
    rows = [["CHECK", "STATE", "LAST ERROR"], [LONG_NAME, "degraded", LONG_ERROR]]
    lines = columns(rows, width=80, flexible=(2, 0))
    assert all(len(line) <= 80 for line in lines)
    name, state, error = lines[1].split("  ", 2)
    assert state.strip() == "degraded"
    # Both long cells keep their two ends; neither is drained to its floor by the other.
    assert name.startswith("payments-data")
    assert name.endswith("standby")
    assert error.startswith("OperationalError")
    assert error.endswith("standby)")
    assert abs(len(name) - len(error.strip())) <= 1


def test_a_short_cell_gives_nothing_and_a_narrow_terminal_stops_at_the_floors() -> None:
    rows = [["CHECK", "LAST ERROR"], ["db", LONG_ERROR]]
    line = columns(rows, width=40, flexible=(1, 0))[1]
    assert line.startswith("db     OperationalError")  # "db" padded to its header, not cut
    assert len(line) == 40
    narrow = columns([["CHECK", "LAST ERROR"], [LONG_NAME, LONG_ERROR]], width=10, flexible=(1, 0))
    assert [len(part) for part in narrow[1].split("  ")] == [7, 10]  # the floors


# -- against a served ops app --------------------------------------------------------------


@pytest.fixture
def site(serve: Serve) -> Iterator[str]:
    clock = FakeClock()
    health = HealthRegistry("orders", clock=clock)
    health.add("database", lambda: True)
    health.add(LONG_NAME, lambda: (_ for _ in ()).throw(ConnectionError(LONG_ERROR)),
               critical=False)  # fmt: skip
    asyncio.run(health.run_once())
    breaker = CircuitBreaker("qbittorrent", failure_threshold=1, recovery_timeout=60.0,
                             clock=clock)  # fmt: skip
    breaker.force_open()
    closed = CircuitBreaker("storage-service-with-a-rather-long-name", clock=clock)
    app = ops_app(health=health, breakers=[breaker, closed], api_key=KEY, metrics=False)
    with serve(app) as url:
        yield url
    app.close()


def test_pack_fills_lines_in_order_and_shortens_only_what_no_line_holds() -> None:
    assert pack(["ab", "cd", "ef"], 8, sep=" ") == ["ab cd ef"]
    assert pack(["ab", "cd", "ef"], 5, sep=" ") == ["ab cd", "ef"]
    assert pack(["a" * 20, "b"], 9) == [f"aaaa{ELLIPSIS}aaaa", "b"]
    assert pack([], 10) == []


def test_status_exits_1_when_degraded_and_every_line_fits_80_columns(
    site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = io.StringIO()
    assert command(site, key=KEY, out=out) == 1
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert lines[0].startswith("DEGRADED ")
    table = "\n".join(lines[3:])
    assert "ConnectionErr" in table  # the error's start ...
    assert "standby)" in table  # ... and its end, shortened in the middle
    assert "payments-" in table  # the long check name keeps both ends too
    assert "until reset" in table  # the forced-open breaker
    print(out.getvalue())


def test_without_the_key_errors_are_hidden_and_it_says_how_to_see_them(site: str) -> None:
    reading = read(site)
    assert reading.redacted
    text = render(reading, width=80)
    assert "OperationalError" not in text
    assert text.splitlines()[-1].startswith("errors are hidden without the ops app's key")


def test_json_gives_the_reading_and_its_exit_status(site: str) -> None:
    out = io.StringIO()
    assert command(site, as_json=True, key=KEY, out=out) == 1
    body = json.loads(out.getvalue())
    assert body["status"] == "degraded"
    assert body["exit_status"] == 1
    assert body["http_status"] == 200
    assert {c["name"] for c in body["checks"]} == {"database", LONG_NAME}
    assert {b["name"]: b["state"] for b in body["breakers"]} == {
        "qbittorrent": "forced_open",
        "storage-service-with-a-rather-long-name": "closed",
    }


def test_unreachable_exits_2_and_says_so() -> None:
    url = f"http://127.0.0.1:{free_port()}/ops"
    out = io.StringIO()
    assert command(url, out=out, timeout=2.0) == 2
    assert out.getvalue().startswith("UNREACHABLE cannot reach http://127.0.0.")


def test_an_unhealthy_service_exits_2_and_a_healthy_one_0(serve: Serve) -> None:
    health = HealthRegistry("api")
    health.add("database", lambda: False)
    asyncio.run(health.run_once())
    app = ops_app(health=health, metrics=False)
    with serve(app) as url:
        assert command(url + "/health", out=io.StringIO()) == 2  # a pasted /health URL too
    app.close()
    healthy = HealthRegistry("api")
    healthy.add("database", lambda: True)
    asyncio.run(healthy.run_once())
    app = ops_app(health=healthy, metrics=False)
    with serve(app) as url:
        assert command(url, out=io.StringIO()) == 0
    app.close()


def test_watch_reads_again_count_times(site: str) -> None:
    out = io.StringIO()
    assert command(site, watch=0.1, count=3, key=KEY, out=out) == 1
    assert out.getvalue().count("DEGRADED ") == 3


def test_the_command_line(site: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", site, "--json", "--key", KEY]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == "degraded"
    with pytest.raises(SystemExit):
        main(["status", site, "--watch", "0"])  # below the 0.1 s floor
    assert "--watch" in capsys.readouterr().err
