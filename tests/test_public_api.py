"""The public surface is small, deliberate and dependency-free."""

from __future__ import annotations

import subprocess
import sys

import pytest

import stalwart
import stalwart.chaos
import stalwart.events
import stalwart.health
import stalwart.http
import stalwart.journal
import stalwart.metrics
import stalwart.otel
import stalwart.poller
import stalwart.presets
import stalwart.pytest_plugin
import stalwart.redis
import stalwart.supervisor
import stalwart.testing
import stalwart.web


def _public_names(module: object) -> set[str]:
    return {
        name
        for name in vars(module)
        if not name.startswith("_")
        and getattr(getattr(module, name), "__module__", "").startswith("stalwart")
    }


def test_all_lists_exactly_the_public_names() -> None:
    assert isinstance(stalwart.__all__, tuple)
    for name in stalwart.__all__:  # the root loads its names on first use: load them all
        getattr(stalwart, name)
    assert set(stalwart.__all__) == _public_names(stalwart)
    assert set(stalwart.__all__) <= set(dir(stalwart))
    assert len(stalwart.__all__) == len(set(stalwart.__all__))
    assert set(stalwart.testing.__all__) == _public_names(stalwart.testing)
    for module in (
        stalwart.chaos,
        stalwart.events,
        stalwart.health,
        stalwart.http,
        stalwart.journal,
        stalwart.metrics,
        stalwart.otel,
        stalwart.poller,
        stalwart.pytest_plugin,
        stalwart.redis,
        stalwart.supervisor,
        stalwart.web,
    ):
        for name in module.__all__:  # stalwart.metrics loads PrometheusMetrics on first use
            getattr(module, name)
        assert set(module.__all__) == _public_names(module), module.__name__


def test_public_objects_come_from_private_modules() -> None:
    # The implementation lives in _modules; the root only re-exports.
    for name in stalwart.__all__:
        module = getattr(getattr(stalwart, name), "__module__", "")
        assert module.startswith("stalwart._"), (name, module)


def test_import_stalwart_imports_no_optional_dependency() -> None:
    code = (
        "import sys, stalwart, stalwart.testing, stalwart.chaos, stalwart.presets\n"
        "import stalwart.health, stalwart.web, stalwart.journal, stalwart.supervisor\n"
        "import stalwart.redis, stalwart.poller, stalwart.events\n"
        "std = sys.stdlib_module_names\n"
        "extra = sorted({m.split('.')[0] for m in sys.modules} - set(std)"
        " - {'stalwart', '__main__', '_distutils_hack', 'sitecustomize', 'usercustomize'})\n"
        "print(','.join(extra))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"import stalwart pulled in: {out}"


def test_package_is_typed() -> None:
    from importlib import resources

    assert resources.files("stalwart").joinpath("py.typed").is_file()


def test_import_stalwart_loads_its_parts_only_when_used() -> None:
    # The pytest plugin and the command line import stalwart on every start.
    code = (
        "import sys, stalwart\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('stalwart.'))\n"
        "from stalwart import CircuitBreaker\n"
        "print(','.join(loaded), CircuitBreaker.__module__, 'stalwart._breaker' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["stalwart._breaker", "True"]


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        stalwart.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
