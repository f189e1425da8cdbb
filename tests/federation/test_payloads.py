"""Real payloads: what Mastodon and Funkwhale send us, and what they get from us.

The fixtures in payloads/ are written in those servers' shapes (see its
README). A fake server on loopback plays Mastodon or Funkwhale: it signs each
payload with its actor's key and posts it to our real inbox, and it records
what our node delivers back. Each test checks what a person would see.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from multidict import CIMultiDict
from sqlalchemy import func, select

from federation.models import InboxItem
from federation.signatures import PublicKey, verify_request
from node.models import Actor, ArtistProfile, Follow, Like, Play, Track

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


async def count(node, model, *where) -> int:
    async with node.ctx.db.read_session() as s:
        return await s.scalar(select(func.count()).select_from(model).where(*where))


async def actor(node, uri: str) -> Actor | None:
    async with node.ctx.db.read_session() as s:
        return await s.scalar(select(Actor).where(Actor.uri == uri))


@pytest.fixture
async def brooklyn(network, api):
    """Our node, with Jay (an artist) and one published release with one track."""
    (node,) = await network(1)
    await node.user("jay", "artist")
    _, track = await api(
        node, "POST", "/api/v1/tracks", "jay", json={"title": "Fulton St", "duration_ms": 187_000}
    )
    _, rel = await api(
        node,
        "POST",
        "/api/v1/releases",
        "jay",
        json={"title": "Kings County", "kind": "ep", "tracks": [track["uuid"]]},
    )
    _, rel = await api(node, "POST", f"/api/v1/releases/{rel['uuid']}/publish", "jay")
    node.release, node.track = rel, track
    return node


@pytest.fixture
async def mastodon(remote):
    fake = await remote("mastodon")
    fake.add_actor("alice")
    return fake


def settled(node, activity: dict):
    """A check: the stored activity has been handled (processed or ignored)."""
    # Kept by its id, or (an Accept with an id on another host) by actor and id.
    keys = [activity["id"], f"{activity['actor']} {activity['id']}"]

    async def check():
        async with node.ctx.db.read_session() as s:
            item = await s.scalar(select(InboxItem).where(InboxItem.activity_id.in_(keys)))
        return item is not None and item.state in ("processed", "ignored", "failed") and item

    return check


async def deliver(fake, node, payload: dict, eventually, **kw):
    """Post a payload to the node's shared inbox and wait until it is handled."""
    status, answer = await fake.post(node.base_url + "/inbox", payload, **kw)
    assert status == 202, answer
    item = await eventually(settled(node, payload))
    assert item.state == "processed", item.error
    return item


# ---- from Mastodon ----------------------------------------------------------------


async def test_a_mastodon_user_follows_and_unfollows_an_artist(brooklyn, mastodon, eventually):
    ours = brooklyn.base_url
    follow = mastodon.payload("mastodon_follow", ours=ours)
    await deliver(mastodon, brooklyn, follow, eventually)

    async with brooklyn.ctx.db.read_session() as s:
        row = await s.scalar(select(Follow).where(Follow.uri == follow["id"]))
    assert row.state == "accepted"

    # Mastodon matches the Accept to its Follow by the embedded Follow's id.
    accept = await eventually(lambda: _first(mastodon, "Accept"))
    assert accept["actor"] == brooklyn.ctx.urls.actor("jay")
    assert accept["object"]["id"] == follow["id"] and accept["object"]["type"] == "Follow"
    assert mastodon.received[0].path == "/users/alice/inbox"

    await deliver(
        mastodon, brooklyn, mastodon.payload("mastodon_undo_follow", ours=ours), eventually
    )
    assert await count(brooklyn, Follow) == 0


async def _first(fake, kind: str):
    found = fake.activities(kind)
    return found[0] if found else None


