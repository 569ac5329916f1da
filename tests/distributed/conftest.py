"""Stores on the session's real redis-server, each test in a namespace of its own."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from servers import RedisServer
from stalwart.redis import RedisStore

MakeStore = Callable[..., RedisStore]
_NAMESPACES = itertools.count()


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    return f"t{next(_NAMESPACES)}-{request.node.name[:40]}".replace("[", "-").replace("]", "")


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """The application's own client, as a user would make it."""
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def make_store(client: redis.Redis, namespace: str) -> Iterator[MakeStore]:
    """``make_store(**options)``: one more "process" on the same namespace; all closed at
    the end of the test."""
    made: list[RedisStore] = []

    def make(**options: Any) -> RedisStore:
        options.setdefault("namespace", namespace)
        store = RedisStore(options.pop("client", client), **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
