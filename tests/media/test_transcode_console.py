"""The node's admin watches media in the console: storage use, the transcode
queue, failed tracks with their reason, and a retry that brings one back."""

from __future__ import annotations

from aiohttp import FormData
from sqlalchemy import select

from media import synth
from node.auth import csrf_token, issue_token
from node.models import Track
from node.services.accounts import get_account


async def upload(node, user: str, seed: int, title: str) -> dict:
    f = FormData()
    f.add_field("title", title)
    f.add_field(
        "file",
        synth.encode(synth.master(2, seed=seed), "wav"),
        filename="m.wav",
        content_type="audio/wav",
    )
    r = await node.client.post("/api/v1/tracks", data=f, headers=node.auth(user))
    assert r.status == 201, await r.text()
    return await r.json()


async def session_of(node, username: str) -> tuple[dict[str, str], str]:
    async with node.ctx.db.transaction() as s:
        secret, _ = await issue_token(s, await get_account(s, username), kind="session")
    return {"Cookie": f"nycmg_session={secret}"}, csrf_token(node.settings.node.secret_key, secret)


async def test_the_console_shows_storage_the_queue_and_failures_and_retries_one(node):
    await node.user("ana", "artist")
    await node.user("boss", "admin")
    await node.user("cura", "curator")
    good = await upload(node, "ana", 1, "Good Take")
    lost = await upload(node, "ana", 2, "Lost Master")
    async with node.ctx.db.read_session() as s:
        row = await s.scalar(select(Track).where(Track.uuid == lost["uuid"]))
    master = node.settings.data_dir / row.original_path
    kept = master.read_bytes()
    master.unlink()

    r = await node.client.get("/admin/media.json", headers=node.auth("cura"))
    assert r.status == 200
    before = await r.json()
    assert before["tracks"]["processing"] == 2
    assert before["jobs"]["queued"] == 2

    await node.run_jobs()
    r = await node.client.get("/admin/media.json", headers=node.auth("cura"))
    data = await r.json()
    assert data["tracks"]["ready"] == 1 and data["tracks"]["failed"] == 1
    assert data["storage"]["backend"] == "local"
    assert data["storage"]["objects"] >= 6 and data["storage"]["bytes"] > 0
    assert [(t["title"], t["artist"]) for t in data["failed"]] == [("Lost Master", "ana")]
    assert "missing" in data["failed"][0]["error"]

    # The page shows the same, with a Retry button for the admin only.
    cookie, token = await session_of(node, "boss")
    page = await (await node.client.get("/admin/media", headers=cookie)).text()
    assert "Lost Master" in page and "Retry" in page
    cura_cookie, _ = await session_of(node, "cura")
    page = await (await node.client.get("/admin/media", headers=cura_cookie)).text()
    assert "Lost Master" in page and "Retry" not in page
    r = await node.client.post(
        "/admin/media/retry.json", json={"track": lost["uuid"]}, headers=node.auth("cura")
    )
    assert r.status == 403

    # The master comes back (restored from a backup); the admin retries from the page.
    master.write_bytes(kept)
    r = await node.client.post(
        "/admin/media/retry",
        data={"track": lost["uuid"], "csrf_token": token},
        headers=cookie,
        allow_redirects=False,
    )
    assert r.status == 303
    r = await node.client.post(
        "/admin/media/retry.json", json={"track": lost["uuid"]}, headers=node.auth("boss")
    )
    assert r.status == 409  # already queued again: not failed any more
    await node.run_jobs()
    r = await node.client.get(f"/api/v1/tracks/{lost['uuid']}", headers=node.auth("ana"))
    assert (await r.json())["state"] == "ready"
    r = await node.client.get("/admin/audit.json?action=media.retry", headers=node.auth("boss"))
    entries = (await r.json())["entries"]
    assert [e["target"] for e in entries] == [f"track:{lost['uuid']}"]
    assert good["uuid"] != lost["uuid"]
