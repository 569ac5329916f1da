"""Reading a YAML settings file: the errors every config loader gives the same way.

``stalwart serve``'s file and the supervisor's (seed 004) both read through here, so a
missing file, bad YAML and a misspelt key read alike: a ConfigError naming the key's path
and what is allowed there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._errors import ConfigError

__all__ = ("known_keys", "read_yaml")


def read_yaml(path: str | Path) -> Any:
    """The parsed contents of the YAML file at ``path`` (ConfigError if unreadable)."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("config", f"{path} is not valid YAML: {exc}") from exc


def known_keys(path: str, value: Any, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    """``value`` as a mapping whose keys are all in ``allowed`` (``path``: where it sits,
    ``"config"`` for the top level)."""
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"must be a mapping, got {value!r}")
    for key in value:
        if key not in allowed:
            where = f"{path}.{key}" if path != "config" else str(key)
            raise ConfigError(where, f"unknown key; allowed here: {', '.join(allowed)}")
    return value
