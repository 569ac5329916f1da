"""``stalwart proxy`` as a real subprocess: data flows, HTTP switches faults, signals stop it."""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator

import pytest

from test_chaos_runner import echo_server, round_trip

LOCAL = "127.0.0.1"
STOP_BOUND = 10.0
PROXY = (sys.executable, "-m", "stalwart.cli", "proxy")


class Running:
    """A ``stalwart proxy`` subprocess and the lines it printed."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [*PROXY, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def line(self, timeout: float = 10.0) -> str:
        return self.lines.get(timeout=timeout)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(STOP_BOUND)
        self._reader.join(STOP_BOUND)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_BOUND)
        self._reader.join(STOP_BOUND)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def upstream() -> Iterator[tuple[str, int]]:
    with echo_server() as address:
        yield address


def started(upstream: tuple[str, int], *extra: str) -> tuple[Running, tuple[str, int], str]:
    """Start the CLI; return it, the proxy's address and the control URL line."""
    cli = Running("--listen", f"{LOCAL}:0", "--upstream", f"{LOCAL}:{upstream[1]}", *extra)
    first = cli.line()
    match = re.fullmatch(r"proxy '(.+)': 127\.0\.0\.1:(\d+) -> 127\.0\.0\.1:(\d+)", first)
    assert match, first
    assert int(match[3]) == upstream[1]
    return cli, (LOCAL, int(match[2])), cli.line()


def post(url: str, faults: dict[str, object]) -> dict[str, object]:
    body = json.dumps(faults).encode()
    with urllib.request.urlopen(urllib.request.Request(url, body, method="POST"), timeout=5) as r:
        answer: dict[str, object] = json.load(r)
        return answer


def test_cli_proxy_forwards_data_and_control_switches_faults(upstream: tuple[str, int]) -> None:
    cli, address, control = started(upstream, "--control", f"{LOCAL}:0", "--name", "db")
    try:
        match = re.fullmatch(r"control: (http://127\.0\.0\.1:\d+/proxies/db)", control)
        assert match, control
        faults_url = match[1] + "/faults"
        assert round_trip(address, b"y" * 100_000) == b"y" * 100_000

        assert post(faults_url, {"blackhole": True})["blackhole"] is True
        with pytest.raises(TimeoutError):
            round_trip(address, timeout=0.2)

        post(faults_url, {"blackhole": False, "reset": True})
        # The RST may beat the end of connect() or come after it: both are a reset.
        with pytest.raises(ConnectionResetError), socket.create_connection(address, 2) as sock:
            sock.recv(1)

        request = urllib.request.Request(faults_url, method="DELETE")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["reset"] is False
        assert round_trip(address) == b"ping"

        assert cli.stop(signal.SIGTERM) == 0
        assert cli.line() == "stopping: closing every connection"
    finally:
        cli.kill()


def test_sigint_stops_the_cli_proxy_cleanly_and_closes_connections(
    upstream: tuple[str, int],
) -> None:
    cli, address, control = started(upstream)
    try:
        assert control.startswith("control: off")
        with socket.create_connection(address, timeout=2) as sock:
            sock.sendall(b"a")
            assert sock.recv(1) == b"a"
            assert cli.stop(signal.SIGINT) == 0
            assert sock.recv(1) == b""  # closed by the proxy, not left open
    finally:
        cli.kill()


def test_cli_proxy_token_from_the_environment_guards_changes(
    upstream: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STALWART_PROXY_TOKEN", "s3cret")
    cli, _, control = started(upstream, "--control", f"{LOCAL}:0")
    try:
        assert control.endswith("(token from $STALWART_PROXY_TOKEN required to change faults)")
        url = control.split()[1] + "/faults"
        with pytest.raises(urllib.error.HTTPError) as refused:
            post(url, {"blackhole": True})
        assert refused.value.code == 401
        refused.value.close()
        request = urllib.request.Request(
            url, b'{"blackhole": true}', headers={"Authorization": "Bearer s3cret"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["blackhole"] is True
        assert cli.stop() == 0
    finally:
        cli.kill()


def test_cli_proxy_exits_1_when_its_port_is_taken(upstream: tuple[str, int]) -> None:
    with socket.create_server((LOCAL, 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*PROXY, "--listen", f"{LOCAL}:{port}", "--upstream", f"{LOCAL}:{upstream[1]}"],
            capture_output=True,
            text=True,
            timeout=STOP_BOUND,
        )
    assert done.returncode == 1
    assert "cannot listen" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--upstream", "127.0.0.1:5432"], "the following arguments are required: --listen"),
        (["--listen", "127.0.0.1:1"], "the following arguments are required: --upstream"),
        (["--listen", "0.0.0.0:15432", "--upstream", "127.0.0.1:5432"], "loopback"),
        (["--listen", "127.0.0.1", "--upstream", "127.0.0.1:5432"], "HOST:PORT"),
        (["--listen", "127.0.0.1:1", "--upstream", "127.0.0.1:99999"], "HOST:PORT"),
        (["--listen", "127.0.0.1:1", "--upstream", "127.0.0.1:0"], "1..65535"),
        (
            ["--listen", "127.0.0.1:1", "--upstream", "h:1", "--control", "10.1.1.1:8474"],
            "--control",
        ),
        (["--listen", "127.0.0.1:1", "--upstream", "h:1", "--seed", "x"], "--seed"),
        (["--listen", "127.0.0.1:1", "--upstream", "h:1", "--name", "a/b"], "--name"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args: list[str], message: str) -> None:
    done = subprocess.run(
        [*PROXY, *args],
        capture_output=True,
        text=True,
        timeout=STOP_BOUND,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
