"""Protocol values to and from plain data (dicts, lists, str, bytes, numbers) for the channel layer."""

import dataclasses
from enum import Enum

from messaging.whatsapp import protocol

_TYPES = {
    name: obj
    for name, obj in vars(protocol).items()
    if isinstance(obj, type) and dataclasses.is_dataclass(obj)
}
TYPE_KEY = "__t"


def encode(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        data[TYPE_KEY] = type(value).__name__
        return data
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    return value


def decode(value):
    if isinstance(value, dict):
        name = value.get(TYPE_KEY)
        fields = {k: decode(v) for k, v in value.items() if k != TYPE_KEY}
        if name is None:
            return fields
        cls = _TYPES[name]
        hints = {f.name: f.type for f in dataclasses.fields(cls)}
        for key, hint in hints.items():
            enum_cls = getattr(protocol, hint, None) if isinstance(hint, str) else None
            if isinstance(enum_cls, type) and issubclass(enum_cls, Enum) and key in fields:
                fields[key] = enum_cls(fields[key])
        return cls(**fields)
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value
