"""ActivityStreams helpers: the vendored context and tolerant readers.

Payloads are read as compacted AS2 (DESIGN.md 5): any property may be a
string, an object or a list, so every read goes through these helpers.
Nothing is ever fetched to interpret a payload.
"""

from __future__ import annotations

from typing import Any

AS = "https://www.w3.org/ns/activitystreams"
SECURITY = "https://w3id.org/security/v1"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
PUBLIC_ALIASES = {PUBLIC, "as:Public", "Public"}
NYCMG_NS = "https://nycmg.org/ns#"
ACTIVITY_JSON = "application/activity+json"
LD_JSON = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
AP_CONTENT_TYPES = ("application/activity+json", "application/ld+json")

# Our extension terms, declared inline so receivers need fetch nothing.
CONTEXT: list[Any] = [
    AS,
    SECURITY,
    {
        "nycmg": NYCMG_NS,
        "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
        "Listen": "as:Listen",
        "borough": "nycmg:borough",
        "genres": "nycmg:genres",
        "Album": "nycmg:Album",
        "release": {"@id": "nycmg:release", "@type": "@id"},
        "tracks": "nycmg:tracks",
        "position": "nycmg:position",
        "isrc": "nycmg:isrc",
        "msListened": "nycmg:msListened",
        "source": "nycmg:source",
        "releaseKind": "nycmg:releaseKind",
        "price": "nycmg:price",
        "lineup": "nycmg:lineup",
        "schema": "http://schema.org#",
        "PropertyValue": "schema:PropertyValue",
        "value": "schema:value",
    },
]


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def id_of(value: Any) -> str | None:
    """The id of a reference that may be a string, an object or a one-item list."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        ident = value.get("id") or value.get("href")
        return ident if isinstance(ident, str) else None
    return None


def ids_of(value: Any) -> list[str]:
    return [i for i in (id_of(v) for v in as_list(value)) if i]


def type_of(value: Any) -> str | None:
    """The first type, without a namespace prefix (`as:Listen` -> `Listen`)."""
    if not isinstance(value, dict):
        return None
    t = value.get("type")
    if isinstance(t, list):
        t = next((x for x in t if isinstance(x, str)), None)
    if not isinstance(t, str):
        return None
    return t.split(":", 1)[1] if t.startswith(("as:", "nycmg:", "fw:", "funkwhale:")) else t


def text_of(value: Any, limit: int = 5000) -> str:
    """A plain string from a string, a language map or a list of strings."""
    if isinstance(value, dict):
        value = next((v for v in value.values() if isinstance(v, str)), "")
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str)), "")
    return value[:limit] if isinstance(value, str) else ""


def host_of(uri: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(uri).netloc.lower()


def is_public(activity: dict[str, Any]) -> bool:
    audience = as_list(activity.get("to")) + as_list(activity.get("cc"))
    return any(a in PUBLIC_ALIASES for a in audience if isinstance(a, str))


def with_context(doc: dict[str, Any]) -> dict[str, Any]:
    return {"@context": CONTEXT, **doc}
