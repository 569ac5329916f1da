"""How messages become frames and back: JSON by default, or raw text and bytes."""

from __future__ import annotations

import json
from typing import Any, Literal, TypeAlias

from .._errors import ConfigError

__all__ = ("CODECS", "Codec", "decode", "encode")

Codec: TypeAlias = Literal["json", "raw"]
CODECS: tuple[Codec, ...] = ("json", "raw")

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_loads = json.JSONDecoder().decode


def check(codec: Any) -> Codec:
    if codec not in CODECS:
        raise ConfigError("codec", f"must be one of {', '.join(CODECS)}, got {codec!r}")
    result: Codec = codec
    return result


def encode(codec: Codec, message: Any) -> str | bytes:
    """``json``: bytes go as a binary frame, anything else as JSON text. ``raw``: str or
    bytes only. A message that cannot be encoded raises TypeError here, in ``send``."""
    if isinstance(message, bytes | bytearray | memoryview):
        return bytes(message)
    if codec == "raw":
        if isinstance(message, str):
            return message
        raise TypeError(f"codec='raw' sends str or bytes, got {type(message).__name__}")
    try:
        return _dumps(message)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"message is not JSON-serializable: {exc}") from exc


def decode(codec: Codec, data: str | bytes) -> Any:
    """``json``: a text frame parsed as JSON (text that is not JSON is given as str);
    binary frames as bytes. ``raw``: as received."""
    if codec == "raw" or not isinstance(data, str):
        return data
    try:
        return _loads(data)
    except ValueError:
        return data


def size(data: str | bytes) -> int:
    """Bytes on the wire (payload only): UTF-8 length for text."""
    if isinstance(data, bytes):
        return len(data)
    return len(data) if data.isascii() else len(data.encode())
