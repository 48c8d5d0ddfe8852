"""A model's JSON, byte for byte what pydantic's `model_dump_json` writes (with or without
`exclude_defaults` and `by_alias`), at about half its cost (bench/encoding.py).

A changed customer state is encoded at every commit that changed it (and the Quix contender
encodes one per record): pydantic took ~9 µs for the ~550 bytes of a typical state, most of it
walking ~45 fields to find the ~10 not at their default. Actions and profiles, every field
written, go out once each. Here each model's fields become one straight-line Python function,
compiled once (as `dataclasses` builds `__init__`): it reads each field, skips it when at its
default, converts what orjson cannot write as pydantic does (bytes as base64, nested models the
same way) and leaves the rest to orjson (~2 µs for the document).

Only the field types remarket's models use are known; any other makes the encoder raise when the
model is compiled, at import, so a new field of a new kind cannot be written wrong. tests/unit/
domain/test_model_json.py holds every field to pydantic's bytes.
"""
from __future__ import annotations

import base64
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, NamedTuple

import orjson
from pydantic import AwareDatetime, BaseModel, PlainSerializer, WrapSerializer
from pydantic_core import PydanticUndefined

# orjson writes a UTC time with "Z", other offsets as "+05:30", and microseconds only when there
# are some: as pydantic does. An offset with seconds (a few zones' local mean time before ~1972;
# the state's times are UTC or parsed from ISO offsets) pydantic truncates and orjson rounds.
JSON_OPTIONS = orjson.OPT_UTC_Z
_AS_IS = (int, str, bool, type(None), datetime, AwareDatetime)  # orjson writes them as pydantic does
_FALSY_DEFAULTS = (int, float, str, bytes, bool, tuple)  # at its default exactly when falsy


def compact_encoder(model: type[BaseModel], *, fields_as_json: Mapping[str, Callable[[Any], Any]] = {}
                    ) -> Callable[[BaseModel], bytes]:
    """`model_dump_json(exclude_defaults=True, by_alias=True)`: how states and held events are stored."""
    return json_encoder(model, exclude_defaults=True, by_alias=True, fields_as_json=fields_as_json)


def json_encoder(model: type[BaseModel], *, exclude_defaults: bool = False, by_alias: bool = False,
                 fields_as_json: Mapping[str, Callable[[Any], Any]] = {}) -> Callable[[BaseModel], bytes]:
    """The encoder of `model`, writing as `model_dump_json` with these arguments (and their defaults).
    `fields_as_json` names fields written by a function of their value instead (one that returns an
    `orjson.Fragment` of JSON made elsewhere, say); such a field is still left out at its default.
    Falls back to pydantic for a value orjson refuses (an int beyond 64 bits): slower, never
    wrong. The bytes returned hold orjson's ~4 KiB buffer whatever their length: copy them
    (`bytes(memoryview(...))`) before keeping them for long."""
    to_dict = _compile(model, _Style(exclude_defaults, by_alias), fields_as_json)

    def encode(instance: BaseModel) -> bytes:
        try:
            return orjson.dumps(to_dict(instance), option=JSON_OPTIONS)
        except orjson.JSONEncodeError:
            return instance.model_dump_json(exclude_defaults=exclude_defaults, by_alias=by_alias).encode()

    return encode


class _Style(NamedTuple):
    exclude_defaults: bool
    by_alias: bool


def _compile(model: type[BaseModel], style: _Style, fields_as_json: Mapping[str, Callable[[Any], Any]] = {}
             ) -> Callable[[BaseModel], dict[str, Any]]:
    decorators = model.__pydantic_decorators__
    if decorators.field_serializers or decorators.model_serializers:
        raise TypeError(f"{model.__name__}: serializers of its own are not known to model_json")
    names: dict[str, Any] = {}  # what the generated function refers to: defaults, converters
    lines = [f"def {model.__name__}_json(instance):", "    fields = instance.__dict__", "    out = {}"]
    for index, (name, info) in enumerate(model.model_fields.items()):
        if name in fields_as_json:
            names[f"as_json_{index}"] = fields_as_json[name]
            value = f"as_json_{index}(value)"
        else:
            where = f"{model.__name__}.{name}"
            _refuse_serializers(info.metadata, where)
            value = _converted("value", info.annotation, model, style, names, where)
        lines.append(f"    value = fields[{name!r}]")
        key = (info.alias or name) if style.by_alias else name
        at_default = _default_test(info, index, names) if style.exclude_defaults else None
        if at_default is None:
            lines.append(f"    out[{key!r}] = {value}")
        else:
            lines.append(f"    if not ({at_default}):")
            lines.append(f"        out[{key!r}] = {value}")
    lines.append("    return out")
    exec("\n".join(lines), names)  # noqa: S102 - source built above from the model's own field names
    return names[f"{model.__name__}_json"]


def _default_test(info: Any, index: int, names: dict[str, Any]) -> str | None:
    """An expression true when `value` equals the field's default (pydantic's test), or None
    when the field has no default (always written)."""
    if info.default_factory is not None:
        default = info.default_factory()
        if default:
            raise TypeError(f"a default factory returning {default!r}: only empty containers are known")
        return "not value"  # an empty list or dict
    if info.default is PydanticUndefined:
        return None
    if info.default is None:
        return "value is None"
    if type(info.default) in _FALSY_DEFAULTS and not info.default:
        return "not value"
    names[f"default_{index}"] = info.default
    return f"value == default_{index}"


def _converted(value: str, annotation: Any, owner: type[BaseModel], style: _Style, names: dict[str, Any],
               where: str, depth: int = 0) -> str:
    """The expression that turns `value` (of `annotation`) into what orjson writes as pydantic would."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    item = f"item{depth}"
    if annotation in _AS_IS or origin is typing.Literal or (
            isinstance(annotation, type) and issubclass(annotation, Enum)):
        return value
    if annotation is float:  # the core may assign an int (3): pydantic writes 3.0
        return f"float({value})"
    if annotation is bytes:
        if owner.model_config.get("ser_json_bytes") != "base64":
            raise TypeError(f"{where}: bytes are only known written as base64 (ser_json_bytes='base64')")
        names["urlsafe_b64encode"] = base64.urlsafe_b64encode
        return f"urlsafe_b64encode({value}).decode()"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        encoder = f"json_of_{annotation.__name__}"
        names.setdefault(encoder, _compile(annotation, style))
        return f"{encoder}({value})"
    if origin is typing.Annotated:  # constraints and validators: written as the type they annotate
        _refuse_serializers(annotation.__metadata__, where)
        return _converted(value, args[0], owner, style, names, where, depth)
    if origin in (typing.Union, types.UnionType):
        present = [arg for arg in args if arg is not type(None)]
        if len(present) == 1:
            inner = _converted(value, present[0], owner, style, names, where, depth)
            return value if inner == value else f"(None if {value} is None else {inner})"
    elif origin is dict and args[0] is str:
        inner = _converted(item, args[1], owner, style, names, where, depth + 1)
        return value if inner == item else f"{{key{depth}: {inner} for key{depth}, {item} in {value}.items()}}"
    elif origin is list or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        inner = _converted(item, args[0], owner, style, names, where, depth + 1)
        return value if inner == item else f"[{inner} for {item} in {value}]"
    raise TypeError(f"{where}: {annotation!r} is not a type model_json knows how to write as pydantic does")


def _refuse_serializers(metadata: Any, where: str) -> None:
    if any(isinstance(item, (PlainSerializer, WrapSerializer)) for item in metadata):
        raise TypeError(f"{where}: a serializer of its own is not known to model_json")