async def test_a_mastodon_like_of_a_release(brooklyn, mastodon, eventually):
    like = mastodon.payload("mastodon_like", OBJECT=brooklyn.release["uri"])
    await deliver(mastodon, brooklyn, like, eventually)
    async with brooklyn.ctx.db.read_session() as s:
        row = await s.scalar(select(Like))
    assert (row.uri, row.object_uri) == (like["id"], brooklyn.release["uri"])


async def test_a_mastodon_reply_becomes_a_sanitized_comment(brooklyn, mastodon, eventually, api):
    track_uri = brooklyn.track["uri"]
    reply = mastodon.payload(
        "mastodon_create_note_reply",
        ours=brooklyn.base_url,
        OBJECT=track_uri,
        OURHOST=brooklyn.ctx.domain,
    )
    await deliver(mastodon, brooklyn, reply, eventually)

    _, comments = await api(brooklyn, "GET", "/api/v1/comments", params={"object": track_uri})
    (comment,) = comments
    assert comment["uri"] == reply["object"]["id"]
    assert comment["author"]["handle"] == "alice" and comment["local"] is False
    html = comment["content"]
    assert "that bassline on the second track" in html and "see you at the show" in html
    assert f'href="{brooklyn.base_url}/@jay"' in html  # the mention stays a link
    for dangerous in ("<script", "fetch(", "onerror", "<img", "alert"):
        assert dangerous not in html, html


async def test_a_mastodon_profile_update(brooklyn, mastodon, eventually):
    alice = mastodon.actors["alice"]
    await deliver(
        mastodon, brooklyn, mastodon.payload("mastodon_follow", ours=brooklyn.base_url), eventually
    )
    update = mastodon.payload("mastodon_update_person", PEM=alice.public_pem.replace("\n", "\\n"))
    await deliver(mastodon, brooklyn, update, eventually)

    row = await actor(brooklyn, alice.uri)
    assert row.name == "Alice on tour 🎧"
    assert row.summary == "<p>Record collector, now on the road.</p>"
    assert row.manually_approves_followers is True
    assert row.avatar_url.endswith("/tour.jpg")


async def test_a_mastodon_account_deletion(brooklyn, mastodon, eventually):
    alice = mastodon.actors["alice"]
    ours = brooklyn.base_url
    await deliver(mastodon, brooklyn, mastodon.payload("mastodon_follow", ours=ours), eventually)
    await deliver(
        mastodon,
        brooklyn,
        mastodon.payload("mastodon_like", OBJECT=brooklyn.release["uri"]),
        eventually,
    )
    # Her server now answers 410 for her, so only the cached key can verify.
    del mastodon.actors["alice"]
    await deliver(
        mastodon, brooklyn, mastodon.payload("mastodon_delete_actor"), eventually, signer=alice
    )

    assert await actor(brooklyn, alice.uri) is None
    assert await count(brooklyn, Follow) == 0
    assert await count(brooklyn, Like) == 0


async def test_a_remote_artists_account_deletion(brooklyn, remote, eventually):
    """An artist with a profile (borough, genres) and a track here leaves their
    server: profile, catalog copies and follows go with them."""
    fake = await remote("funkwhale")
    bob = fake.add_actor("bob", genres=["dub"], borough="Queens")
    follow = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{bob.uri}#follows/1",
        "type": "Follow",
        "actor": bob.uri,
        "object": brooklyn.ctx.urls.actor("jay"),
    }
    await deliver(fake, brooklyn, follow, eventually, signer=bob)
    await deliver(fake, brooklyn, fake.payload("funkwhale_create_audio"), eventually, signer=bob)
    row = await actor(brooklyn, bob.uri)
    assert row.is_artist
    assert await count(brooklyn, ArtistProfile, ArtistProfile.actor_id == row.id) == 1
    assert await count(brooklyn, Track, Track.artist_id == row.id) == 1

    delete = fake.payload("mastodon_delete_actor")  # the shape every server sends
    delete |= {"id": f"{bob.uri}#delete", "actor": bob.uri, "object": bob.uri}
    await deliver(fake, brooklyn, delete, eventually, signer=bob)
    assert await actor(brooklyn, bob.uri) is None
    assert await count(brooklyn, ArtistProfile, ArtistProfile.actor_id == row.id) == 0
    assert await count(brooklyn, Track, Track.artist_id == row.id) == 0
    assert await count(brooklyn, Follow) == 0


