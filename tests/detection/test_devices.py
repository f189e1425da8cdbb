"""A venue registers its detection device: by the API (admin or the venue's
manager), or on the command line, which writes the credential file 0600.
Revoking and quarantining a device are the console's and the API's."""

from __future__ import annotations

import stat
import tomllib

from detection.agent.config import load_config
from node.cli import main as cli_main


async def _venue(node, manager: str = "mo") -> dict:
    await node.user(manager, "artist")
    r = await node.client.post(
        "/api/v1/venues",
        json={"name": "Elsewhere", "borough": "Brooklyn"},
        headers=node.auth(manager),
    )
    assert r.status == 201, await r.text()
    return await r.json()


async def test_the_venue_manager_registers_a_device_and_gets_its_credential_once(node):
    venue = await _venue(node)

    r = await node.client.post(
        "/api/v1/devices", json={"venue": venue["uuid"], "name": "bar mic"}, headers=node.auth("mo")
    )

    assert r.status == 201, await r.text()
    body = await r.json()
    cred = body["credential"]
    assert cred["device_url"] == body["device"]["id"]
    assert cred["device_url"].startswith(node.settings.base_url + "/devices/")
    assert "BEGIN PRIVATE KEY" in cred["private_key_pem"]
    assert body["device"]["state"] == "active" and body["device"]["name"] == "bar mic"
    # The device's URL (its keyId) shows its public key, never the private one.
    doc = await (
        await node.client.get(cred["device_url"].removeprefix(node.settings.base_url))
    ).json()
    assert "BEGIN PUBLIC KEY" in doc["publicKeyPem"]
    assert "PRIVATE" not in str(doc)
    listed = await (await node.client.get("/api/v1/devices", headers=node.auth("mo"))).json()
    assert [d["uuid"] for d in listed] == [body["device"]["uuid"]]
    assert "private_key_pem" not in str(listed)


async def test_someone_else_cannot_register_a_device_for_the_venue(node):
    venue = await _venue(node)
    await node.user("stranger", "artist")

    r = await node.client.post(
        "/api/v1/devices", json={"venue": venue["uuid"]}, headers=node.auth("stranger")
    )
    anonymous = await node.client.post("/api/v1/devices", json={"venue": venue["uuid"]})
    unknown = await node.client.post(
        "/api/v1/devices", json={"venue": "no-such-venue"}, headers=node.auth("mo")
    )

    assert r.status == 403 and r.content_type == "application/problem+json"
    assert anonymous.status == 401
    assert unknown.status == 404


async def test_an_admin_revokes_and_quarantines_devices(node):
    venue = await _venue(node)
    await node.user("ada", "admin")
    created = await node.client.post(
        "/api/v1/devices", json={"venue": venue["uuid"]}, headers=node.auth("ada")
    )
    uuid = (await created.json())["device"]["uuid"]

    q = await node.client.post(
        f"/api/v1/devices/{uuid}/quarantine", json={"reason": "odd"}, headers=node.auth("ada")
    )
    manager_release = await node.client.post(
        f"/api/v1/devices/{uuid}/release", json={}, headers=node.auth("mo")
    )
    rel = await node.client.post(
        f"/api/v1/devices/{uuid}/release", json={}, headers=node.auth("ada")
    )
    rev = await node.client.post(f"/api/v1/devices/{uuid}/revoke", json={}, headers=node.auth("mo"))
    again = await node.client.post(
        f"/api/v1/devices/{uuid}/release", json={}, headers=node.auth("ada")
    )

    assert (await q.json())["state"] == "quarantined"
    assert manager_release.status == 403
    assert (await rel.json())["state"] == "active"
    assert (await rev.json())["state"] == "revoked"
    assert again.status == 409


async def test_the_command_line_writes_a_private_credential_file(node, tmp_path, capsys):
    venue = await _venue(node)
    out = tmp_path / "venue" / "device.toml"
    data = str(node.settings.data_dir)

    await node.ctx.db.dispose()  # the CLI opens the same database itself
    code = await _run_cli(
        ["device", "register", "--data", data, "--venue", venue["uuid"], "--output", str(out)]
    )

    assert code == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(out.resolve())
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    cred = tomllib.loads(out.read_text())["device"]
    assert cred["venue"] == venue["id"] if "id" in venue else cred["venue"].endswith(venue["uuid"])
    config = load_config(out)
    assert config.device_url.startswith(node.settings.base_url + "/devices/")


async def test_the_command_line_refuses_an_unknown_venue_in_one_line(node, capsys):
    data = str(node.settings.data_dir)
    await node.ctx.db.dispose()

    code = await _run_cli(["device", "register", "--data", data, "--venue", "Nowhere"])

    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "Nowhere" in err


async def _run_cli(argv: list[str]) -> int:
    """The CLI runs its own event loop, so it runs in a thread here."""
    import asyncio

    return await asyncio.to_thread(cli_main, argv)
