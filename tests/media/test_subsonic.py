"""Subsonic apps on a real node: the py-sonic client library and raw requests
shaped like DSub's, over real HTTP against `live_node`.

Given an artist who published an album and a single (their audio and
covers in the node's storage, as the media pipeline leaves them), and a fan
with a Subsonic password, the fan's apps browse, search, stream, star,
rate, scrobble and keep playlists.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import secrets
import time
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

import av
import libsonic
import numpy as np
import pytest
from aiohttp import ClientSession, FormData
from PIL import Image
from sqlalchemy import event, func, select

from media.storage import STORAGE
from media.subsonic import credentials
from node.models import Account, Play, Track

NS = "{http://subsonic.org/restapi}"
PASSWORD = "subsonic pass 1"


# ---- given: audio, covers, a catalog ---------------------------------------------


def synth_mp3(seconds: float = 0.4, freq: float = 440.0, rate: int = 44100) -> bytes:
    """A short sine tone as MP3 (PyAV), different per frequency."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=rate)
        stream.bit_rate = 128_000
        t = np.arange(int(seconds * rate)) / rate
        samples = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        for i in range(0, len(samples), 1152):
            frame = av.AudioFrame.from_ndarray(
                samples[i : i + 1152].reshape(1, -1), format="flt", layout="mono"
            )
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def jpeg(size: int, color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, "JPEG")
    return buf.getvalue()


@dataclass
class Catalog:
    node: object
    albums: dict[str, str] = field(default_factory=dict)  # title -> release uuid
    tracks: dict[str, str] = field(default_factory=dict)  # title -> track uuid
    audio: dict[str, dict[str, bytes]] = field(default_factory=dict)  # title -> fmt -> bytes
    covers: dict[str, dict[str, bytes]] = field(default_factory=dict)  # title -> size -> jpeg


async def api(node, method: str, path: str, user: str, body: dict | None = None) -> dict:
    async with ClientSession() as http:
        async with http.request(
            method, node.base_url + path, json=body, headers=node.auth(user)
        ) as r:
            assert r.status in (200, 201), await r.text()
            return await r.json()


