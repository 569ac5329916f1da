"""Seed 004's YAML: read as the seed writes it, and every mistake named by its key."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from stalwart import ConfigError, presets
from stalwart.supervisor import Supervisor, load_config, parse_config

SEED_YAML = """
server:
  url: "https://adb.example.com"
  path: /api/v1/pc/ws
  fallback_urls:
    - "https://backup1.example.com"
    - "wss://backup2.example.com/other"
    - "http://192.168.1.100:8000"

connection:
  heartbeat_interval: 30
  connect_timeout: 30
  max_reconnect_delay: 60
  initial_reconnect_delay: 1
"""


def test_the_seed_file_loads_as_written(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(SEED_YAML, encoding="utf-8")
    config = load_config(path)
    assert config.endpoints == (
        "wss://adb.example.com/api/v1/pc/ws",
        "wss://backup1.example.com/api/v1/pc/ws",
        "wss://backup2.example.com/other",  # its own path wins
        "ws://192.168.1.100:8000/api/v1/pc/ws",
    )
    assert config.options["heartbeat_interval"] == 30.0
    assert config.options["connect_timeout"] == 30.0
    backoff = config.options["backoff"]
    assert (backoff.base_delay, backoff.max_delay, backoff.multiplier) == (1, 60, 2.0)
    assert all(
        0 < d <= 60 for d in itertools.islice(backoff.delays(), 20)
    )  # jittered, never past the cap
    sup = config.supervisor(name="agent")
    assert isinstance(sup, Supervisor)
    assert sup.settings.endpoints == config.endpoints
    assert sup.settings.connect_timeout == 30.0


def test_no_reconnect_keys_means_the_grpc_preset() -> None:
    config = parse_config({"server": {"url": "ws://127.0.0.1:9/ws"}})
    assert config.options["backoff"] is presets.GRPC
    assert config.endpoints == ("ws://127.0.0.1:9/ws",)


def test_a_zero_jitter_gives_the_seed_series_exactly() -> None:
    config = parse_config(
        {
            "server": {"url": "ws://h/ws"},
            "connection": {"initial_reconnect_delay": 1, "reconnect_jitter": 0},
        }
    )
    assert list(itertools.islice(config.options["backoff"].delays(), 8)) == [
        1,
        2,
        4,
        8,
        16,
        32,
        60,
        60,
    ]


def test_the_supervisor_settings_sit_under_connection() -> None:
    config = parse_config(
        {
            "server": {"url": "ws://h/ws"},
            "connection": {
                "dead_after": 90,
                "ping_interval": None,
                "close_timeout": 2,
                "max_buffer": 10,
                "overflow": "drop_oldest",
            },
        }
    )
    sup = config.supervisor(max_inbox=5)
    s = sup.settings
    assert (s.dead_after, s.ping_interval, s.close_timeout) == (90.0, None, 2.0)
    assert (s.max_buffer, s.overflow, s.max_inbox) == (10, "drop_oldest", 5)


@pytest.mark.parametrize(
    ("data", "field", "says"),
    [
        ({"server": {"url": "ws://h/"}, "conection": {}}, "conection", "unknown key"),
        ({"connection": {}}, "server", "required"),
        ({"server": {"fallback_urls": []}}, "server.url", "required"),
        ({"server": {"url": "ws://h/", "fallbacks": []}}, "server.fallbacks", "allowed here"),
        ({"server": {"url": "ftp://h/"}}, "server.url", "ws://"),
        (
            {"server": {"url": "ws://h/", "fallback_urls": ["nohost"]}},
            "server.fallback_urls[0]",
            "",
        ),
        ({"server": {"url": "ws://h:99999/"}}, "server.url", "Port"),
        (
            {"server": {"url": "ws://h/", "fallback_urls": "ws://b/"}},
            "server.fallback_urls",
            "list",
        ),
        (
            {"server": {"url": "ws://h/", "fallback_urls": ["ws://h/"]}},
            "server.fallback_urls[0]",
            "twice",
        ),
        ({"server": {"url": "ws://h", "path": "api"}}, "server.path", "'/'"),
        (
            {"server": {"url": "ws://h/"}, "connection": {"heartbeat_intervall": 30}},
            "connection.heartbeat_intervall",
            "heartbeat_interval",
        ),
        (
            {"server": {"url": "ws://h/"}, "connection": {"heartbeat_interval": -5}},
            "connection.heartbeat_interval",
            "> 0",
        ),
        (
            {"server": {"url": "ws://h/"}, "connection": {"connect_timeout": "30s"}},
            "connection.connect_timeout",
            "",
        ),
        (
            {"server": {"url": "ws://h/"}, "connection": {"connect_timeout": None}},
            "connection.connect_timeout",
            "",
        ),
        (
            {"server": {"url": "ws://h/"}, "connection": {"initial_reconnect_delay": -1}},
            "connection.initial_reconnect_delay",
            "",
        ),
        (
            {
                "server": {"url": "ws://h/"},
                "connection": {"initial_reconnect_delay": 10, "max_reconnect_delay": 5},
            },
            "connection.max_reconnect_delay",
            ">=",
        ),
        (
            {"server": {"url": "ws://h/"}, "connection": {"reconnect_multiplier": 0.5}},
            "connection.reconnect_multiplier",
            ">= 1",
        ),
        (
            {"server": {"url": "ws://h/"}, "connection": {"reconnect_jitter": 2}},
            "connection.reconnect_jitter",
            "fraction",
        ),
        (
            {"server": {"url": "ws://h/"}, "connection": {"overflow": "block"}},
            "connection.overflow",
            "reject",
        ),
        (
            {"server": {"url": "ws://h/"}, "connection": {"max_buffer": -1}},
            "connection.max_buffer",
            "",
        ),
        (
            {
                "server": {"url": "ws://h/"},
                "connection": {"ping_interval": None, "ping_timeout": 3},
            },
            "connection.ping_timeout",
            "ping_interval",
        ),
        ([1, 2], "config", "mapping"),
    ],
)
def test_mistakes_name_the_key(data: object, field: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.field == field
    assert says in caught.value.problem


def test_an_unreadable_or_invalid_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
