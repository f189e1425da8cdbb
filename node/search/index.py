"""PLACEHOLDER - being written."""

from __future__ import annotations

DOC_TYPES = ("artist", "release", "track", "event")


class SearchIndex:
    def __init__(self, directory, ctx=None) -> None:
        self.directory = directory

    async def search(self, q, *, types=None, borough=None, genre=None, limit=20, page=1):
        return {"query": q, "total": 0, "results": [], "facets": {"borough": {}, "genre": {}, "type": {}}}

    async def suggest(self, q, *, limit=8):
        return []

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass
