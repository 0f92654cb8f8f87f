"""Where OpenAI's strict Structured Outputs reject a JSON schema, with OpenAI's wording.

The rules of OpenAI's "Supported schemas" guide: the root is an object (not ``anyOf``); every
object sets ``additionalProperties: false`` and lists every property in ``required``; only
a subset of keywords is allowed (strings: ``pattern``, ``format``; numbers: ``minimum``,
``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, ``multipleOf``; arrays: ``items``,
``minItems``, ``maxItems``); at most 10 levels of nesting, 5,000 properties and 1,000 enum
values. ``allOf``, ``not``, ``if``/``then``/``else``, ``patternProperties``, ``minLength`` and
the like are refused.
"""

from __future__ import annotations

MAX_DEPTH = 10
MAX_PROPERTIES = 5000
MAX_ENUM_VALUES = 1000

_COMMON = {"type", "description", "title", "enum", "const", "anyOf", "$ref", "$defs", "definitions", "default"}
_BY_TYPE = {
    "string": {"pattern", "format"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"},
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"},
    "array": {"items", "minItems", "maxItems"},
    "object": {"properties", "required", "additionalProperties"},
    "boolean": set(),
    "null": set(),
}
_TYPES = set(_BY_TYPE)
_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}


class SchemaRejected(ValueError):
    """The request's schema is not one strict Structured Outputs accept."""


def check_strict_schema(name: str, schema) -> None:
    """Raise ``SchemaRejected`` with OpenAI's message when strict mode would refuse ``schema``."""
    try:
        _Checker(schema).check_root()
    except SchemaRejected as exc:
        raise SchemaRejected(f"Invalid schema for response_format '{name}': {exc}") from None


class _Checker:
    def __init__(self, root):
        self.root = root
        self.properties = 0
        self.enum_values = 0

    def check_root(self) -> None:
        if not isinstance(self.root, dict):
            raise SchemaRejected("In context=(), schema must be a JSON object.")
        if "anyOf" in self.root or self.root.get("type") != "object":
            raise SchemaRejected(
                "In context=(), schema must be a JSON Schema of 'type: \"object\"', "
                f"got 'type: \"{self.root.get('type', 'None')}\"'."
            )
        for key in ("$defs", "definitions"):
            for def_name, sub in (self.root.get(key) or {}).items():
                self.check(sub, (key, def_name), depth=1)
        self.check(self.root, (), depth=1)

    def check(self, schema, context: tuple, depth: int) -> None:
        where = f"In context={context!r}"
        if not isinstance(schema, dict):
            raise SchemaRejected(f"{where}, schema must be a JSON object.")
        if depth > MAX_DEPTH:
            raise SchemaRejected(f"{where}, schema nesting exceeds the maximum depth of {MAX_DEPTH}.")
        if "$ref" in schema:
            self._resolve(schema["$ref"], where)
            extra = set(schema) - {"$ref", "description", "title"}
            if extra:
                raise SchemaRejected(f"{where}, '$ref' cannot have keywords {sorted(extra)}.")
            return
        if "anyOf" in schema:
            if not isinstance(schema["anyOf"], list) or not schema["anyOf"]:
                raise SchemaRejected(f"{where}, 'anyOf' must be a non-empty array.")
            for i, option in enumerate(schema["anyOf"]):
                self.check(option, context + ("anyOf", i), depth)
        kinds = schema.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds] if kinds is not None else []
        unknown = [k for k in kinds if k not in _TYPES]
        if unknown:
            raise SchemaRejected(f"{where}, type '{unknown[0]}' is not supported.")
        if not kinds and not any(k in schema for k in ("anyOf", "enum", "const")):
            raise SchemaRejected(f"{where}, schema must have a 'type' key.")
        allowed = set(_COMMON)
        for kind in kinds:
            allowed |= _BY_TYPE[kind]
        for keyword in schema:
            if keyword not in allowed:
                raise SchemaRejected(f"{where}, '{keyword}' is not permitted.")
        if "format" in schema and schema["format"] not in _FORMATS:
            raise SchemaRejected(f"{where}, format '{schema['format']}' is not supported.")
        if "enum" in schema:
            self.enum_values += len(schema["enum"])
            if self.enum_values > MAX_ENUM_VALUES:
                raise SchemaRejected(f"{where}, more than {MAX_ENUM_VALUES} enum values in the schema.")
        if "object" in kinds:
            self._check_object(schema, context, depth, where)
        if "array" in kinds:
            if "items" not in schema:
                raise SchemaRejected(f"{where}, array schema missing items.")
            self.check(schema["items"], context + ("items",), depth + 1)

    def _check_object(self, schema: dict, context: tuple, depth: int, where: str) -> None:
        if schema.get("additionalProperties") is not False:
            raise SchemaRejected(f"{where}, 'additionalProperties' is required to be supplied and to be false.")
        properties = schema.get("properties") or {}
        required = schema.get("required")
        missing = [name for name in properties if not isinstance(required, list) or name not in required]
        if missing:
            raise SchemaRejected(
                f"{where}, 'required' is required to be supplied and to be an array including every key in "
                f"properties. Missing '{missing[0]}'."
            )
        extra = [name for name in required or [] if name not in properties]
        if extra:
            raise SchemaRejected(f"{where}, Extra required key '{extra[0]}' supplied.")
        self.properties += len(properties)
        if self.properties > MAX_PROPERTIES:
            raise SchemaRejected(f"{where}, more than {MAX_PROPERTIES} properties in the schema.")
        for name, sub in properties.items():
            self.check(sub, context + ("properties", name), depth + 1)

    def _resolve(self, ref: str, where: str) -> dict:
        if ref == "#":
            return self.root
        node = self.root
        try:
            for part in ref.removeprefix("#/").split("/"):
                node = node[part]
        except (KeyError, TypeError):
            raise SchemaRejected(f"{where}, reference '{ref}' cannot be resolved.") from None
        return node
