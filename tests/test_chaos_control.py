"""The HTTP/JSON control endpoint, over real HTTP on loopback, switching real proxies."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart._errors import ConfigError
from stalwart.chaos import ChaosProxy, ControlServer, ProxyThread, ThreadedProxy
from stalwart.chaos._control import MAX_HEADER_BYTES
from test_chaos_runner import echo_server, round_trip

LOCAL = "127.0.0.1"


class Setup:
    def __init__(self, chaos: ProxyThread, control: ControlServer, db: ThreadedProxy) -> None:
        self.chaos = chaos
        self.control = control
        self.db = db


@pytest.fixture
def setup() -> Iterator[Setup]:
    with echo_server() as upstream, ProxyThread() as chaos:
        db = chaos.add(upstream, name="db")
        control = chaos.serve_control((LOCAL, 0))
        yield Setup(chaos, control, db)


def request(
    address: tuple[str, int],
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], http.client.HTTPResponse]:
    """One HTTP request; returns (status, JSON body, response)."""
    connection = http.client.HTTPConnection(*address, timeout=5)
    try:
        raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        connection.request(method, path, body=raw, headers=headers or {})
        response = connection.getresponse()
        assert response.getheader("Content-Type") == "application/json"
        return response.status, json.loads(response.read()), response
    finally:
        connection.close()


def raw_request(address: tuple[str, int], data: bytes) -> tuple[int, dict[str, Any]]:
    """Send bytes as they are; parse the status line and JSON body of the answer."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


# -- routes ---------------------------------------------------------------------------------


def test_health_answers_ok_with_the_proxy_count(setup: Setup) -> None:
    assert request(setup.control.address, "GET", "/health")[:2] == (
        200,
        {"status": "ok", "proxies": 1},
    )


def test_get_proxies_lists_names_addresses_faults_and_stats(setup: Setup) -> None:
    assert round_trip(setup.db.address) == b"ping"
    status, body, _ = request(setup.control.address, "GET", "/proxies")
    assert status == 200
    view = body["proxies"]["db"]
    assert view["listen"] == f"{LOCAL}:{setup.db.address[1]}"
    assert view["upstream"] == f"{LOCAL}:{setup.db.upstream[1]}"
    assert view["faults"]["blackhole"] is False
    assert view["stats"]["bytes_upstream"] == 4
    one = request(setup.control.address, "GET", "/proxies/db")[1]
    assert {**one, "stats": None} == {**view, "stats": None}  # "open" may drop meanwhile


def test_post_faults_merges_and_the_data_path_shows_it(setup: Setup) -> None:
    address = setup.control.address
    status, faults, _ = request(address, "POST", "/proxies/db/faults", {"latency": 0.01})
    assert (status, faults["latency"]) == (200, 0.01)
    status, faults, _ = request(address, "POST", "/proxies/db/faults", {"blackhole": True})
    assert status == 200
    assert (faults["latency"], faults["blackhole"]) == (0.01, True)  # merged, not replaced
    assert setup.db.faults.blackhole
    with pytest.raises(TimeoutError):
        round_trip(setup.db.address, timeout=0.2)


def test_put_faults_replaces_the_whole_set(setup: Setup) -> None:
    setup.db.set(latency=0.5, blackhole=True)
    status, faults, _ = request(setup.control.address, "PUT", "/proxies/db/faults", {"jitter": 0.1})
    assert status == 200
    assert (faults["latency"], faults["blackhole"], faults["jitter"]) == (0.0, False, 0.1)
    assert setup.db.faults.latency == 0.0


def test_delete_faults_clears_them_and_data_flows_again(setup: Setup) -> None:
    setup.db.set(blackhole=True)
    status, faults, _ = request(setup.control.address, "DELETE", "/proxies/db/faults")
    assert (status, faults["blackhole"]) == (200, False)
    assert round_trip(setup.db.address) == b"ping"
    assert request(setup.control.address, "GET", "/proxies/db/faults")[1] == faults


