"""Input schemas: one declaration gives validation (every problem at once,
unknown fields refused) and the JSON Schema used by the OpenAPI document.

Deliberately small: the API's inputs are flat objects of a dozen kinds of
field, and keeping the schema next to its OpenAPI rendering keeps them honest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

from .errors import ValidationFailed

_MISSING = object()
HANDLE_RE = re.compile(r"^[a-z0-9_]{2,30}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
ISRC_RE = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}\d{7}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class F:
    """One field. kind: str, text, int, float, bool, datetime, date, url, email,
    uuid, handle, currency, isrc, strlist, uuidlist, object."""

    name: str
    kind: str = "str"
    required: bool = False
    max_len: int | None = None
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    nullable: bool = False
    description: str = ""
    max_items: int = 50


class Schema:
    def __init__(self, name: str, *fields: F, description: str = "") -> None:
        self.name = name
        self.fields = {f.name: f for f in fields}
        self.description = description

    def validate(self, data: Any, *, partial: bool = False) -> dict[str, Any]:
        """Return the cleaned values or raise ValidationFailed listing every problem."""
        if not isinstance(data, dict):
            raise ValidationFailed([{"field": "", "message": "expected a JSON object"}])
        errors: list[dict[str, str]] = []
        out: dict[str, Any] = {}
        for key in data:
            if key not in self.fields:
                errors.append({"field": key, "message": "unknown field"})
        for f in self.fields.values():
            value = data.get(f.name, _MISSING)
            if value is _MISSING or (value == "" and f.kind not in ("str", "text")):
                if f.required and not partial:
                    errors.append({"field": f.name, "message": "required"})
                continue
            if value is None:
                if f.nullable:
                    out[f.name] = None
                else:
                    errors.append({"field": f.name, "message": "may not be null"})
                continue
            try:
                out[f.name] = _clean(f, value)
            except ValueError as e:
                errors.append({"field": f.name, "message": str(e)})
        if errors:
            raise ValidationFailed(errors)
        return out

    def json_schema(self) -> dict[str, Any]:
        props = {name: _field_schema(f) for name, f in self.fields.items()}
        schema: dict[str, Any] = {
            "type": "object",
            "properties": props,
            "additionalProperties": False,
        }
        required = [f.name for f in self.fields.values() if f.required]
        if required:
            schema["required"] = required
        if self.description:
            schema["description"] = self.description
        return schema


def _clean(f: F, value: Any) -> Any:
    k = f.kind
    if k in ("str", "text", "handle", "email", "url", "uuid", "currency", "isrc"):
        if not isinstance(value, str):
            raise ValueError("must be a string")
        value = _CONTROL.sub("", value)
        value = value if k == "text" else value.strip()
        if k == "str" and "\n" in value:
            raise ValueError("must be one line")
        if f.required and k in ("str", "text") and not value.strip():
            raise ValueError("may not be empty")
        limit = f.max_len or (20_000 if k == "text" else 200)
        if len(value) > limit:
            raise ValueError(f"at most {limit} characters")
        if k == "handle":
            value = value.lower()
            if not HANDLE_RE.match(value):
                raise ValueError("2-30 characters: lowercase letters, digits and _")
        elif k == "email":
            if not EMAIL_RE.match(value):
                raise ValueError("not an email address")
            value = value.lower()
        elif k == "url":
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("must be an http(s) URL")
        elif k == "uuid":
            value = value.lower()
            if not UUID_RE.match(value):
                raise ValueError("must be a UUID")
        elif k == "currency":
            value = value.upper()
            if not CURRENCY_RE.match(value):
                raise ValueError("must be an ISO 4217 code like USD")
        elif k == "isrc":
            value = value.replace("-", "").upper()
            if not ISRC_RE.match(value):
                raise ValueError("must be an ISRC like USRC17607839")
        if f.pattern and not re.fullmatch(f.pattern, value):
            raise ValueError("has an invalid format")
        if f.choices and value not in f.choices:
            raise ValueError("must be one of " + ", ".join(f.choices))
        return value
    if k == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value.strip()):
                value = int(value)
            else:
                raise ValueError("must be an integer")
        _bounds(f, value)
        return value
    if k == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError("must be a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        _bounds(f, value)
        return float(value)
    if k == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "on", "off"):
            return value.lower() in ("true", "1", "on")
        raise ValueError("must be true or false")
    if k == "datetime":
        return parse_datetime(value)
    if k == "date":
        if not isinstance(value, str):
            raise ValueError("must be a date like 2026-05-01")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError("must be a date like 2026-05-01") from None
    if k in ("strlist", "uuidlist"):
        if isinstance(value, str):
            value = [v for v in (p.strip() for p in value.split(",")) if v]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("must be a list of strings")
        if len(value) > f.max_items:
            raise ValueError(f"at most {f.max_items} items")
        limit = f.max_len or 60
        cleaned = []
        for v in value:
            v = _CONTROL.sub("", v).strip()
            if k == "uuidlist":
                v = v.lower()
                if not UUID_RE.match(v):
                    raise ValueError(f"{v!r} is not a UUID")
            elif len(v) > limit:
                raise ValueError(f"items of at most {limit} characters")
            if v and v not in cleaned:
                cleaned.append(v)
        if f.choices:
            bad = [v for v in cleaned if v not in f.choices]
            if bad:
                raise ValueError(f"unknown: {', '.join(bad)}")
        return cleaned
    if k == "object":
        if not isinstance(value, dict):
            raise ValueError("must be an object")
        return value
    raise AssertionError(f"unknown field kind {k}")


def _bounds(f: F, value: float) -> None:
    if f.min is not None and value < f.min:
        raise ValueError(f"must be at least {f.min:g}")
    if f.max is not None and value > f.max:
        raise ValueError(f"must be at most {f.max:g}")


def parse_datetime(value: Any) -> datetime:
    """ISO 8601 with an offset (or Z); naive times are refused rather than guessed."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 time like 2026-05-01T20:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("must be an ISO 8601 time like 2026-05-01T20:00:00Z") from None
    if parsed.tzinfo is None:
        raise ValueError("needs a time zone offset, like Z or -05:00")
    if not 1970 <= parsed.year <= 2200:
        raise ValueError("year out of range")
    return parsed.astimezone(UTC)


def iso(dt: datetime | None) -> str | None:
    """UTC ISO 8601 with a Z, the API's only time format."""
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


_KIND_SCHEMA = {
    "str": {"type": "string"},
    "text": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "url": {"type": "string", "format": "uri"},
    "email": {"type": "string", "format": "email"},
    "uuid": {"type": "string", "format": "uuid"},
    "handle": {"type": "string", "pattern": HANDLE_RE.pattern},
    "currency": {"type": "string", "pattern": CURRENCY_RE.pattern},
    "isrc": {"type": "string", "pattern": ISRC_RE.pattern},
    "strlist": {"type": "array", "items": {"type": "string"}},
    "uuidlist": {"type": "array", "items": {"type": "string", "format": "uuid"}},
    "object": {"type": "object"},
}


def _field_schema(f: F) -> dict[str, Any]:
    s = dict(_KIND_SCHEMA[f.kind])
    if f.max_len and s.get("type") == "string":
        s["maxLength"] = f.max_len
    if f.choices:
        if s.get("type") == "array":
            s["items"] = {"type": "string", "enum": list(f.choices)}
        else:
            s["enum"] = list(f.choices)
    if f.min is not None:
        s["minimum"] = f.min
    if f.max is not None:
        s["maximum"] = f.max
    if f.nullable:
        s = {"anyOf": [s, {"type": "null"}]}
    if f.description:
        s["description"] = f.description
    return s
