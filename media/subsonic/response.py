"""The `subsonic-response` envelope, rendered as XML (the default) or JSON (`f=json`).

A payload is plain data: a dict's scalar values become XML attributes, a
nested dict a child element, a list repeated child elements (a list of
scalars, elements with text), and the key `value` the element's text. JSON
is the same data under `{"subsonic-response": {...}}`, which is how the
Subsonic server maps its XML schema to JSON (lists stay lists, as
OpenSubsonic asks: https://opensubsonic.netlify.app/docs/responses/).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from importlib import metadata
from typing import Any
from xml.etree import ElementTree as ET

from aiohttp import web

NAMESPACE = "http://subsonic.org/restapi"
API_VERSION = "1.16.1"
SERVER_TYPE = "nycmg"
_CALLBACK = re.compile(r"^[A-Za-z_$][\w$.]{0,63}$")


def server_version() -> str:
    try:
        return metadata.version("nycmg")
    except metadata.PackageNotFoundError:  # running from a checkout without install
        return "0.1.0"


SERVER_VERSION = server_version()


def envelope(payload: dict[str, Any] | None = None, *, status: str = "ok") -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": status,
        "version": API_VERSION,
        "type": SERVER_TYPE,
        "serverVersion": SERVER_VERSION,
        "openSubsonic": True,
    }
    body.update(payload or {})
    return body


def error_payload(code: int, message: str) -> dict[str, Any]:
    return envelope({"error": {"code": code, "message": message}}, status="failed")


# Characters XML 1.0 cannot carry at all (a title from another node might hold one).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso(value)
    return _NOT_XML.sub("", str(value))


def iso(value: datetime) -> str:
    """Subsonic's xs:dateTime, in UTC with milliseconds (as the reference server sends)."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _fill(element: ET.Element, data: dict[str, Any]) -> None:
    for key, value in data.items():
        if value is None:
            continue
        if key == "value":
            element.text = _text(value)
        elif isinstance(value, dict):
            _fill(ET.SubElement(element, key), value)
        elif isinstance(value, list):
            for item in value:
                child = ET.SubElement(element, key)
                if isinstance(item, dict):
                    _fill(child, item)
                else:
                    child.text = _text(item)
        else:
            element.set(key, _text(value))


def to_xml(body: dict[str, Any]) -> bytes:
    root = ET.Element("subsonic-response", {"xmlns": NAMESPACE})
    _fill(root, body)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return iso(value)
    return value


def render(body: dict[str, Any], fmt: str, callback: str | None = None, status: int = 200):
    """The response in the format the client asked for (`f`): xml, json or jsonp."""
    if fmt in ("json", "jsonp"):
        text = json.dumps({"subsonic-response": _jsonable(body)}, separators=(",", ":"))
        if fmt == "jsonp" and callback and _CALLBACK.match(callback):
            return web.Response(
                text=f"{callback}({text});",
                status=status,
                content_type="application/javascript",
            )
        return web.Response(text=text, status=status, content_type="application/json")
    return web.Response(body=to_xml(body), status=status, content_type="text/xml", charset="utf-8")
