"""docs/api.md lists exactly what each public module exports, and the root stays small."""

from __future__ import annotations

import importlib
import pkgutil
import re
import warnings
from pathlib import Path

import pytest

import stalwart
import stalwart.events

API_MD = Path(__file__).resolve().parents[1] / "docs" / "api.md"

# Public modules that export no library API: the command line and the pytest plugin.
NOT_LIBRARY = {"stalwart.cli", "stalwart.pytest_plugin"}

ROOT_BUDGET = 45
"""The most names ``import stalwart`` may offer: every one a user reaches for first."""


def documented() -> dict[str, list[str]]:
    """Section ``## `module` `` of docs/api.md -> the names in its table, in order."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in API_MD.read_text().splitlines():
        heading = re.fullmatch(r"## `([\w.]+)`", line)
        if heading:
            current = sections.setdefault(heading.group(1), [])
        elif current is not None and (row := re.match(r"\| `(\w+)` \|", line)):
            current.append(row.group(1))
    return sections


def public_modules() -> list[str]:
    found = ["stalwart"]
    for info in pkgutil.iter_modules(stalwart.__path__, "stalwart."):
        leaf = info.name.rpartition(".")[2]
        if not leaf.startswith("_") and info.name not in NOT_LIBRARY:
            found.append(info.name)
    return sorted(found)


@pytest.mark.parametrize("module", public_modules())
def test_each_public_module_is_documented_name_by_name(module: str) -> None:
    exported = list(importlib.import_module(module).__all__)
    listed = documented().get(module)
    assert listed is not None, f"docs/api.md has no section ## `{module}`"
    missing = sorted(set(exported) - set(listed))
    stray = sorted(set(listed) - set(exported))
    assert not missing, f"{module} exports {missing}, not listed in docs/api.md"
    assert not stray, f"docs/api.md lists {stray} under {module}, which does not export them"
    assert len(listed) == len(set(listed)), f"a name is listed twice under {module}"


def test_docs_api_has_no_section_for_a_module_that_is_not_public() -> None:
    assert set(documented()) <= set(public_modules())


def test_the_root_offers_at_most_45_names() -> None:
    assert len(stalwart.__all__) <= ROOT_BUDGET, sorted(stalwart.__all__)
    assert set(stalwart.__all__) <= set(dir(stalwart))


def test_every_root_name_resolves() -> None:
    for name in stalwart.__all__:
        assert getattr(stalwart, name) is not None


MOVED = sorted(set(stalwart.events.__all__) - set(stalwart.__all__))
"""The event types that left the root (issue 15)."""


def test_the_event_types_left_the_root() -> None:
    assert len(MOVED) == 18
    assert {"StateTransition", "CallRejected", "RetryAttempt", "Event"} <= set(MOVED)
    assert {"add_listener", "remove_listener"} <= set(stalwart.__all__)


@pytest.mark.parametrize("name", MOVED)
def test_a_name_that_moved_still_imports_from_the_root_with_a_warning(name: str) -> None:
    with pytest.warns(DeprecationWarning, match=rf"stalwart\.{name} moved to stalwart\.events"):
        old = getattr(stalwart, name)
    assert old is getattr(stalwart.events, name)
    assert name not in stalwart.__all__
    assert name not in dir(stalwart)


def test_the_warning_points_at_the_users_import_line() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from stalwart import StateTransition  # noqa: F401
    # The import machinery asks twice (hasattr, then getattr): both point at this line.
    assert {(Path(w.filename).name, w.category) for w in caught} == {
        (Path(__file__).name, DeprecationWarning)
    }


def test_an_unknown_root_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nonexistent'"):
        stalwart.Nonexistent  # noqa: B018
