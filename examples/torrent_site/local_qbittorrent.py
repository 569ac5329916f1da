"""A throw-away qbittorrent-nox for trying the site and for its tests: no network, no setup.

``running_qbittorrent()`` writes a fresh profile (legal notice accepted, Web UI login set,
every kind of discovery and download off, BitTorrent bound to loopback), starts Debian's
``qbittorrent-nox`` headless on a free loopback port, waits until its Web API accepts the
login, and stops it (and removes the profile) at the end. ``make_torrent()`` writes a small
file and a matching .torrent with no trackers, so adding it contacts nobody.

    apt-get install -y --no-install-recommends qbittorrent-nox    # once
    python local_qbittorrent.py                                   # runs one until Ctrl-C
"""

from __future__ import annotations

import base64
import hashlib
import http.cookiejar
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

LOCAL = "127.0.0.1"
QBITTORRENT_USER = "stalwart"
QBITTORRENT_PASSWORD = "stalwart-e2e-secret"
PBKDF2 = ("sha512", 100_000, 16, 64)
"""qBittorrent's Web UI password hash (``Utils::Password::PBKDF2``): digest, iterations, salt
and key bytes; stored as ``@ByteArray(<b64 salt>:<b64 key>)``."""
PIECE_LENGTH = 16 * 1024
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class QbittorrentMissing(RuntimeError):
    """qbittorrent-nox is not installed."""


@dataclass(frozen=True, slots=True)
class QbittorrentServer:
    host: str
    port: int
    """The Web UI's port, on 127.0.0.1 only."""
    username: str
    password: str
    profile: Path
    """The throw-away ``--profile`` directory: config, state, log, and ``downloads/``."""

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the Web UI, and the Web API under ``/api/v2``."""
        return f"http://{self.host}:{self.port}"


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick for 127.0.0.1:0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCAL, 0))
        port: int = sock.getsockname()[1]
        return port


def qbittorrent_binary() -> str:
    path = shutil.which("qbittorrent-nox")
    if path is None:
        raise QbittorrentMissing(
            "qbittorrent-nox is not installed: apt-get install -y --no-install-recommends "
            "qbittorrent-nox (./scripts/check installs it for the tests)"
        )
    return path


def _qbittorrent_password(password: str) -> str:
    """The ``WebUI\\Password_PBKDF2`` value qBittorrent itself would store for ``password``."""
    digest, iterations, salt_bytes, key_bytes = PBKDF2
    salt = os.urandom(salt_bytes)
    key = hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations, key_bytes)
    return f"@ByteArray({base64.b64encode(salt).decode()}:{base64.b64encode(key).decode()})"


def _qbittorrent_conf(profile: Path, web_port: int, torrent_port: int) -> str:
    """The profile's ``qBittorrent.conf`` (QSettings INI: ``\\`` separates key levels)."""
    downloads = profile / "downloads"
    password = _qbittorrent_password(QBITTORRENT_PASSWORD)
    sections = {
        # Accepted beforehand: qbittorrent-nox would otherwise ask on a terminal.
        "LegalNotice": {"Accepted": "true"},
        "Preferences": {
            "WebUI\\Address": LOCAL,
            "WebUI\\Port": str(web_port),
            "WebUI\\Username": QBITTORRENT_USER,
            "WebUI\\Password_PBKDF2": f'"{password}"',
            # Loopback clients log in too (the default), so a wrong password is refused.
            "WebUI\\LocalHostAuth": "true",
            # A client behind a proxy on another port sends that port in Host, which the
            # validation refuses (401); API clients send no Origin or Referer, which the
            # CSRF check lets through, so it stays on.
            "WebUI\\HostHeaderValidation": "false",
            "WebUI\\CSRFProtection": "true",
            # 0: never ban. The default bans the IP (all of loopback) after 5 failed logins.
            "WebUI\\MaxAuthenticationFailCount": "0",
            "WebUI\\UseUPnP": "false",
            # The GeoIP database would be downloaded from db-ip.com at start.
            "Connection\\ResolvePeerCountries": "false",
            "Advanced\\updateCheck": "false",
            "DynDNS\\Enabled": "false",
            "MailNotification\\enabled": "false",
        },
        "BitTorrent": {
            # Listen and connect out on 127.0.0.1 only: nothing leaves the machine.
            "Session\\Port": str(torrent_port),
            "Session\\Interface": "lo",
            "Session\\InterfaceName": "lo",
            "Session\\InterfaceAddress": LOCAL,
            "Session\\DHTEnabled": "false",
            "Session\\PeXEnabled": "false",
            "Session\\LSDEnabled": "false",
            "Session\\AnonymousModeEnabled": "false",
            "Session\\AddTrackersEnabled": "false",
            # A new profile gets the queue on: an added torrent would wait for a slot.
            "Session\\QueueingSystemEnabled": "false",
            "Session\\DefaultSavePath": str(downloads),
            "Session\\TempPath": str(downloads / "temp"),
            "TrackerEnabled": "false",
        },
        "Network": {"PortForwardingEnabled": "false"},  # UPnP/NAT-PMP for the torrent port
        "RSS": {"Session\\EnableProcessing": "false", "AutoDownloader\\EnableProcessing": "false"},
        # Its log file next to the profile's config: the one _wait_ready tails on failure.
        "Application": {"FileLogger\\Enabled": "true", "FileLogger\\Path": str(profile)},
    }
    return "\n".join(
        f"[{section}]\n" + "".join(f"{key}={value}\n" for key, value in keys.items())
        for section, keys in sections.items()
    )


