"""Plain values to JSON and back, checked against their type (no I/O).

The admin protocol carries the server's own frozen dataclasses (``Snapshot``, ``AliasRule``,
events, the views in ``views.py``). ``dump`` turns one into JSON-ready data; ``load`` builds it
again from the type annotation, checking every field, so a reply that does not fit the type is
a ``ValueError`` at the boundary rather than an ``AttributeError`` somewhere in a pane.

Supported: ``int``, ``float``, ``str``, ``bool``, ``None``, ``X | None`` (and other unions of
these), ``list[X]``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``dict[str, X]`` and dataclasses whose
fields are all of these. Unknown keys in an object are ignored (a newer server may add fields
within a protocol version); missing fields without a default are an error.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any

__all__ = ["dump", "load"]


def dump(value: object) -> Any:
    """``value`` as data ``json.dumps`` accepts: dataclasses become objects, tuples lists."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} cannot be sent (JSON has no infinities)")
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: dump(getattr(value, f.name)) for f in dataclasses.fields(value) if not f.name.startswith("_")}
    if isinstance(value, (list, tuple)):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {str(k): dump(v) for k, v in value.items()}
    raise TypeError(f"cannot send a {type(value).__name__}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def load(tp: Any, data: Any, where: str = "value") -> Any:
    """Build a ``tp`` from ``data`` (parsed JSON). Raises ValueError naming the bad place."""
    if tp is Any:
        return data
    if tp is type(None) or tp is None:
        if data is not None:
            raise ValueError(f"{where}: expected null")
        return None
    if tp is bool:
        if not isinstance(data, bool):
            raise ValueError(f"{where}: expected true or false")
        return data
    if tp is int:
        # JSON's true is a Python bool, which is an int: refuse it where a number belongs.
        if not isinstance(data, int) or isinstance(data, bool):
            raise ValueError(f"{where}: expected an integer")
        return data
    if tp is float:
        if not isinstance(data, (int, float)) or isinstance(data, bool):
            raise ValueError(f"{where}: expected a number")
        return float(data)
    if tp is str:
        if not isinstance(data, str):
            raise ValueError(f"{where}: expected a string")
        return data
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        for option in typing.get_args(tp):
            try:
                return load(option, data, where)
            except ValueError:
                continue
        raise ValueError(f"{where}: matches none of {tp}")
    if origin in (list, tuple):
        if not isinstance(data, list):
            raise ValueError(f"{where}: expected a list")
        args = typing.get_args(tp)
        if origin is list:
            return [load(args[0], v, f"{where}[{i}]") for i, v in enumerate(data)]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(load(args[0], v, f"{where}[{i}]") for i, v in enumerate(data))
        if len(args) != len(data):
            raise ValueError(f"{where}: expected {len(args)} items")
        return tuple(load(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, data)))
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        if key_type is not str or not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object")
        return {k: load(value_type, v, f"{where}.{k}") for k, v in data.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object for {tp.__name__}")
        hints = _hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name.startswith("_") or not f.init:
                continue
            if f.name in data:
                kwargs[f.name] = load(hints[f.name], data[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}: {tp.__name__} lacks {f.name!r}")
        return tp(**kwargs)
    raise TypeError(f"{where}: cannot load a {tp!r}")