def test_reset_switched_over_http_resets_an_open_connection(setup: Setup) -> None:
    with socket.create_connection(setup.db.address, timeout=2) as sock:
        sock.sendall(b"a")
        assert sock.recv(1) == b"a"
        assert (
            request(setup.control.address, "POST", "/proxies/db/faults", {"reset": True})[0] == 200
        )
        with pytest.raises(ConnectionResetError):
            sock.recv(1)


def test_proxies_added_after_the_control_server_are_served(setup: Setup) -> None:
    later = setup.chaos.add(setup.db.upstream, name="cache")
    assert request(setup.control.address, "GET", "/proxies/cache")[0] == 200
    later.close()
    assert request(setup.control.address, "GET", "/proxies/cache")[0] == 404


# -- bad requests: 4xx JSON, never 5xx, never a hang -----------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"latency": -1}, "latency"),
        ({"blackhole": "yes"}, "blackhole"),
        ({"direction": "sideways"}, "direction"),
        ({"slice_delay": 0.1}, "slice_delay"),
        ({"latncy": 1}, "latncy"),
        ({"slice_size": 1.5}, "slice_size"),
    ],
)
def test_bad_fault_is_400_naming_the_field_and_changes_nothing(
    setup: Setup, body: dict[str, Any], field: str
) -> None:
    setup.db.set(latency=0.01)
    status, answer, _ = request(setup.control.address, "POST", "/proxies/db/faults", body)
    assert status == 400
    assert answer["field"] == field
    assert field in answer["error"]
    assert setup.db.faults.latency == 0.01


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'"blackhole"', b"\xff\xfe", b"[" * 50_000, b"NaN"]
)
def test_body_that_is_not_a_json_object_is_400(setup: Setup, body: bytes) -> None:
    status, answer, _ = request(setup.control.address, "POST", "/proxies/db/faults", body)
    assert status == 400
    assert "error" in answer


def test_unknown_proxy_is_404_listing_the_proxies(setup: Setup) -> None:
    status, answer, _ = request(setup.control.address, "POST", "/proxies/nope/faults", {})
    assert (status, answer["proxies"]) == (404, ["db"])
    assert request(setup.control.address, "GET", "/nowhere")[0] == 404


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/proxies", "GET"),
        ("DELETE", "/proxies/db", "GET"),
        ("PATCH", "/proxies/db/faults", "GET, POST, PUT, DELETE"),
        ("PUT", "/health", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow(setup: Setup, method: str, path: str, allow: str) -> None:
    status, answer, response = request(setup.control.address, method, path, {})
    assert status == 405
    assert response.getheader("Allow") == allow
    assert method in answer["error"]


def test_oversized_body_is_413_before_it_is_read(setup: Setup) -> None:
    head = b"POST /proxies/db/faults HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n"
    assert raw_request(setup.control.address, head)[0] == 413


def test_oversized_headers_are_431(setup: Setup) -> None:
    head = b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\n"
    assert raw_request(setup.control.address, head)[0] == 431


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /health HTTP/2.0\r\n\r\n",
        b"GET health HTTP/1.1\r\n\r\n",
        b"GET /health HTTP/1.1\r\nno colon here\r\n\r\n",
        b"POST /proxies/db/faults HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST /proxies/db/faults HTTP/1.1\r\nContent-Length: \u00b2\r\n\r\n".encode("latin-1"),
        b"POST /proxies/db/faults HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /proxies/db/faults HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}",
        b"GET /health",
        # More digits than int() takes (4300) crashed the handler: no answer at all.
        b"POST /proxies/db/faults HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
    ],
)
def test_malformed_request_is_400(setup: Setup, data: bytes) -> None:
    with socket.create_connection(setup.control.address, timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # the client is done: an incomplete request stays so
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]


def test_a_client_that_sends_nothing_gets_408_after_the_read_timeout() -> None:
    async def main() -> int:
        async with ControlServer(listen=(LOCAL, 0), read_timeout=0.1) as control:
            reader, writer = await asyncio.open_connection(*control.address)
            try:
                line = await asyncio.wait_for(reader.readline(), 5)
            finally:
                writer.transport.abort()
            return int(line.split(b" ")[1])

    assert asyncio.run(main()) == 408


