"""Where media bytes live: a key/value object store, local filesystem or S3.

Every part of media (ingest, streaming, Subsonic, detection) talks to one
`Storage` through keys such as `audio/{artist}/{track_uuid}/opus.ogg`, never
through paths, so a node can move its media to an S3-compatible bucket by
changing `media.storage` and nothing else.

The local backend writes under DATA/media with atomic renames (a reader never
sees half a file) and offers `local_path()` so streaming can hand the file to
`web.FileResponse` or nginx. The S3 backend (aiobotocore) offers
`presigned_url()` so listeners can fetch straight from the bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import mimetypes
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

if TYPE_CHECKING:
    from node.config import Settings
    from node.context import NodeContext

CHUNK = 256 * 1024
# Above this size uploads to S3 go in parts (S3's minimum part is 5 MiB).
MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024

# A key is a relative, slash-separated path of plain segments: no "..", no
# hidden segments (the local backend's temporary files start with "."), no
# backslashes. Artist handles and UUIDs fit comfortably.
_SEGMENT = re.compile(r"^[A-Za-z0-9_@+=-][A-Za-z0-9_@.+=-]{0,199}$")
_PREFIX_TAIL = re.compile(r"^[A-Za-z0-9_@.+=-]{0,200}$")

_TYPES = {
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".oga": "audio/ogg",
    ".flac": "audio/flac",
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".aif": "audio/aiff",
    ".aiff": "audio/aiff",
    ".json": "application/json",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    etag: str  # without quotes; streaming adds them
    modified: datetime  # aware, UTC
    content_type: str


class Storage(Protocol):
    """What every backend offers. Missing keys: `get_bytes` raises KeyError,
    `stat` returns None, `delete` is a no-op."""

    async def put_file(self, key: str, path: Path, content_type: str) -> StoredObject: ...
    async def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject: ...
    async def get_bytes(self, key: str) -> bytes: ...
    async def fetch_to(self, key: str, path: Path) -> None: ...
    async def stat(self, key: str) -> StoredObject | None: ...
    async def delete(self, key: str) -> None: ...
    async def delete_prefix(self, prefix: str) -> int: ...
    def local_path(self, key: str) -> Path | None: ...
    async def presigned_url(self, key: str, expires_seconds: int) -> str | None: ...
    async def iter_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]: ...
    async def usage(self) -> tuple[int, int]: ...
    async def close(self) -> None: ...


def check_key(key: str) -> str:
    """Return `key` if it is a safe object key, else raise ValueError.

    Keys come from our own code, but they embed handles and file extensions
    that came from users; one check here keeps every backend out of `..`.
    """
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise ValueError("bad storage key")
    parts = key.split("/")
    if not all(_SEGMENT.match(p) for p in parts):
        raise ValueError(f"bad storage key: {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A prefix is a key's start: whole segments, then an optional partial one."""
    if not isinstance(prefix, str) or not prefix or len(prefix) > 1024:
        raise ValueError("bad storage prefix")
    *dirs, tail = prefix.split("/")
    if not all(_SEGMENT.match(p) for p in dirs) or not _PREFIX_TAIL.match(tail):
        raise ValueError(f"bad storage prefix: {prefix!r}")
    return prefix


def guess_type(key: str) -> str:
    ext = os.path.splitext(key)[1].lower()
    return _TYPES.get(ext) or mimetypes.guess_type(key)[0] or "application/octet-stream"


# -- local filesystem ---------------------------------------------------------


