"""A real headless qBittorrent (``qbittorrent-nox``) driven by the qbittorrent-api client.

The server is a private instance for this module (``local_qbittorrent.py``): a throw-away profile,
its Web UI on a free loopback port, no network use. The torrent is made locally with its data
next to it, so adding it with that save path only runs the hash check; nothing is downloaded.
Waits are bounded loops on the Web API's answers: each round is one real HTTP request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import local_qbittorrent
import pytest
import qbittorrentapi
from local_qbittorrent import LOCAL, QbittorrentServer

pytestmark = pytest.mark.e2e

T = TypeVar("T")
TIMEOUT = (3.0, 5.0)
"""(connect, read) seconds for each HTTP request the client makes."""
WAIT = 15.0


@pytest.fixture(scope="module")
def qbittorrent() -> Iterator[QbittorrentServer]:
    with local_qbittorrent.running_qbittorrent() as server:
        yield server


def client(server: QbittorrentServer, password: str | None = None) -> qbittorrentapi.Client:
    return qbittorrentapi.Client(
        host=server.host,
        port=server.port,
        username=server.username,
        password=server.password if password is None else password,
        REQUESTS_ARGS={"timeout": TIMEOUT},
    )


def until(probe: Callable[[], T | None], what: str, within: float = WAIT) -> T:
    """Ask ``probe`` again until it returns something; fail after ``within`` seconds. Paced by
    the probe's own request to the server, not by a sleep."""
    deadline = time.monotonic() + within
    while (found := probe()) is None:
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
    return found


def test_logs_in_and_answers_the_web_api(qbittorrent: QbittorrentServer) -> None:
    qbt = client(qbittorrent)
    qbt.auth_log_in()
    assert qbt.app_version().startswith("v4.")
    assert qbt.is_logged_in
    qbt.auth_log_out()


def test_uses_no_network(qbittorrent: QbittorrentServer) -> None:
    """The profile's settings took: BitTorrent on loopback only, and no discovery, port
    mapping, GeoIP download or RSS."""
    qbt = client(qbittorrent)
    qbt.auth_log_in()
    prefs = qbt.app_preferences()
    assert prefs["web_ui_address"] == LOCAL
    assert (prefs["current_network_interface"], prefs["current_interface_address"]) == (
        "lo",
        LOCAL,
    )
    assert not any(prefs[key] for key in ("dht", "pex", "lsd", "upnp", "web_ui_upnp"))
    assert not prefs["resolve_peer_countries"]
    assert not prefs["rss_processing_enabled"]
    assert not prefs["rss_auto_downloading_enabled"]
    assert Path(prefs["save_path"]).is_relative_to(qbittorrent.profile)
    qbt.auth_log_out()


def test_adds_a_local_torrent_and_finds_its_data_complete(
    qbittorrent: QbittorrentServer, tmp_path: Path
) -> None:
    torrent = local_qbittorrent.make_torrent(tmp_path)
    data = tmp_path / "stalwart-sample.bin"
    qbt = client(qbittorrent)
    qbt.auth_log_in()
    assert qbt.torrents_add(torrent_files=str(torrent), save_path=str(tmp_path)) == "Ok."

    def listed() -> qbittorrentapi.TorrentDictionary | None:
        found = [t for t in qbt.torrents_info() if t.name == data.name]
        return found[0] if found else None

    entry = until(listed, "the added torrent listed")
    assert entry.size == data.stat().st_size == 64 * 1024
    assert Path(entry.save_path) == tmp_path

    def checked() -> qbittorrentapi.TorrentDictionary | None:
        done = qbt.torrents_info(torrent_hashes=entry.hash)
        return done[0] if done and done[0].progress == 1.0 else None

    complete = until(checked, "the hash check finding all pieces")
    assert complete.amount_left == 0
    qbt.torrents_delete(delete_files=False, torrent_hashes=entry.hash)
    until(lambda: None if listed() else True, "the torrent removed")
    assert data.exists()  # removed from the client, the data kept
    qbt.auth_log_out()


def test_a_wrong_password_is_refused(qbittorrent: QbittorrentServer) -> None:
    qbt = client(qbittorrent, password="not-the-password")
    with pytest.raises(qbittorrentapi.LoginFailed):
        qbt.auth_log_in()
    with pytest.raises(qbittorrentapi.LoginFailed):
        qbt.app_preferences()  # refused (403), so the client logs in again: refused too