# -- token ----------------------------------------------------------------------------------


def test_token_guards_changes_but_not_reads() -> None:
    with echo_server() as upstream, ProxyThread() as chaos:
        db = chaos.add(upstream, name="db")
        control = chaos.serve_control((LOCAL, 0), token="s3cret")
        path = "/proxies/db/faults"
        assert request(control.address, "GET", path)[0] == 200
        status, _, response = request(control.address, "POST", path, {"blackhole": True})
        assert (status, response.getheader("WWW-Authenticate")) == (401, "Bearer")
        wrong = {"Authorization": "Bearer nope"}
        assert request(control.address, "DELETE", path, headers=wrong)[0] == 401
        assert not db.faults.blackhole
        right = {"Authorization": "Bearer s3cret"}
        assert request(control.address, "POST", path, {"blackhole": True}, right)[0] == 200
        assert db.faults.blackhole


# -- from asyncio ---------------------------------------------------------------------------


def test_control_server_serves_proxies_on_the_callers_event_loop() -> None:
    async def main() -> tuple[int, bool]:
        server = await asyncio.start_server(lambda r, w: w.close(), LOCAL, 0)
        upstream = server.sockets[0].getsockname()[:2]
        async with (
            ChaosProxy(upstream, name="api") as proxy,
            ControlServer([proxy], listen=(LOCAL, 0)) as control,
        ):
            status, _, _ = await asyncio.to_thread(
                request, control.address, "POST", "/proxies/api/faults", {"blackhole": True}
            )
            assert control.url == f"http://{LOCAL}:{control.address[1]}"
            blackhole = proxy.faults.blackhole
        server.close()
        await server.wait_closed()
        return status, blackhole

    assert asyncio.run(main()) == (200, True)


def test_control_server_configuration_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="loopback") as listen:
        ControlServer(listen=("0.0.0.0", 0))
    assert listen.value.field == "listen"
    for kwargs, field in [
        ({"token": ""}, "token"),
        ({"read_timeout": 0}, "read_timeout"),
        ({"max_body": 0}, "max_body"),
        ({"proxies": ["db"]}, "proxies"),
    ]:
        with pytest.raises(ConfigError) as bad:
            ControlServer(**kwargs)
        assert bad.value.field == field
    one = ChaosProxy((LOCAL, 1), name="same")
    with pytest.raises(ConfigError) as dup:
        ControlServer([one, ChaosProxy((LOCAL, 1), name="same")])
    assert dup.value.field == "name"


# -- any bytes: a JSON answer below 500 -----------------------------------------------------

_FIELDS = ["latency", "jitter", "direction", "blackhole", "reset", "refuse", "bandwidth"]
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5), st.lists(st.none())
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "get", "G T", ""]))
    path = draw(
        st.sampled_from(["/health", "/proxies", "/proxies/db", "/proxies/db/faults", "/x/%zz"])
        | st.text(max_size=20)
    )
    if draw(st.booleans()):
        body = json.dumps(draw(st.dictionaries(st.sampled_from([*_FIELDS, "x"]), _VALUES))).encode()
    else:
        body = draw(st.binary(max_size=64))
    headers = draw(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=3))
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    if draw(st.booleans()):
        lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


def test_any_request_gets_a_json_answer_below_500() -> None:
    with echo_server() as upstream, ProxyThread() as chaos:
        chaos.add(upstream, name="db")
        control = chaos.serve_control((LOCAL, 0))

        @settings(max_examples=150, deadline=None, database=None)
        @given(data=requests())
        def check(data: bytes) -> None:
            with socket.create_connection(control.address, timeout=5) as sock:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                answer = b""
                with contextlib.suppress(ConnectionResetError):  # unread body bytes: RST
                    while chunk := sock.recv(65536):
                        answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            status = int(head.split(b" ")[1])
            assert status < 500, answer
            assert isinstance(json.loads(body), dict)

        check()
