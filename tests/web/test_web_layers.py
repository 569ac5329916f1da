"""stalwart.web's modules import one way: transports -> routes -> renderers -> HTTP model.

Every import counts, lazy ones inside functions and ``TYPE_CHECKING`` ones included, so
each module can be read knowing only the layers below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import stalwart.web

WEB = Path(stalwart.web.__file__).parent
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"_core", "_sources"}),  # the HTTP model; where breakers come from
    frozenset({"_openapi", "_stream", "_dashboard"}),  # renderers: documents, events, files
    frozenset({"_routes"}),  # OpsCore and the route table
    frozenset({"_asgi", "_guards"}),  # the ASGI app; guards for the user's own routes
    frozenset({"_flask"}),  # the blueprint (it can build the ASGI app's core)
    frozenset({"__init__"}),
)
RANK = {module: rank for rank, layer in enumerate(LAYERS) for module in layer}


def web_imports(source: str, module: str) -> set[str]:
    """The other ``stalwart.web`` modules that ``source`` (of the module ``module``) imports."""
    imported: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            # Relative to a module of stalwart/web/: level 1 is stalwart.web, 2 is stalwart.
            base = ["", "stalwart.web", "stalwart"][node.level] if node.level <= 2 else ""
            full = ".".join(part for part in (base, node.module) if part)
            # Each name is a submodule of ``full`` or one of its attributes.
            for alias in node.names:
                sub = f"{full}.{alias.name}"
                imported.append(sub if full in ("stalwart", "stalwart.web") else full)
    found: set[str] = set()
    for name in imported:
        parts = name.split(".")
        if parts[:2] != ["stalwart", "web"]:
            continue
        # A name that is not a module (``from stalwart.web import ops_app``) is __init__'s.
        target = parts[2] if len(parts) > 2 and parts[2] in RANK else "__init__"
        if target != module:
            found.add(target)
    return found


def upward(module: str, source: str) -> list[str]:
    """The imports in ``source`` that go to ``module``'s own layer or above."""
    return sorted(name for name in web_imports(source, module) if RANK[name] >= RANK[module])


def test_every_web_module_has_a_layer() -> None:
    modules = {path.stem for path in WEB.glob("*.py")}
    assert modules == set(RANK)


@pytest.mark.parametrize("module", sorted(RANK))
def test_no_web_module_imports_its_own_layer_or_one_above(module: str) -> None:
    source = (WEB / f"{module}.py").read_text()
    assert upward(module, source) == []


@pytest.mark.parametrize(
    "source",
    [
        "from ._routes import OpsCore",
        "def f():\n    from ._openapi import openapi",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ._asgi import OpsApp",
        "from . import _stream",
        "import stalwart.web._asgi",
        "from stalwart.web._stream import EventStream",
        "from ..web._routes import ROUTES",
        "from .. import web",
        "from stalwart.web import ops_app",
    ],
)
def test_an_upward_import_in_the_model_is_caught_wherever_it_hides(source: str) -> None:
    assert upward("_core", source) != []


def test_the_model_may_import_the_rest_of_stalwart() -> None:
    source = "from .._errors import ConfigError\nfrom ..web_extras import x\nimport json"
    assert upward("_core", source) == []
