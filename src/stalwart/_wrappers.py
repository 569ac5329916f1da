"""The decorator's wrapper: one template, compiled once per signature shape.

A wrapper written ``def wrapper(*args, **kwargs)`` pays on every call for packing the
arguments (a new dict each time) and for a call that CPython cannot inline; for a plain
``def`` that is a third of the breaker's closed-state overhead. So the wrapper of a plain
Python function takes the function's own parameters, in the same order and kinds, with
the same default objects, and passes them on as they came. Anything else (a builtin, a
``functools.partial``, a callable object) gets the same template with ``*args, **kwargs``.

The template below is the only definition of the wrapper, sync and async alike; the
drivers' full protocol (``run``/``permit``) is handed in, so this module imports none of
them. Each shape is compiled once and kept; decorating runs the compiled factory.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import linecache
import types
from collections.abc import Callable
from typing import Any

__all__ = ("build",)

_TEMPLATE = """\
def _s_make(_s_guard, _s_fn, _s_run, _s_permit):
    _s_successes = _s_guard._successes
    _s_rejections = _s_guard._rejections
    _s_rejection = _s_guard._Rejection
    _s_name = _s_guard.name

    {adef}def wrapper({params}):
        _s_ticket = _s_guard._fast
        if _s_ticket is None:
            if _s_guard._refusing:
                # Plainly open, nobody listening: count and raise right here, where the
                # user's call stands (each frame an exception crosses costs ~100 ns),
                # with the open period's countdown instead of a clock read.
                next(_s_rejections)
                raise _s_rejection(_s_name, _s_guard._remaining)
            return {aw}_s_run(_s_guard, _s_fn, _s_permit(_s_guard), {args}, {kwargs})
        # Closed, nobody timing calls: no clock read, no lock on success.
        try:
            _s_result = {aw}({call})
        except BaseException as _s_exc:
            _s_guard._settle_exception(_s_ticket, _s_exc, 0.0)
            raise
        next(_s_successes)
        if _s_guard._dirty:
            _s_guard._settle_success(_s_ticket, 0.0, counted=True)
        return _s_result

    return wrapper
"""

_GENERIC = {
    "params": "*args, **kwargs",
    # `fn(*args, **kwargs)` copies kwargs into a new dict on every call, even empty.
    "call": "_s_fn(*args, **kwargs) if kwargs else _s_fn(*args)",
    "args": "args",
    "kwargs": "kwargs",
}

_factories: dict[tuple[str, ...], Callable[..., Any]] = {}
_serial = itertools.count(1)


def build(
    guard: object,
    fn: Callable[..., Any],
    *,
    is_async: bool,
    run: Callable[..., Any],
    permit: Callable[[Any], int],
) -> Callable[..., Any]:
    """The wrapper of ``fn`` for ``guard``, with ``fn``'s own signature when it has one."""
    shape = _shape(fn)
    wrapper = _factory(shape or _GENERIC, is_async)(guard, fn, run, permit)
    if shape:
        # The same default objects: the code carries no defaults, the function does.
        wrapper.__defaults__ = fn.__defaults__
        kwdefaults = fn.__kwdefaults__
        wrapper.__kwdefaults__ = None if kwdefaults is None else dict(kwdefaults)
    return functools.wraps(fn)(wrapper)


def _shape(fn: object) -> dict[str, str] | None:
    """The template's fields for ``fn``'s own parameters, or None to use the generic ones."""
    if type(fn) is not types.FunctionType:
        return None
    code = fn.__code__
    positional = code.co_argcount
    keyword_only = code.co_kwonlyargcount
    names = list(code.co_varnames[: positional + keyword_only])
    star = names_end = positional + keyword_only
    rest = code.co_varnames[star] if code.co_flags & inspect.CO_VARARGS else None
    if rest is not None:
        names_end += 1
    extra = code.co_varnames[names_end] if code.co_flags & inspect.CO_VARKEYWORDS else None
    everyone = [*names, *(n for n in (rest, extra) if n is not None)]
    if any(n.startswith("_s_") for n in everyone):
        return None  # would shadow the template's own names
    leading, kwonly = names[:positional], names[positional:]
    params = list(leading)
    if code.co_posonlyargcount:
        params.insert(code.co_posonlyargcount, "/")
    if rest is not None:
        params.append(f"*{rest}")
    elif kwonly:
        params.append("*")
    params += kwonly
    if extra is not None:
        params.append(f"**{extra}")
    passed = [*leading, *([f"*{rest}"] if rest else [])]
    named = [f"{n}={n}" for n in kwonly] + ([f"**{extra}"] if extra else [])
    call_args = ", ".join(passed + named)
    args = "(" + "".join(f"{a}, " for a in passed) + ")" if passed else "()"
    kwargs = "{" + ", ".join([f"{n!r}: {n}" for n in kwonly] + ([f"**{extra}"] if extra else []))
    return {
        "params": ", ".join(params),
        "call": f"_s_fn({call_args})",
        "args": args,
        "kwargs": kwargs + "}",
    }


def _factory(shape: dict[str, str], is_async: bool) -> Callable[..., Any]:
    key = (shape["params"], shape["call"], str(is_async))
    made = _factories.get(key)
    if made is None:
        source = _TEMPLATE.format(
            adef="async " if is_async else "", aw="await " if is_async else "", **shape
        )
        # A file name of its own, with the source in linecache: tracebacks through the
        # wrapper show its lines like any other code's.
        filename = f"<stalwart wrapper {next(_serial)}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace: dict[str, Any] = {}
        exec(compile(source, filename, "exec"), namespace)  # our own template, our own fields
        made = _factories.setdefault(key, namespace["_s_make"])
    return made