# ---- from Funkwhale ----------------------------------------------------------------


async def test_a_funkwhale_channel_is_followed_and_its_upload_is_stored(
    brooklyn, remote, eventually, api
):
    fake = await remote("funkwhale")
    bob = fake.add_actor("bob")
    await brooklyn.user("rosa")

    # Rosa follows Bob's channel; Funkwhale accepts with its own id scheme
    # (the Follow's id + "/accept", on *our* host).
    status, f = await api(
        brooklyn, "POST", "/api/v1/follows", "rosa", json={"target": f"@bob@{fake.host}"}
    )
    assert (status, f["state"]) == (201, "pending"), f
    sent = await eventually(lambda: _first(fake, "Follow"))
    accept = fake.payload(
        "funkwhale_accept_follow",
        ours=brooklyn.base_url,
        FOLLOW=sent["id"],
        FAN=sent["actor"],
    )
    await deliver(fake, brooklyn, accept, eventually, signer=bob)

    async def accepted():
        _, mine = await api(brooklyn, "GET", "/api/v1/follows", "rosa")
        return mine[0]["state"] == "accepted"

    await eventually(accepted)

    create = fake.payload("funkwhale_create_audio")
    await deliver(fake, brooklyn, create, eventually, signer=bob)

    _, tracks = await api(brooklyn, "GET", f"/api/v1/artists/bob@{fake.host}/tracks")
    (track,) = tracks["items"]
    assert track["uri"] == create["object"]["id"]
    assert track["title"] == "Jamaica Avenue Dub"
    assert track["duration_ms"] == 213_000  # Funkwhale sends seconds
    async with brooklyn.ctx.db.read_session() as s:
        row = await s.scalar(select(Track).where(Track.uri == track["uri"]))
    assert row.local is False and row.genres == ["dub", "reggae"]
    (audio,) = row.media["remote_audio"]
    assert audio["mediaType"] == "audio/mpeg" and "/api/v1/listen/" in audio["href"]


async def test_a_funkwhale_listen_counts_a_play_here(brooklyn, remote, eventually):
    fake = await remote("funkwhale")
    bob = fake.add_actor("bob")
    listen = fake.payload("funkwhale_listen", ours=brooklyn.base_url, TRACK=brooklyn.track["uri"])
    await deliver(fake, brooklyn, listen, eventually, signer=bob)

    async with brooklyn.ctx.db.read_session() as s:
        (play,) = (await s.scalars(select(Play))).all()
    assert play.listener_uri == bob.uri and play.track_uri == brooklyn.track["uri"]
    assert play.origin == "remote" and play.ms_listened == 187_000

    # The same Listen again (a retry): still one play.
    status, answer = await fake.post(brooklyn.base_url + "/inbox", listen, signer=bob)
    assert (status, answer["status"]) == (202, "duplicate")
    assert await count(brooklyn, Play) == 1


# ---- to Mastodon and Funkwhale -----------------------------------------------------------