class LocalStorage:
    """Objects as files under `root`. The content type follows the key's
    extension (keys always carry one), so nothing but the file is stored."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def _stat_sync(self, key: str) -> StoredObject | None:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not os.path.isfile(self._path(key)):
            return None
        return local_object(key, st)

    def _write_sync(self, key: str, source: Path | bytes) -> StoredObject:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.{secrets.token_hex(6)}.tmp"
        try:
            if isinstance(source, bytes):
                with open(tmp, "wb") as f:
                    f.write(source)
            else:
                shutil.copyfile(source, tmp)
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return local_object(key, dest.stat())

    async def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        return await asyncio.to_thread(self._write_sync, key, Path(path))

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        return await asyncio.to_thread(self._write_sync, key, bytes(data))

    async def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyError(key) from None

    async def fetch_to(self, key: str, path: Path) -> None:
        src = self._path(key)
        if not await asyncio.to_thread(src.is_file):
            raise KeyError(key)
        await asyncio.to_thread(shutil.copyfile, src, path)

    async def stat(self, key: str) -> StoredObject | None:
        return await asyncio.to_thread(self._stat_sync, key)

    async def iter_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Bytes `start`..`end` inclusive (end None: to the end of the object)."""
        path = self._path(key)
        try:
            f = await asyncio.to_thread(open, path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyError(key) from None
        try:
            await asyncio.to_thread(f.seek, start)
            left = None if end is None else end - start + 1
            while left is None or left > 0:
                n = CHUNK if left is None else min(CHUNK, left)
                block = await asyncio.to_thread(f.read, n)
                if not block:
                    break
                if left is not None:
                    left -= len(block)
                yield block
        finally:
            f.close()

    async def delete(self, key: str) -> None:
        path = self._path(key)

        def rm() -> None:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                path.unlink()
            self._prune(path.parent)

        await asyncio.to_thread(rm)

    def _prune(self, directory: Path) -> None:
        """Remove now-empty directories up to (not including) the root."""
        root = self.root.resolve()
        d = directory.resolve()
        while d != root and root in d.parents:
            try:
                d.rmdir()
            except OSError:
                return
            d = d.parent

    async def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        head, _, _ = prefix.rpartition("/")

        def rm() -> int:
            base = self.root / head if head else self.root
            if not base.is_dir():
                return 0
            count = 0
            for key, path in _walk(self.root, base):
                if key.startswith(prefix):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        count += 1
            # Remove emptied directories under the prefix, deepest first.
            for dirpath, _dirs, _files in os.walk(base, topdown=False):
                rel = Path(dirpath).relative_to(self.root).as_posix()
                if (rel + "/").startswith(prefix) and rel != ".":
                    with contextlib.suppress(OSError):
                        os.rmdir(dirpath)
            self._prune(base)
            return count

        return await asyncio.to_thread(rm)

    async def presigned_url(self, key: str, expires_seconds: int) -> str | None:
        return None

    async def usage(self) -> tuple[int, int]:
        def count() -> tuple[int, int]:
            n = total = 0
            if not self.root.is_dir():
                return 0, 0
            for _key, path in _walk(self.root, self.root):
                with contextlib.suppress(FileNotFoundError):
                    total += path.stat().st_size
                    n += 1
            return n, total

        return await asyncio.to_thread(count)

    async def close(self) -> None:
        return None


def local_object(key: str, st: os.stat_result) -> StoredObject:
    """What the local backend reports for a file with this `stat` (streaming uses it too)."""
    # The ETag aiohttp's FileResponse (and nginx) gives the same file, so a
    # validator stays valid whichever of them answers; costs no read.
    return StoredObject(
        key=key,
        size=st.st_size,
        etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
        # Rounded up to the second, as aiohttp writes Last-Modified.
        modified=datetime.fromtimestamp(math.ceil(st.st_mtime), UTC),
        content_type=guess_type(key),
    )


def _walk(root: Path, base: Path) -> list[tuple[str, Path]]:
    """(key, path) of every stored file under `base`, skipping temporary files."""
    out = []
    for dirpath, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            out.append((path.relative_to(root).as_posix(), path))
    return out


# -- choosing a backend -------------------------------------------------------


def open_storage(settings: Settings) -> Storage:
    """The backend named by `media.storage`; nothing connects until first use."""
    kind = settings.media.storage
    if kind == "s3":
        from .storage_s3 import S3Storage

        return S3Storage.from_settings(settings)
    if kind == "local":
        return LocalStorage(settings.data_dir / "media")
    raise ValueError(f"media.storage must be local or s3, not {kind!r}")


STORAGE: web.AppKey[Storage] = web.AppKey("media.storage")
_EXTRAS_KEY = "media.storage"


def storage_of(ctx: NodeContext) -> Storage:
    """The node's one Storage, for code that has only the context (jobs, CLI)."""
    storage = ctx.extras.get(_EXTRAS_KEY)
    if storage is None:
        storage = open_storage(ctx.settings)
        ctx.extras[_EXTRAS_KEY] = storage
    return storage


async def close_storage(ctx: NodeContext) -> None:
    """Close the context's storage, if one was opened (app cleanup, CLI exit)."""
    storage = ctx.extras.pop(_EXTRAS_KEY, None)
    if storage is not None:
        await storage.close()