async def make_ready(node, cat: Catalog, artist: str, uuid: str, title: str, n: int) -> None:
    """Put a track's renditions and cover in storage and mark it ready, as the pipeline does."""
    storage = node.app[STORAGE]
    audio = {
        "original": synth_mp3(freq=300 + 40 * n),
        "mp3_320": synth_mp3(freq=301 + 40 * n),
        "mp3_128": synth_mp3(freq=302 + 40 * n),
        "opus": synth_mp3(freq=303 + 40 * n),
    }
    files = {}
    for fmt, data in audio.items():
        ext = {"opus": "ogg"}.get(fmt, "mp3")
        mime = "audio/ogg" if fmt == "opus" else "audio/mpeg"
        key = f"audio/{artist}/{uuid}/{fmt}.{ext}"
        obj = await storage.put_bytes(key, data, mime)
        files[fmt] = {"key": key, "mime": mime, "size": obj.size, "bitrate": 128_000}
    covers, cover_keys = {}, {}
    for size in ("1200", "600", "300", "64"):
        covers[size] = jpeg(int(size) // 8, (n * 20 % 255, 80, int(size) % 255))
        key = f"covers/{artist}/{uuid}/{size}.jpg"
        await storage.put_bytes(key, covers[size], "image/jpeg")
        cover_keys[size] = key
    async with node.ctx.db.transaction() as s:
        track = await s.scalar(select(Track).where(Track.uuid == uuid))
        track.media = {"original_filename": f"{title}.mp3", "files": files, "cover": cover_keys}
        track.state, track.duration_ms = "ready", 180_000 + n * 1000
    cat.audio[title], cat.covers[title] = audio, covers


async def publish(node, cat: Catalog, artist: str, title: str, songs: list[str], **extra) -> str:
    release = await api(
        node, "POST", "/api/v1/releases", artist, {"title": title, "kind": "album", **extra}
    )
    for title_ in songs:
        track = await api(
            node, "POST", "/api/v1/tracks", artist, {"title": title_, "release": release["uuid"]}
        )
        cat.tracks[title_] = track["uuid"]
        await make_ready(node, cat, artist, track["uuid"], title_, len(cat.tracks))
    await api(node, "POST", f"/api/v1/releases/{release['uuid']}/publish", artist)
    cat.albums[title] = release["uuid"]
    return release["uuid"]


async def set_password(node, username: str, password: str = PASSWORD) -> None:
    async with node.ctx.db.transaction() as s:
        account = await s.scalar(select(Account).where(Account.username == username))
        await credentials.set_password(s, node.settings.node.secret_key, account, password)


@pytest.fixture
async def catalog(live_node) -> Catalog:
    node = live_node
    cat = Catalog(node)
    await node.user("ana", role="artist")
    await node.user("fan")
    await node.user("other")
    await publish(node, cat, "ana", "Night Bus", ["Flatbush Ave", "Last Stop"], genres=["House"])
    await publish(node, cat, "ana", "Deep Cuts", ["Bedstuy Dub"], genres=["Dub"])
    # A draft: its release is never published, so no app shows it.
    draft = await api(node, "POST", "/api/v1/tracks", "ana", {"title": "Secret Demo"})
    await api(
        node, "POST", "/api/v1/releases", "ana", {"title": "Unreleased", "tracks": [draft["uuid"]]}
    )
    await make_ready(node, cat, "ana", draft["uuid"], "Secret Demo", 99)
    cat.tracks["Secret Demo"] = draft["uuid"]
    # An artist with nothing published yet has no (empty) folder in anyone's app.
    await node.user("bo", role="artist")
    await api(node, "POST", "/api/v1/tracks", "bo", {"title": "Work in progress"})
    await set_password(node, "fan")
    await set_password(node, "other", "other password")
    return cat


# ---- the clients ------------------------------------------------------------------


def sonic(node, user: str = "fan", password: str = PASSWORD) -> libsonic.Connection:
    host, port = node.base_url.rsplit(":", 1)
    return libsonic.Connection(
        host,
        user,
        password,
        int(port),
        appName="py-sonic-test",
        apiVersion="1.16.1",
        legacyAuth=False,
    )


async def call(conn: libsonic.Connection, method_: str, /, *args, **kwargs):
    """py-sonic is synchronous (urllib): run it off the loop that serves the node."""
    return await asyncio.to_thread(getattr(conn, method_), *args, **kwargs)


async def dsub(node, method: str, user: str = "fan", password: str = PASSWORD, **params):
    """A GET as DSub sends it (token auth, v=1.2.0, c=DSub, XML): (status, root, headers)."""
    salt = secrets.token_hex(6)
    query = {
        "u": user,
        "t": hashlib.md5((password + salt).encode()).hexdigest(),
        "s": salt,
        "v": "1.2.0",
        "c": "DSub",
        **params,
    }
    async with ClientSession() as http:
        async with http.get(f"{node.base_url}/rest/{method}.view", params=query) as r:
            body = await r.read()
            return r.status, ET.fromstring(body), r.headers


def error_code(root: ET.Element) -> int | None:
    assert root.tag == f"{NS}subsonic-response"
    err = root.find(f"{NS}error")
    return None if err is None else int(err.get("code"))


async def id_of(node, kind: str, uuid: str) -> str:
    from node.models import Release

    model, prefix = (Track, "tr") if kind == "track" else (Release, "al")
    async with node.ctx.db.read_session() as s:
        return f"{prefix}-{await s.scalar(select(model.id).where(model.uuid == uuid))}"


# ---- stories ------------------------------------------------------------------------


async def test_dsub_pings_and_gets_the_xml_envelope(catalog):
    status, root, headers = await dsub(catalog.node, "ping")
    assert status == 200 and headers["Content-Type"].startswith("text/xml")
    assert root.tag == f"{NS}subsonic-response"
    assert root.get("status") == "ok" and root.get("version") == "1.16.1"
    assert root.get("type") == "nycmg" and root.get("openSubsonic") == "true"
    assert root.get("serverVersion")

    _, root, _ = await dsub(catalog.node, "getLicense")
    assert root.find(f"{NS}license").get("valid") == "true"


async def test_json_with_f_json_and_form_post(catalog):
    node = catalog.node
    salt = "abcdef123"
    token = hashlib.md5((PASSWORD + salt).encode()).hexdigest()
    form = {"u": "fan", "t": token, "s": salt, "v": "1.16.1", "c": "test", "f": "json"}
    async with ClientSession() as http:
        async with http.post(f"{node.base_url}/rest/ping", data=form) as r:
            assert r.headers["Content-Type"].startswith("application/json")
            body = (await r.json())["subsonic-response"]
    assert body["status"] == "ok" and body["openSubsonic"] is True and body["type"] == "nycmg"

    async with ClientSession() as http:
        async with http.get(f"{node.base_url}/rest/getOpenSubsonicExtensions?f=json") as r:
            exts = (await r.json())["subsonic-response"]["openSubsonicExtensions"]
    assert {"name": "formPost", "versions": [1]} in exts
    assert "apiKeyAuthentication" in {e["name"] for e in exts}


async def test_wrong_credentials_are_40_and_missing_ones_10(catalog):
    node = catalog.node
    _, root, _ = await dsub(node, "ping", password="not the password")
    assert error_code(root) == 40 and root.get("status") == "failed"
    _, root, _ = await dsub(node, "ping", user="nobody")
    assert error_code(root) == 40
    # Their login password is not their Subsonic password.
    _, root, _ = await dsub(node, "ping", password="correct horse battery")
    assert error_code(root) == 40
    with pytest.raises(libsonic.errors.CredentialError):
        await call(sonic(node, password="wrong"), "ping")

    async with ClientSession() as http:
        async with http.get(f"{node.base_url}/rest/ping.view?v=1.16.1&c=x") as r:
            root = ET.fromstring(await r.read())
        assert error_code(root) == 10
        async with http.get(f"{node.base_url}/rest/ping.view?u=fan&v=1.16.1&c=x") as r:
            assert error_code(ET.fromstring(await r.read())) == 10
        # The legacy forms of `p`: clear text and hex-encoded.
        hexed = PASSWORD.encode().hex()
        for p in (PASSWORD, f"enc:{hexed}"):
            async with http.get(
                f"{node.base_url}/rest/ping.view",
                params={"u": "fan", "p": p, "c": "x", "v": "1.2.0"},
            ) as r:
                assert error_code(ET.fromstring(await r.read())) is None


async def test_guessing_a_password_is_cut_off(catalog):
    node = catalog.node
    limit = node.settings.auth.login_attempts
    for n in range(limit):
        _, root, _ = await dsub(node, "ping", password=f"guess {n}")
        assert error_code(root) == 40
    # Even the right password waits now, and the app is told why.
    _, root, _ = await dsub(node, "ping")
    assert error_code(root) == 0
    assert "Too many failed sign-ins" in root.find(f"{NS}error").get("message")


async def test_open_subsonic_api_keys(catalog):
    node = catalog.node
    async with node.ctx.db.transaction() as s:
        fan = await s.scalar(select(Account).where(Account.username == "fan"))
        key = await credentials.create_api_key(s, fan, "Symfonium")
    async with ClientSession() as http:

        async def ping(**params):
            async with http.get(
                f"{node.base_url}/rest/tokenInfo", params={"c": "x", "f": "json", **params}
            ) as r:
                return (await r.json())["subsonic-response"]

        body = await ping(apiKey=key)
        assert body["status"] == "ok" and body["tokenInfo"]["username"] == "fan"
        assert (await ping(apiKey=key, u="fan"))["error"]["code"] == 43
        assert (await ping(apiKey="nss_not-a-key"))["error"]["code"] == 44
        async with node.ctx.db.transaction() as s:
            keys = await credentials.api_keys_of(s, fan)
            await credentials.revoke_api_key(s, fan, keys[0].id)
        assert (await ping(apiKey=key))["error"]["code"] == 44


async def test_py_sonic_browses_artists_albums_and_songs(catalog):
    conn = sonic(catalog.node)
    assert await call(conn, "ping") is True
    artists = (await call(conn, "getArtists"))["artists"]
    names = [a["name"] for idx in artists["index"] for a in idx["artist"]]
    assert names == ["ana"]
    ana = artists["index"][0]["artist"][0]
    assert ana["albumCount"] == 2 and ana["id"].startswith("ar-")

    artist = (await call(conn, "getArtist", ana["id"]))["artist"]
    assert sorted(a["name"] for a in artist["album"]) == ["Deep Cuts", "Night Bus"]
    night = next(a for a in artist["album"] if a["name"] == "Night Bus")
    assert night["songCount"] == 2 and night["genre"] == "House"
    assert night["duration"] == (181_000 + 182_000) // 1000

    album = (await call(conn, "getAlbum", night["id"]))["album"]
    assert [s["title"] for s in album["song"]] == ["Flatbush Ave", "Last Stop"]
    song = album["song"][0]
    assert song["artist"] == "ana" and song["album"] == "Night Bus" and song["track"] == 1
    assert song["albumId"] == night["id"] and song["artistId"] == ana["id"]
    assert song["suffix"] == "mp3" and song["duration"] == 181 and song["genre"] == "House"
    again = (await call(conn, "getSong", song["id"]))["song"]
    assert again["title"] == "Flatbush Ave"

    # The folder view (getIndexes / getMusicDirectory) over the same catalog.
    indexes = (await call(conn, "getIndexes"))["indexes"]
    assert indexes["index"][0]["name"] == "A"
    folder = (await call(conn, "getMusicDirectory", ana["id"]))["directory"]
    assert {c["title"] for c in folder["child"]} == {"Night Bus", "Deep Cuts"}
    assert all(c["isDir"] for c in folder["child"])
    inside = (await call(conn, "getMusicDirectory", night["id"]))["directory"]
    assert [c["title"] for c in inside["child"]] == ["Flatbush Ave", "Last Stop"]

    folders = (await call(conn, "getMusicFolders"))["musicFolders"]["musicFolder"]
    assert len(folders) == 1
    user = (await call(conn, "getUser", "fan"))["user"]
    assert user["username"] == "fan" and user["streamRole"] is True


async def test_drafts_never_show(catalog):
    conn = sonic(catalog.node)
    everything = (await call(conn, "search3", '""', songCount=100))["searchResult3"]
    titles = {s["title"] for s in everything["song"]}
    assert titles == {"Flatbush Ave", "Last Stop", "Bedstuy Dub"}
    draft_id = await id_of(catalog.node, "track", catalog.tracks["Secret Demo"])
    _, root, _ = await dsub(catalog.node, "getSong", id=draft_id)
    assert error_code(root) == 70


async def test_dsub_reads_the_folder_view_as_xml(catalog):
    node = catalog.node
    _, root, _ = await dsub(node, "getIndexes")
    artist = root.find(f"{NS}indexes/{NS}index/{NS}artist")
    assert artist.get("name") == "ana"
    _, root, _ = await dsub(node, "getMusicDirectory", id=artist.get("id"))
    albums = root.findall(f"{NS}directory/{NS}child")
    assert {a.get("title") for a in albums} == {"Night Bus", "Deep Cuts"}
    assert {a.get("isDir") for a in albums} == {"true"}
    night = next(a for a in albums if a.get("title") == "Night Bus")
    _, root, _ = await dsub(node, "getMusicDirectory", id=night.get("id"))
    songs = root.findall(f"{NS}directory/{NS}child")
    assert [s.get("title") for s in songs] == ["Flatbush Ave", "Last Stop"]
    assert songs[0].get("isDir") == "false" and songs[0].get("duration") == "181"
    assert songs[0].get("coverArt") and songs[0].get("parent") == night.get("id")

    _, root, _ = await dsub(node, "getAlbumList", type="alphabeticalByName", size="10")
    assert [a.get("title") for a in root.findall(f"{NS}albumList/{NS}album")] == [
        "Deep Cuts",
        "Night Bus",
    ]
    _, root, _ = await dsub(node, "getGenres")
    genres = {g.text: int(g.get("songCount")) for g in root.findall(f"{NS}genres/{NS}genre")}
    assert genres == {"House": 2, "Dub": 1}


async def test_unknown_ids_are_70_and_missing_params_10(catalog):
    node = catalog.node
    for method, params in (
        ("getAlbum", {"id": "al-999999"}),
        ("getSong", {"id": "tr-424242"}),
        ("getArtist", {"id": "nonsense"}),
        ("getMusicDirectory", {"id": "pl-1"}),
        ("getCoverArt", {"id": "al-77777"}),
        ("stream", {"id": "tr-31337"}),
        ("getPlaylist", {"id": "pl-5"}),
    ):
        _, root, _ = await dsub(node, method, **params)
        assert error_code(root) == 70, method
    for method in ("getAlbum", "getSong", "stream", "getCoverArt", "getPlaylist", "getUser"):
        _, root, _ = await dsub(node, method)
        assert error_code(root) == 10, method
    _, root, _ = await dsub(node, "search3")
    assert error_code(root) == 10
    _, root, _ = await dsub(node, "getAlbumList2")
    assert error_code(root) == 10
    _, root, _ = await dsub(node, "getAlbumList2", type="byYear")
    assert error_code(root) == 10
    # A bad value is a generic error with a message, never a server error.
    _, root, _ = await dsub(node, "getAlbumList2", type="loudest")
    assert error_code(root) == 0
    _, root, _ = await dsub(node, "getRandomSongs", size="lots")
    assert error_code(root) == 0


async def test_album_lists_random_songs_and_genres(catalog):
    conn = sonic(catalog.node)

    async def names(kind, **kw):
        albums = (await call(conn, "getAlbumList2", kind, **kw))["albumList2"].get("album", [])
        return [a["name"] for a in albums]

    assert await names("alphabeticalByName") == ["Deep Cuts", "Night Bus"]
    assert await names("newest") == ["Deep Cuts", "Night Bus"]
    assert sorted(await names("random")) == ["Deep Cuts", "Night Bus"]
    assert await names("alphabeticalByArtist") == ["Deep Cuts", "Night Bus"]
    assert await names("byGenre", genre="house") == ["Night Bus"]
    assert await names("alphabeticalByName", size=1, offset=1) == ["Night Bus"]
    assert await names("starred") == [] and await names("frequent") == []

    random = (await call(conn, "getRandomSongs", size=10))["randomSongs"]["song"]
    assert len(random) == 3
    by_genre = (await call(conn, "getSongsByGenre", "Dub"))["songsByGenre"]["song"]
    assert [s["title"] for s in by_genre] == ["Bedstuy Dub"]
    genres = (await call(conn, "getGenres"))["genres"]["genre"]
    assert {g["value"]: g["songCount"] for g in genres} == {"House": 2, "Dub": 1}


async def test_stream_download_and_cover_art(catalog):
    node = catalog.node
    conn = sonic(node)
    song_id = await id_of(node, "track", catalog.tracks["Last Stop"])
    audio = catalog.audio["Last Stop"]

    response = await call(conn, "stream", song_id)
    assert await asyncio.to_thread(response.read) == audio["mp3_320"]
    capped = await call(conn, "stream", song_id, maxBitRate=128)
    assert await asyncio.to_thread(capped.read) == audio["mp3_128"]
    raw = await call(conn, "stream", song_id, tformat="raw")
    assert await asyncio.to_thread(raw.read) == audio["original"]
    opus = await call(conn, "stream", song_id, tformat="opus")
    assert await asyncio.to_thread(opus.read) == audio["opus"]
    original = await call(conn, "download", song_id)
    assert await asyncio.to_thread(original.read) == audio["original"]

    # Seeking: DSub asks for a byte range.
    salt = "s4lt"
    query = {
        "u": "fan",
        "s": salt,
        "t": hashlib.md5((PASSWORD + salt).encode()).hexdigest(),
        "v": "1.2.0",
        "c": "DSub",
        "id": song_id,
    }
    async with ClientSession() as http:
        async with http.get(
            f"{node.base_url}/rest/stream.view", params=query, headers={"Range": "bytes=100-199"}
        ) as r:
            assert r.status == 206
            assert await r.read() == audio["mp3_320"][100:200]
        async with http.get(f"{node.base_url}/rest/download.view", params=query) as r:
            assert "attachment" in r.headers.get("Content-Disposition", "")

    cover = await call(conn, "getCoverArt", song_id, size=100)
    assert await asyncio.to_thread(cover.read) == catalog.covers["Last Stop"]["300"]
    biggest = await call(conn, "getCoverArt", song_id)
    assert await asyncio.to_thread(biggest.read) == catalog.covers["Last Stop"]["1200"]
    album_id = await id_of(node, "release", catalog.albums["Night Bus"])
    album_cover = await call(conn, "getCoverArt", album_id, size=64)
    assert await asyncio.to_thread(album_cover.read) == catalog.covers["Flatbush Ave"]["64"]


async def play_count(node, source: str = "subsonic") -> int:
    async with node.ctx.db.read_session() as s:
        return await s.scalar(select(func.count()).select_from(Play).where(Play.source == source))


async def test_a_scrobble_makes_exactly_one_play(catalog):
    node = catalog.node
    conn = sonic(node)
    song_id = await id_of(node, "track", catalog.tracks["Flatbush Ave"])

    # Now playing is not a play.
    await call(conn, "scrobble", song_id, submission=False)
    now = (await call(conn, "getNowPlaying"))["nowPlaying"]["entry"]
    assert now[0]["title"] == "Flatbush Ave" and now[0]["username"] == "fan"
    assert await play_count(node) == 0

    listened_at = time.time() - 120
    await call(conn, "scrobble", song_id, submission=True, listenTime=listened_at)
    await call(conn, "scrobble", song_id, submission=True, listenTime=listened_at)  # a retry
    _, root, _ = await dsub(
        node, "scrobble", id=song_id, time=str(int(listened_at * 1000)), submission="True"
    )
    assert error_code(root) is None
    assert await play_count(node) == 1
    async with node.ctx.db.read_session() as s:
        play = await s.scalar(select(Play))
    assert play.track_uri.endswith(catalog.tracks["Flatbush Ave"])
    assert play.ms_listened == 181_000

    # Another listen later is another play; the same for another user.
    await call(conn, "scrobble", song_id, listenTime=listened_at + 300)
    await call(sonic(node, "other", "other password"), "scrobble", song_id, listenTime=listened_at)
    assert await play_count(node) == 3
    # "False" (as some apps spell it) is no play either.
    _, root, _ = await dsub(node, "scrobble", id=song_id, submission="False")
    assert error_code(root) is None and await play_count(node) == 3


async def test_stars_and_ratings(catalog):
    node = catalog.node
    conn = sonic(node)
    song_id = await id_of(node, "track", catalog.tracks["Bedstuy Dub"])
    album_id = await id_of(node, "release", catalog.albums["Night Bus"])
    artist_id = (await call(conn, "getArtists"))["artists"]["index"][0]["artist"][0]["id"]

    await call(conn, "star", sids=[song_id], albumIds=[album_id], artistIds=[artist_id])
    await call(conn, "star", sids=[song_id])  # twice is still one star
    starred = (await call(conn, "getStarred2"))["starred2"]
    assert [s["title"] for s in starred["song"]] == ["Bedstuy Dub"]
    assert [a["name"] for a in starred["album"]] == ["Night Bus"]
    assert [a["name"] for a in starred["artist"]] == ["ana"]
    assert "starred" in (await call(conn, "getSong", song_id))["song"]
    listed = (await call(conn, "getAlbumList2", "starred"))["albumList2"]["album"]
    assert [a["name"] for a in listed] == ["Night Bus"]
    # Stars are per user.
    theirs = (await call(sonic(node, "other", "other password"), "getStarred2"))["starred2"]
    assert not theirs.get("song")

    await call(conn, "unstar", sids=[song_id])
    starred = (await call(conn, "getStarred2"))["starred2"]
    assert not starred.get("song") and len(starred["album"]) == 1

    await call(conn, "setRating", album_id, 4)
    assert (await call(conn, "getAlbum", album_id))["album"]["userRating"] == 4
    highest = (await call(conn, "getAlbumList2", "highest"))["albumList2"]["album"]
    assert [a["name"] for a in highest] == ["Night Bus"]
    await call(conn, "setRating", album_id, 0)
    assert "userRating" not in (await call(conn, "getAlbum", album_id))["album"]
    _, root, _ = await dsub(node, "setRating", id=album_id, rating="9")
    assert error_code(root) == 0


async def test_playlists(catalog):
    node = catalog.node
    conn = sonic(node)
    ids = {t: await id_of(node, "track", u) for t, u in catalog.tracks.items()}

    created = await call(
        conn, "createPlaylist", name="Commute", songIds=[ids["Last Stop"], ids["Flatbush Ave"]]
    )
    playlist = created["playlist"]
    assert playlist["id"].startswith("pl-") and playlist["songCount"] == 2
    assert [e["title"] for e in playlist["entry"]] == ["Last Stop", "Flatbush Ave"]

    await call(
        conn,
        "updatePlaylist",
        playlist["id"],
        name="Morning commute",
        comment="for the G train",
        songIdsToAdd=[ids["Bedstuy Dub"]],
        songIndexesToRemove=[0],
    )
    _, root, _ = await dsub(node, "updatePlaylist", playlistId=playlist["id"], public="True")
    assert error_code(root) is None
    got = (await call(conn, "getPlaylist", playlist["id"]))["playlist"]
    assert got["name"] == "Morning commute" and got["comment"] == "for the G train"
    assert [e["title"] for e in got["entry"]] == ["Flatbush Ave", "Bedstuy Dub"]
    assert got["public"] is True and got["owner"] == "fan"

    # Another fan sees the public list but cannot change or delete it.
    other = sonic(node, "other", "other password")
    theirs = (await call(other, "getPlaylists"))["playlists"]["playlist"]
    assert [p["name"] for p in theirs] == ["Morning commute"]
    with pytest.raises(libsonic.errors.AuthError):
        await call(other, "deletePlaylist", playlist["id"])
    # A draft song cannot be added.
    _, root, _ = await dsub(
        node, "updatePlaylist", playlistId=playlist["id"], songIdToAdd=ids["Secret Demo"]
    )
    assert error_code(root) == 70

    # createPlaylist with playlistId replaces the songs.
    await call(conn, "createPlaylist", playlistId=playlist["id"], songIds=[ids["Last Stop"]])
    got = (await call(conn, "getPlaylist", playlist["id"]))["playlist"]
    assert [e["title"] for e in got["entry"]] == ["Last Stop"]

    await call(conn, "deletePlaylist", playlist["id"])
    assert not (await call(conn, "getPlaylists"))["playlists"].get("playlist")


async def test_search_finds_by_name_and_pages_through_everything(catalog):
    node = catalog.node
    for n in range(12):
        await publish(node, catalog, "ana", f"Volume {n:02d}", [f"Loop {n:02d}"])
    conn = sonic(node)

    found = (await call(conn, "search3", "night"))["searchResult3"]
    assert [a["name"] for a in found["album"]] == ["Night Bus"]
    found = (await call(conn, "search3", "LOOP 0"))["searchResult3"]
    assert len(found["song"]) == 10
    old = (await call(conn, "search2", "flatbush"))["searchResult2"]
    assert [s["title"] for s in old["song"]] == ["Flatbush Ave"]

    # An empty query pages through the whole library, page after page, no repeats.
    seen: list[str] = []
    offset = 0
    while True:
        page = (
            await call(
                conn, "search3", "", artistCount=0, albumCount=0, songCount=4, songOffset=offset
            )
        )["searchResult3"].get("song", [])
        if not page:
            break
        seen += [s["id"] for s in page]
        offset += len(page)
    assert len(seen) == len(set(seen)) == 15
    # A client jumping straight to a deep offset gets the same rows.
    jump = (await call(conn, "search3", "", songCount=4, songOffset=8))["searchResult3"]["song"]
    assert [s["id"] for s in jump] == seen[8:12]

    # The next page after one served is read from where that one ended, by id,
    # without skipping rows (what keeps deep pages as fast as the first).
    statements: list[str] = []

    def log(conn, cursor, statement, parameters, *args):
        if "FROM tracks" in statement and "LIMIT" in statement:
            # SQLite always writes an OFFSET; skipping nothing is OFFSET 0.
            skips = "OFFSET" in statement and list(parameters)[-1] != 0
            statements.append(("skips rows " if skips else "") + statement)

    engine = node.ctx.db.read_engine.sync_engine
    event.listen(engine, "before_cursor_execute", log)
    try:
        page = await call(
            conn, "search3", "", artistCount=0, albumCount=0, songCount=4, songOffset=12
        )
    finally:
        event.remove(engine, "before_cursor_execute", log)
    assert [s["id"] for s in page["searchResult3"]["song"]] == seen[12:]
    assert statements
    assert all(not q.startswith("skips rows") and "tracks.id >" in q for q in statements)


async def test_a_single_without_a_release_sits_in_its_artists_folder(live_node):
    node = live_node
    cat = Catalog(node)
    await node.user("ana", role="artist")
    await node.user("fan")
    await set_password(node, "fan")
    single = await api(node, "POST", "/api/v1/tracks", "ana", {"title": 'Rock & <Roll> "Live"'})
    await make_ready(node, cat, "ana", single["uuid"], "single", 1)

    _, root, _ = await dsub(node, "getIndexes")
    artist_id = root.find(f"{NS}indexes/{NS}index/{NS}artist").get("id")
    _, root, _ = await dsub(node, "getMusicDirectory", id=artist_id)
    (child,) = root.findall(f"{NS}directory/{NS}child")
    assert child.get("title") == 'Rock & <Roll> "Live"' and child.get("isDir") == "false"
    assert child.get("album") is None and child.get("parent") == artist_id

    conn = sonic(node)
    found = (await call(conn, "search3", "<roll>"))["searchResult3"]["song"]
    assert [s["title"] for s in found] == ['Rock & <Roll> "Live"']
    # Starring twice at once is still one star.
    await asyncio.gather(*(call(conn, "star", sids=[found[0]["id"]]) for _ in range(3)))
    assert len((await call(conn, "getStarred2"))["starred2"]["song"]) == 1


def synth_wav(seconds: float, freq: float = 440.0, rate: int = 44100) -> bytes:
    """A stereo 16-bit WAV master of a sine tone (PyAV)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="stereo")
        t = np.arange(int(seconds * rate)) / rate
        tone = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)
        pcm = np.repeat(tone, 2).reshape(1, -1)
        for i in range(0, pcm.shape[1], 2048):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm[:, i : i + 2048]), format="s16", layout="stereo"
            )
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


async def test_an_uploaded_master_plays_in_a_subsonic_app(live_node):
    node = live_node
    await node.user("ana", role="artist")
    await node.user("fan")
    await set_password(node, "fan")
    master = synth_wav(3.0)
    form = FormData()
    form.add_field("title", "Myrtle Ave")
    form.add_field("file", master, filename="myrtle.wav", content_type="audio/wav")
    async with ClientSession() as http:
        async with http.post(
            f"{node.base_url}/api/v1/tracks", data=form, headers=node.auth("ana")
        ) as r:
            assert r.status == 201, await r.text()
            track = await r.json()
    release = await api(
        node, "POST", "/api/v1/releases", "ana", {"title": "Wyckoff", "tracks": [track["uuid"]]}
    )
    await api(node, "POST", f"/api/v1/releases/{release['uuid']}/publish", "ana")
    await node.run_jobs()  # (the node's own worker may have taken the transcode: wait below)

    conn = sonic(node)

    async def found():
        return (await call(conn, "search3", "myrtle"))["searchResult3"].get("song")

    (song,) = await eventually(found, timeout=120)
    assert song["album"] == "Wyckoff" and song["duration"] == 3 and song["suffix"] == "wav"
    streamed = await asyncio.to_thread((await call(conn, "stream", song["id"])).read)
    with av.open(io.BytesIO(streamed)) as decoded:
        audio = decoded.streams.audio[0]
        assert audio.codec_context.name.startswith("mp3")  # decoder: mp3float
        assert abs(float(decoded.duration / av.time_base) - 3.0) < 0.2
        assert audio.bit_rate == 320_000
    capped = await asyncio.to_thread((await call(conn, "stream", song["id"], maxBitRate=128)).read)
    with av.open(io.BytesIO(capped)) as decoded:
        assert decoded.streams.audio[0].bit_rate == 128_000
    downloaded = await asyncio.to_thread((await call(conn, "download", song["id"])).read)
    assert downloaded == master


# ---- across nodes ---------------------------------------------------------------------


async def eventually(check, timeout: float = 15.0):
    """Poll until `check()` returns something truthy (delivery runs in the background)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def test_remote_artists_a_fan_follows_appear_in_their_app(network):
    brooklyn, queens = await network(2)
    await brooklyn.user("jay", role="artist")
    await queens.user("rosa")
    await queens.user("sam")
    await set_password(queens, "rosa")
    await set_password(queens, "sam")
    await api(queens, "POST", "/api/v1/follows", "rosa", {"target": f"@jay@{brooklyn.ctx.domain}"})

    async def accepted():
        follows = await api(queens, "GET", "/api/v1/follows", "rosa")
        return follows[0]["state"] == "accepted"

    await eventually(accepted)
    origin = Catalog(brooklyn)
    await publish(brooklyn, origin, "jay", "Kings County", ["Fulton St"], genres=["Jazz"])

    rosa = sonic(queens, "rosa")

    async def artists_rosa_sees():
        found = (await call(rosa, "getArtists"))["artists"].get("index", [])
        artists = [a for idx in found for a in idx["artist"]]
        return artists if any(a["albumCount"] for a in artists) else None

    (jay,) = await eventually(artists_rosa_sees)
    assert jay["name"] == "jay" and jay["albumCount"] == 1
    (album,) = (await call(rosa, "getArtist", jay["id"]))["artist"]["album"]
    assert album["name"] == "Kings County"
    songs = (await call(rosa, "getAlbum", album["id"]))["album"]["song"]
    assert [s["title"] for s in songs] == ["Fulton St"]
    everything = (await call(rosa, "search3", ""))["searchResult3"]
    assert [s["title"] for s in everything["song"]] == ["Fulton St"]

    # Sam, on the same node, follows nobody: nothing remote in his app.
    sam = sonic(queens, "sam")
    assert not (await call(sam, "getArtists"))["artists"].get("index")
    assert not (await call(sam, "search3", ""))["searchResult3"].get("song")
    _, root, _ = await dsub(queens, "getAlbum", user="sam", id=album["id"])
    assert error_code(root) == 70

    # Rosa's scrobble is one play on her node, which tells Jay's node once.
    listened_at = time.time() - 60
    await call(rosa, "scrobble", songs[0]["id"], listenTime=listened_at)
    await call(rosa, "scrobble", songs[0]["id"], listenTime=listened_at)
    assert await play_count(queens) == 1

    async def counted_at_origin():
        async with brooklyn.ctx.db.read_session() as s:
            return await s.scalar(select(func.count()).select_from(Play))

    assert await eventually(counted_at_origin) == 1