async def test_what_a_mastodon_follower_receives_when_an_artist_publishes(
    network, api, mastodon, eventually
):
    (brooklyn,) = await network(1)
    await brooklyn.user("jay", "artist")
    await deliver(
        mastodon, brooklyn, mastodon.payload("mastodon_follow", ours=brooklyn.base_url), eventually
    )

    _, track = await api(
        brooklyn,
        "POST",
        "/api/v1/tracks",
        "jay",
        json={"title": "Myrtle Av", "duration_ms": 200_000},
    )
    # The media pipeline has transcoded it (what it writes into track.media).
    async with brooklyn.ctx.db.transaction() as s:
        row = await s.scalar(select(Track).where(Track.uuid == track["uuid"]))
        row.media = {
            "files": {
                "opus": {"key": "o", "mime": "audio/ogg"},
                "mp3_320": {"key": "m", "mime": "audio/mpeg"},
            }
        }
    _, rel = await api(
        brooklyn,
        "POST",
        "/api/v1/releases",
        "jay",
        json={
            "title": "Broadway Junction",
            "kind": "single",
            "tracks": [track["uuid"]],
            "genres": ["hip hop"],
        },
    )
    await api(brooklyn, "POST", f"/api/v1/releases/{rel['uuid']}/publish", "jay")

    create = await eventually(lambda: _first(mastodon, "Create"))
    delivered = next(r for r in mastodon.received if r.activity is create)
    assert delivered.path == "/inbox"  # one copy per server, to its shared inbox
    jay = brooklyn.ctx.urls.actor("jay")
    followers = f"{jay}/followers"

    # A post Mastodon shows: a public Note with a link to the release and its audio.
    note = create["object"]
    assert create["actor"] == jay and note["attributedTo"] == jay
    assert note["type"] == "Note"
    assert f'href="{rel["uri"]}"' in note["content"]
    for doc in (create, note):
        assert PUBLIC in doc["to"] and followers in doc["cc"]
    (audio,) = note["attachment"]
    assert audio["type"] == "Document" and audio["mediaType"] == "audio/ogg"
    assert audio["url"] == f"{track['uri']}/stream?format=opus" and audio["name"] == "Myrtle Av"
    assert {"type": "Hashtag", "name": "#hiphop"} in note["tag"]
    assert create["@context"][0] == "https://www.w3.org/ns/activitystreams"

    # Signed the way Mastodon verifies: cavage, jay's key, over the body's digest.
    async with brooklyn.ctx.db.read_session() as s:
        key = (await s.scalar(select(Actor).where(Actor.uri == jay))).public_key_pem

    async def lookup(key_id: str, refresh: bool):
        return PublicKey(key_id, jay, key) if key_id == f"{jay}#main-key" else None

    verified = await verify_request(
        "POST", delivered.path, CIMultiDict(delivered.headers), delivered.body, lookup
    )
    assert verified.owner == jay


async def test_plays_reach_a_funkwhale_artist_as_plain_listen(network, api, remote, eventually):
    """A fan here plays a track from a Funkwhale pod: the pod gets a `Listen`
    (the plain term, as Funkwhale and every AS2 reader expects), addressed to
    the artist only."""
    (brooklyn,) = await network(1)
    await brooklyn.user("rosa")
    fake = await remote("funkwhale")
    bob = fake.add_actor("bob")
    audio = fake.payload("funkwhale_create_audio")["object"]
    fake.docs[audio["id"].removeprefix(fake.base)] = audio

    started = (datetime.now(UTC) - timedelta(minutes=4)).isoformat()
    status, play = await api(
        brooklyn,
        "POST",
        "/api/v1/plays",
        "rosa",
        json={
            "track": audio["id"],
            "started_at": started,
            "ms_listened": 180_000,
            "id": "rosa-play-0001",
        },
    )
    assert status == 201, play

    listen = await eventually(lambda: _first(fake, "Listen"))
    assert listen["type"] == "Listen"  # never "as:Listen"
    assert listen["actor"] == brooklyn.ctx.urls.actor("rosa")
    assert listen["object"] == audio["id"]
    assert listen["to"] == [bob.uri]
    assert listen["msListened"] == 180_000
    assert fake.received[-1].path == "/federation/actors/bob/inbox"
    for received in fake.received:
        assert ":" not in received.activity["type"]
    assert json.dumps(listen).count("as:Listen") == 1  # only the context's term definition
