"""Bulk import: a folder of masters becomes an artist's tracks and draft releases.

`import_folder` walks the folder, decodes each audio file (the same
inspection as an upload: what does not decode is reported and skipped),
groups the files into releases by their album tag (files without one become
standalone tracks), orders them by disc and track number, and creates the
tracks through the catalog service, which queues their transcodes.

Idempotent: each master's SHA-256 is recorded per artist (`media_imports`),
so running the import again, or over a copy with other file names, creates
nothing twice; new files in a known album join its existing release. A
folder's cover.jpg (folder.jpg, front.png ...) is the cover of tracks that
carry no picture of their own.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from node.context import NodeContext
from node.errors import NotFound
from node.models import Account, Actor, Release
from node.services import catalog

from . import probe
from .models import MediaImport
from .pipeline import in_pool, inspect_file

AUDIO_EXTENSIONS = {
    ".wav",
    ".wave",
    ".flac",
    ".aif",
    ".aiff",
    ".aifc",
    ".mp3",
    ".ogg",
    ".oga",
    ".opus",
    ".m4a",
    ".mp4",
    ".aac",
}


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)  # track URIs
    releases: list[str] = field(default_factory=list)  # release titles created
    already: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)


@dataclass
class _Found:
    path: Path
    sha256: str
    info: dict[str, Any]


def find_audio(root: Path) -> list[Path]:
    """Audio-looking files under `root` (or `root` itself), in a stable order; hidden ones skipped."""
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in AUDIO_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


COVER_NAMES = ("cover", "folder", "front", "album")


def folder_cover(folder: Path) -> Path | None:
    """The album folder's picture (cover.jpg, folder.png, ...), if it has one."""
    for name in COVER_NAMES:
        for ext in (".jpg", ".jpeg", ".png", ".webp"):
            for candidate in (folder / f"{name}{ext}", folder / f"{name.capitalize()}{ext}"):
                if candidate.is_file():
                    return candidate
    return None


def release_kind(count: int) -> str:
    return "single" if count == 1 else ("ep" if count <= 4 else "album")


async def import_folder(
    ctx: NodeContext,
    root: Path,
    handle: str,
    progress: Callable[[str], None] = lambda name: None,
) -> ImportReport:
    """Import every new master under `root` for the local artist `handle`."""
    report = ImportReport()
    async with ctx.db.read_session() as s:
        account = await s.scalar(
            select(Account)
            .join(Actor, Actor.id == Account.actor_id)
            .where(Actor.handle == handle.lower().lstrip("@"), Actor.local.is_(True))
        )
        if account is None or not account.actor.is_artist:
            raise NotFound(f"no local artist @{handle.lstrip('@')}")
        artist_id = account.actor_id
        known = set(
            (
                await s.scalars(
                    select(MediaImport.sha256).where(MediaImport.artist_id == artist_id)
                )
            ).all()
        )
    found: list[_Found] = []
    for path in find_audio(root):
        progress(path.name)
        digest = await asyncio.to_thread(sha256_file, path)
        if digest in known:
            report.already += 1
            continue
        try:
            info = await in_pool(
                ctx, inspect_file, str(path), ctx.settings.media.max_duration_seconds
            )
        except probe.ProbeError as e:
            report.skipped.append((str(path), e.detail))
            continue
        if info["size"] > ctx.settings.media.max_upload_bytes:
            report.skipped.append((str(path), "larger than this node accepts"))
            continue
        known.add(digest)  # the same master twice in one folder is imported once
        found.append(_Found(path, digest, info))

    groups: dict[str, list[_Found]] = {}
    for f in found:
        groups.setdefault(f.info["tags"].get("album") or "", []).append(f)
    for album, items in groups.items():
        items.sort(
            key=lambda f: (
                f.info["tags"].get("disc_number") or 1,
                f.info["tags"].get("track_number") or 10_000,
                str(f.path),
            )
        )
        await _import_group(ctx, account, album, items, report)
    return report


async def _import_group(
    ctx: NodeContext, account: Account, album: str, items: list[_Found], report: ImportReport
) -> None:
    release_uuid = None
    if album:
        async with ctx.db.transaction() as s:
            release = await s.scalar(
                select(Release).where(
                    Release.artist_id == account.actor_id, Release.title == album[:200]
                )
            )
            if release is None:
                tags = items[0].info["tags"]
                release = await catalog.create_release(
                    ctx,
                    s,
                    account,
                    {
                        "title": album[:200],
                        "kind": release_kind(len(items)),
                        "genres": tags.get("genres") or [],
                    },
                )
                report.releases.append(release.title)
            release_uuid = release.uuid
    for item in items:
        data = await asyncio.to_thread(item.path.read_bytes)
        values: dict[str, Any] = {}
        if release_uuid:
            values["release"] = release_uuid
        async with ctx.db.transaction() as s:
            track = await catalog.create_track(
                ctx,
                s,
                account,
                values,
                (item.path.name, item.info["mime"], data),
                inspected=item.info,
            )
            cover = folder_cover(item.path.parent)
            if cover is not None:  # the pipeline falls back to it without embedded art
                source = {**(track.media or {}).get("source", {}), "folder_cover": str(cover)}
                track.media = {**(track.media or {}), "source": source}
            s.add(
                MediaImport(
                    artist_id=account.actor_id,
                    sha256=item.sha256,
                    track_id=track.id,
                    path=str(item.path)[:1024],
                )
            )
            report.created.append(track.uri)