def _qbittorrent_ready(url: str) -> Callable[[], bool]:
    """Ready once a login with the configured password is accepted and the Web API answers
    ``/api/v2/app/version`` with the session cookie (stdlib HTTP: one attempt each, 1 s)."""

    def ready() -> bool:
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        form = {"username": QBITTORRENT_USER, "password": QBITTORRENT_PASSWORD}
        try:
            with opener.open(
                f"{url}/api/v2/auth/login", urllib.parse.urlencode(form).encode(), 1
            ) as r:
                if r.read() != b"Ok.":
                    return False
            with opener.open(f"{url}/api/v2/app/version", timeout=1) as r:
                return r.read().startswith(b"v")
        except (urllib.error.URLError, OSError):
            return False

    return ready


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (it saves its state and exits in milliseconds), SIGKILL after STOP_TIMEOUT."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)


@contextmanager
def running_qbittorrent() -> Iterator[QbittorrentServer]:
    """A private qbittorrent-nox with a throw-away profile, its Web UI on a free loopback port
    (username/password login), no network use; stopped and its profile removed on exit."""
    binary = qbittorrent_binary()
    profile = Path(tempfile.mkdtemp(prefix="stalwart-qbittorrent-"))
    try:
        web_port, torrent_port = free_port(), free_port()
        config = profile / "qBittorrent" / "config"
        config.mkdir(parents=True)
        (config / "qBittorrent.conf").write_text(
            _qbittorrent_conf(profile, web_port, torrent_port), encoding="utf-8"
        )
        (profile / "downloads").mkdir()
        # The file logger appends to this file too: O_APPEND on both sides keeps whole lines.
        log = profile / "qbittorrent.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [binary, f"--profile={profile}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=profile,
            )
        try:
            url = f"http://{LOCAL}:{web_port}"
            ready = _qbittorrent_ready(url)
            deadline = time.monotonic() + START_TIMEOUT
            while not ready():  # each round is one login attempt (1 s timeout)
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"qbittorrent-nox did not come up on {url}:\n{_tail(log)}")
                time.sleep(0.05)
            yield QbittorrentServer(
                LOCAL, web_port, QBITTORRENT_USER, QBITTORRENT_PASSWORD, profile
            )
        finally:
            _stop(process)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _bencode(value: object) -> bytes:
    """BitTorrent's encoding, for what a .torrent holds: integers, strings, lists, dicts."""
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(_bencode(item) for item in value) + b"e"
    if isinstance(value, dict):
        items = sorted((str(key).encode(), item) for key, item in value.items())  # as bytes
        return b"d" + b"".join(_bencode(key) + _bencode(item) for key, item in items) + b"e"
    raise TypeError(f"bencode has no form for {type(value).__name__}")


def make_torrent(directory: Path, name: str = "stalwart-sample.bin", size: int = 64 * 1024) -> Path:
    """Write ``directory/name`` (``size`` bytes, the same ones every run) and a matching
    single-file ``directory/name.torrent``; return the .torrent's path.

    No announce URL and no trackers, so a client that adds it contacts nobody; added with
    ``save_path=directory``, its hash check finds the data complete.
    """
    blocks, made = [], 0
    while made < size:  # SHA-256 of a counter: deterministic, and not all alike
        blocks.append(hashlib.sha256(f"{name}:{len(blocks)}".encode()).digest())
        made += len(blocks[-1])
    data = b"".join(blocks)[:size]
    (directory / name).write_bytes(data)
    pieces = b"".join(
        hashlib.sha1(data[start : start + PIECE_LENGTH]).digest()
        for start in range(0, size, PIECE_LENGTH)
    )
    info: dict[str, object] = {
        "name": name,
        "piece length": PIECE_LENGTH,
        "pieces": pieces,
        "length": size,
    }
    torrent = directory / f"{name}.torrent"
    torrent.write_bytes(_bencode({"info": info}))
    return torrent


def main() -> int:
    with running_qbittorrent() as server:
        torrent = make_torrent(server.profile / "downloads")
        print(f"qbittorrent-nox: {server.url}  user {server.username}  password {server.password}")
        print(f"a sample torrent to add: {torrent}  (Ctrl-C stops and removes everything)")
        with suppress(KeyboardInterrupt):
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main())
