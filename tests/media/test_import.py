"""A collective moves an artist's back catalogue in with `nycmg import`:
releases come from album tags, bad files are reported, and a second run
imports nothing twice."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
from sqlalchemy import select

from media import synth
from node.cli import main
from node.config import load_settings
from node.db import open_database
from node.models import Release, Track


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def data(tmp_path, databases, capsys) -> Path:
    d = tmp_path / "node"
    url = databases.url_for(tmp_path)
    extra = ["--database-url", url] if url else []
    code, _, err = run(capsys, "init", "--data", d, "--domain", f"127.0.0.1:{free_port()}", *extra)
    assert code == 0, err
    code, _, err = run(
        capsys,
        "user",
        "create",
        "--data",
        d,
        "ana",
        "--password",
        "pw-pw-pw-pw",
        "--role",
        "artist",
    )
    assert code == 0, err
    return d


@pytest.fixture
def catalogue(tmp_path) -> Path:
    """An artist's folder: a three-track album (tagged, out of order on disk), an
    untagged single, a file that only pretends to be audio, and junk to ignore."""
    root = tmp_path / "music"
    album = root / "Night Rides"
    album.mkdir(parents=True)
    for number, name in ((2, "b-side.flac"), (3, "a-last.mp3"), (1, "z-first.flac")):
        fmt = name.rsplit(".", 1)[1]
        audio = synth.encode(
            synth.master(2, seed=number),
            fmt,
            tags={"title": f"Ride {number}", "album": "Night Rides", "tracknumber": str(number)},
        )
        (album / name).write_bytes(audio)
    (root / "Loose Demo.wav").write_bytes(synth.encode(synth.master(2, seed=9), "wav"))
    (root / "broken.mp3").write_bytes(os.urandom(20_000))
    (root / "notes.txt").write_text("not audio")
    (root / ".hidden.wav").write_bytes(synth.encode(synth.master(1), "wav"))
    return root


def catalog_of(data: Path) -> tuple[list[tuple[str, list[str]]], list[tuple[str, str]]]:
    async def read():
        db = open_database(load_settings(data).database_url)
        try:
            async with db.read_session() as s:
                releases = (await s.scalars(select(Release).order_by(Release.id))).all()
                rel = [(r.title, r.kind, [t.title for t in r.tracks]) for r in releases]
                tracks = (await s.scalars(select(Track).order_by(Track.id))).all()
                return rel, [(t.title, t.state) for t in tracks]
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_a_folder_becomes_releases_by_album_tag_and_a_second_run_imports_nothing(
    data, catalogue, capsys
):
    code, out, err = run(capsys, "import", "--data", data, catalogue, "--artist", "ana")
    assert code == 0, err
    assert "imported 4 tracks (1 new releases), 0 already imported, 1 skipped" in out
    assert "broken.mp3" in err and "not an audio file" in err
    assert "reading" in err  # the progress bar

    releases, tracks = catalog_of(data)
    assert releases == [("Night Rides", "ep", ["Ride 1", "Ride 2", "Ride 3"])]
    assert sorted(t for t, _ in tracks) == ["Loose Demo", "Ride 1", "Ride 2", "Ride 3"]
    assert {state for _, state in tracks} == {"processing"}

    # Again, and again from a copy with other names: nothing new.
    code, out, err = run(capsys, "import", "--data", data, catalogue, "--artist", "ana")
    assert code == 0, err
    assert "imported 0 tracks (0 new releases), 4 already imported, 1 skipped" in out
    copy = catalogue.parent / "copy"
    copy.mkdir()
    (copy / "renamed.wav").write_bytes((catalogue / "Loose Demo.wav").read_bytes())
    code, out, err = run(capsys, "import", "--data", data, copy, "--artist", "ana")
    assert "imported 0 tracks" in out and "1 already imported" in out
    assert len(catalog_of(data)[1]) == 4


def test_a_new_file_joins_its_album_and_transcode_runs_on_request(data, catalogue, capsys):
    code, out, err = run(capsys, "import", "--data", data, catalogue, "--artist", "ana")
    assert code == 0, err
    (catalogue / "Night Rides" / "cover.png").write_bytes(synth.cover_png(400))
    (catalogue / "Night Rides" / "bonus.flac").write_bytes(
        synth.encode(
            synth.master(2, seed=4),
            "flac",
            tags={"title": "Ride 4", "album": "Night Rides", "tracknumber": "4"},
        )
    )
    code, out, err = run(
        capsys, "import", "--data", data, catalogue, "--artist", "ana", "--transcode"
    )
    assert code == 0, err
    assert "imported 1 tracks (0 new releases), 4 already imported" in out
    assert "transcoding" in err
    releases, tracks = catalog_of(data)
    assert releases == [("Night Rides", "ep", ["Ride 1", "Ride 2", "Ride 3", "Ride 4"])]
    assert dict(tracks)["Ride 4"] == "ready"
    # No picture in the file: the folder's cover.png became its covers.
    assert set(media_of(data, "Ride 4")["cover"]) == {"1200", "600", "300", "64"}


def media_of(data: Path, title: str) -> dict:
    async def read():
        db = open_database(load_settings(data).database_url)
        try:
            async with db.read_session() as s:
                return (await s.scalar(select(Track).where(Track.title == title))).media
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_bad_arguments_are_one_line(data, catalogue, capsys, tmp_path):
    for argv, words in (
        (["import", "--data", data, catalogue], "--artist"),
        (["import", "--data", data, tmp_path / "nowhere", "--artist", "ana"], "does not exist"),
        (["import", "--data", data, catalogue, "--artist", "nobody"], "no local artist"),
    ):
        code, out, err = run(capsys, *argv)
        assert code != 0
        assert "Traceback" not in err
        assert words in err
        assert len([line for line in err.splitlines() if line.startswith("nycmg:")]) == 1
