"""Scripts rely on /api/v1/openapi.json describing every route there is."""

from __future__ import annotations

import re


async def test_every_api_route_is_documented_and_nothing_else(node):
    doc = await (await node.client.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    routed = set()
    for route in node.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or not path.startswith("/api/") or route.method == "HEAD":
            continue
        routed.add((route.method, re.sub(r"{(\w+)(?::[^}]*)?}", r"{\1}", path)))
    assert routed == documented
    for must in [
        ("POST", "/api/v1/auth/token"),
        ("GET", "/api/v1/me"),
        ("POST", "/api/v1/tracks"),
        ("POST", "/api/v1/releases"),
        ("POST", "/api/v1/releases/{uuid}/publish"),
        ("POST", "/api/v1/events"),
        ("GET", "/api/v1/search"),
    ]:
        assert must in documented


async def test_request_bodies_are_described_with_their_rules(node):
    doc = await (await node.client.get("/api/v1/openapi.json")).json()
    release = doc["paths"]["/api/v1/releases"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    assert release["required"] == ["title"]
    assert "album" in release["properties"]["kind"]["enum"]
    assert doc["paths"]["/api/v1/releases"]["post"]["security"] == [{"bearer": []}]
    assert "multipart/form-data" in doc["paths"]["/api/v1/tracks"]["post"]["requestBody"]["content"]
