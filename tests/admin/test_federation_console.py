"""Stories of the federation and reports pages of the console: admins block
hosts and retry dead deliveries, curators read the inbound log and handle
reports, and every page's `.json` twin answers what the page shows.

Instances, deliveries and inbound activities are written straight into the
database, the way the delivery worker and the inbox leave them.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from admin.federation import parse_host
from federation.models import InboxItem, Instance, OutboxItem
from federation.policy import host_allowed
from node.models import Job, Report, utcnow
from node.services.accounts import get_account

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


# ---- the rows the worker and the inbox leave behind ----------------------------------


async def instance(node, host: str, **values) -> None:
    async with node.ctx.db.transaction() as s:
        s.add(Instance(host=host, policy=values.pop("policy", "default"), **values))


async def outbox_item(node, username: str, kind: str = "Create") -> int:
    async with node.ctx.db.transaction() as s:
        account = await get_account(s, username)
        item = OutboxItem(
            activity_id=f"{node.settings.base_url}/activities/{kind.lower()}-1",
            actor_id=account.actor_id,
            type=kind,
            payload={"type": kind},
        )
        s.add(item)
        await s.flush()
        return item.id


async def delivery(
    node,
    host: str,
    *,
    state: str = "dead",
    error: str | None = "HTTP 503: upstream down",
    item: int = 999,
    due_in: timedelta = timedelta(0),
) -> int:
    """A `federation.deliver` job as the worker leaves it after its last attempt."""
    now = utcnow()
    async with node.ctx.db.transaction() as s:
        job = Job(
            kind="federation.deliver",
            payload={"item": item, "inbox": f"https://{host}/inbox"},
            state=state,
            attempts=12 if state == "dead" else 3,
            max_attempts=12,
            last_error=error,
            state_changed_at=now,
            next_attempt_at=now + due_in,
            created_at=now - timedelta(days=2),
        )
        s.add(job)
        await s.flush()
        return job.id


async def inbound(node, host: str, n: int = 1, **values) -> int:
    """A stored inbound activity (InboxItem), as the inbox and its job leave it."""
    actor = f"https://{host}/users/mallory"
    values.setdefault("type", "Create")
    payload = values.pop(
        "payload",
        {
            "id": f"https://{host}/activities/{n}",
            "type": values["type"],
            "actor": actor,
            "to": [PUBLIC],
        },
    )
    async with node.ctx.db.transaction() as s:
        item = InboxItem(
            activity_id=payload["id"],
            actor_uri=actor,
            host=host,
            key_id=actor + "#main-key",
            payload=payload,
            received_at=utcnow() + timedelta(seconds=n),
            **values,
        )
        s.add(item)
        await s.flush()
        return item.id


async def get(node, path: str, user: str, **params) -> dict:
    r = await node.client.get(path, params=params, headers=node.auth(user))
    assert r.status == 200, (path, r.status, await r.text())
    return await r.json()


# ---- stories -------------------------------------------------------------------------


async def test_an_admin_blocks_a_host_and_the_audit_log_shows_it(node, browser):
    await node.user("ana", "admin")
    await node.user("cora", "curator")
    secret = await browser.sign_in("ana")
    await instance(node, "spam.example", software="mastodon", version="4.3.0")
    assert await host_allowed(node.ctx, "spam.example")

    # The instance page offers the policy buttons; the admin blocks, with a reason.
    page = await (await node.client.get("/admin/federation/instances/spam.example")).text()
    assert 'action="/admin/federation/instances/spam.example/policy"' in page
    assert 'name="policy" value="block"' in page
    r = await node.client.post(
        "/admin/federation/instances/spam.example/policy",
        data={"policy": "block", "reason": "spam waves", "csrf_token": browser.csrf(secret)},
    )
    assert r.status == 200 and r.url.path == "/admin/federation/instances/spam.example"
    text = await r.text()
    assert "spam.example is blocked" in text and "spam waves" in text

    # Federation enforces it at once, and the instance list says so.
    assert not await host_allowed(node.ctx, "spam.example")
    listing = await get(node, "/admin/federation/instances.json", "cora", policy="block")
    (row,) = listing["instances"]
    assert (row["host"], row["policy"], row["policy_reason"], row["federates"]) == (
        "spam.example",
        "block",
        "spam waves",
        False,
    )

    # The audit log remembers who blocked it, what it was before, and why.
    audit = await get(node, "/admin/audit.json", "cora", action="instance.policy")
    (entry,) = audit["entries"]
    assert entry["username"] == "ana" and entry["target"] == "instance:spam.example"
    assert entry["details"] == {
        "before": {"policy": "default", "policy_reason": ""},
        "after": {"policy": "block", "policy_reason": "spam waves"},
        "reason": "spam waves",
    }
    page = await (
        await node.client.get("/admin/audit", params={"action": "instance.policy"})
    ).text()
    assert "Changed an instance&#39;s policy" in page and "instance:spam.example" in page
    detail = await get(node, "/admin/federation/instances/spam.example.json", "ana")
    assert [e["action"] for e in detail["audit"]] == ["instance.policy"]

    # Blocking again changes nothing and logs nothing; a curator may not unblock.
    r = await node.client.post(
        "/admin/federation/instances/spam.example/policy.json",
        json={"policy": "block"},
        headers=node.auth("ana"),
    )
    assert (await r.json())["changed"] is False
    r = await node.client.post(
        "/admin/federation/instances/spam.example/policy.json",
        json={"policy": "default"},
        headers=node.auth("cora"),
    )
    assert r.status == 403
    assert (
        len((await get(node, "/admin/audit.json", "ana", action="instance.policy"))["entries"]) == 1
    )


async def test_an_admin_blocks_a_host_the_node_has_never_seen(node, browser):
    await node.user("ana", "admin")
    secret = await browser.sign_in("ana")

    r = await node.client.post(
        "/admin/federation/instances.json",
        json={"host": "Evil.Example:8443", "policy": "block", "reason": "known spammer"},
        headers=node.auth("ana"),
    )
    assert r.status == 201
    body = await r.json()
    assert body["created"] is True and body["instance"]["host"] == "evil.example:8443"
    assert not await host_allowed(node.ctx, "evil.example:8443")
    audit = await get(node, "/admin/audit.json", "ana", target="instance:evil.example:8443")
    (entry,) = audit["entries"]
    assert entry["action"] == "instance.add"
    assert entry["details"]["after"] == {"policy": "block", "policy_reason": "known spammer"}

    # Its page answers at the address the console links to (the colon escaped) and as typed.
    for path in (
        "/admin/federation/instances/evil.example%3A8443",
        "/admin/federation/instances/evil.example:8443",
    ):
        body = await get(node, path + ".json", "ana")
        assert body["instance"]["policy_reason"] == "known spammer"
    listing = await (await node.client.get("/admin/federation/instances")).text()
    assert 'href="/admin/federation/instances/evil.example%3A8443"' in listing

    # The same call for a known host changes its policy (200, not 201).
    r = await node.client.post(
        "/admin/federation/instances.json",
        json={"host": "evil.example:8443", "policy": "limit"},
        headers=node.auth("ana"),
    )
    assert r.status == 200 and (await r.json())["instance"]["policy"] == "limit"

    # What is not a host is refused and explained, next to the field in the form.
    for bad in ("https://evil.example/inbox", "evil..example", "evil.example:99999", "a b"):
        r = await node.client.post(
            "/admin/federation/instances.json",
            json={"host": bad, "policy": "block"},
            headers=node.auth("ana"),
        )
        assert r.status == 422, bad
        assert (await r.json())["errors"][0]["field"] == "host"
    r = await node.client.post(
        "/admin/federation/instances.json",
        json={"host": node.ctx.domain, "policy": "block"},
        headers=node.auth("ana"),
    )
    assert r.status == 422 and "this node" in (await r.json())["detail"]
    r = await node.client.post(
        "/admin/federation/instances",
        data={
            "host": "https://bad.example/",
            "policy": "block",
            "csrf_token": browser.csrf(secret),
        },
    )
    assert r.status == 422
    page = await r.text()
    assert 'id="err-host"' in page and 'value="https://bad.example/"' in page
    async with node.ctx.db.read_session() as s:
        hosts = set((await s.scalars(select(Instance.host))).all())
    assert hosts == {"evil.example:8443"}


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("queens.example", "queens.example"),
        (" Queens.Example ", "queens.example"),
        ("queens.example:08443", "queens.example:8443"),
        ("127.0.0.1:8080", "127.0.0.1:8080"),
        ("[::1]:8443", "[::1]:8443"),
        ("bücher.example", "xn--bcher-kva.example"),
    ],
)
def test_hosts_as_admins_type_them(raw, host):
    assert parse_host(raw) == host


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "https://queens.example",
        "queens.example/inbox",
        "me@queens.example",
        "-queens.example",
        "queens.example:",
        "queens.example:0",
        "queens.example:http",
        "999.1.1.1",
        "[::zz]",
        "queens.example?x",
    ],
)
def test_what_is_not_a_host(raw):
    with pytest.raises(ValueError):
        parse_host(raw)


async def test_the_instance_page_shows_a_failing_hosts_circuit(node, browser):
    await node.user("ana", "admin")
    await node.user("cora", "curator")
    await browser.sign_in("cora")
    now = utcnow()
    await instance(
        node,
        "queens.example",
        software="nycmg",
        version="0.4.0",
        last_success_at=now - timedelta(days=1),
        last_failure_at=now - timedelta(minutes=2),
        last_error="HTTP 503: <h1>Service Unavailable</h1>",
        consecutive_failures=7,
        circuit_open_until=now + timedelta(minutes=30),
        delivered=12,
        received=3,
    )
    await instance(node, "bronx.example", software="mastodon", delivered=40, received=9)
    dead = [await delivery(node, "queens.example") for _ in range(2)]
    waiting = await delivery(
        node, "queens.example", state="queued", error=None, due_in=timedelta(minutes=30)
    )
    await delivery(node, "bronx.example", state="done", error=None)

    # The curator filters the list down to hosts whose circuit is open.
    listing = await get(node, "/admin/federation/instances.json", "cora", state="circuit_open")
    (q,) = listing["instances"]
    assert q["host"] == "queens.example" and q["state"] == "circuit_open"
    assert (q["consecutive_failures"], q["delivered"], q["received"], q["dead_deliveries"]) == (
        7,
        12,
        3,
        2,
    )
    assert q["last_error"] == "HTTP 503: <h1>Service Unavailable</h1>"
    assert q["circuit_open_until"] is not None and (q["software"], q["version"]) == (
        "nycmg",
        "0.4.0",
    )
    assert listing["summary"]["circuit_open"] == 1 and listing["summary"]["dead_deliveries"] == 2
    ok = await get(node, "/admin/federation/instances.json", "cora", state="ok")
    assert [i["host"] for i in ok["instances"]] == ["bronx.example"]

    page = await (await node.client.get("/admin/federation/instances")).text()
    assert "circuit open" in page
    assert "HTTP 503: &lt;h1&gt;Service Unavailable&lt;/h1&gt;" in page  # escaped, never markup
    assert "<h1>Service Unavailable" not in page

    # Its page: the circuit, the deliveries waiting on it and the dead ones.
    detail = await get(node, "/admin/federation/instances/queens.example.json", "cora")
    assert {d["id"] for d in detail["deliveries"]} == {*dead, waiting}
    assert detail["instance"]["dead_deliveries"] == 2 and "actions" not in detail  # a curator
    page = await (await node.client.get("/admin/federation/instances/queens.example")).text()
    assert "The circuit is open until" in page and "Only admins change" in page
    assert "/circuit" not in page

    # The admin closes the circuit: failures forgotten, the waiting delivery due now.
    r = await node.client.post(
        "/admin/federation/instances/queens.example/circuit.json",
        json={"reason": "they are back"},
        headers=node.auth("ana"),
    )
    assert r.status == 200
    body = await r.json()
    assert body["changed"] is True and body["due_now"] == 1
    assert body["instance"]["state"] == "ok" and body["instance"]["circuit_open_until"] is None
    async with node.ctx.db.read_session() as s:
        job = await s.get(Job, waiting)
        assert job.next_attempt_at <= utcnow()
    (entry,) = (await get(node, "/admin/audit.json", "ana", action="instance.circuit"))["entries"]
    assert entry["details"]["before"]["consecutive_failures"] == 7
    assert entry["details"]["due_now"] == 1 and entry["details"]["reason"] == "they are back"
    r = await node.client.post(
        "/admin/federation/instances/queens.example/circuit.json", headers=node.auth("ana")
    )
    assert (await r.json())["changed"] is False

    r = await node.client.get(
        "/admin/federation/instances/nowhere.example.json", headers=node.auth("ana")
    )
    assert r.status == 404
    r = await node.client.get("/admin/federation/instances/nowhere.example")
    assert r.status == 404 and "has neither seen it" in await r.text()


async def test_instances_are_paged_by_host(node):
    await node.user("cora", "curator")
    hosts = [f"node{i}.example" for i in range(5)]
    for host in reversed(hosts):
        await instance(node, host)
    seen, url, params = [], "/admin/federation/instances.json", {"limit": "2", "q": "node"}
    while url:
        body = await (await node.client.get(url, params=params, headers=node.auth("cora"))).json()
        seen += [i["host"] for i in body["instances"]]
        url, params = body["next"], None
    assert seen == hosts
    r = await node.client.get(
        "/admin/federation/instances.json", params={"policy": "evil"}, headers=node.auth("cora")
    )
    assert r.status == 400


async def test_a_dead_delivery_is_retried(node, browser):
    await node.user("ana", "admin")
    await node.user("cora", "curator")
    secret = await browser.sign_in("ana")
    await instance(node, "queens.example", consecutive_failures=2)
    item = await outbox_item(node, "ana", "Announce")
    job_id = await delivery(node, "queens.example", item=item, error="HTTP 500: oops")
    others = [await delivery(node, "queens.example") for _ in range(2)]

    # Dead letters come first on the delivery page, grouped by host, with why they died.
    listing = await get(node, "/admin/federation/deliveries.json", "cora", state="dead")
    assert listing["dead_letters"] == [
        {"host": "queens.example", "dead": 3, "known": True, "policy": "default", "federates": True}
    ]
    mine = next(d for d in listing["deliveries"] if d["id"] == job_id)
    assert mine["host"] == "queens.example" and mine["inbox"] == "https://queens.example/inbox"
    assert mine["last_error"] == "HTTP 500: oops" and mine["attempts"] == 12
    assert mine["activity"]["type"] == "Announce"
    page = await (await node.client.get("/admin/federation/deliveries")).text()
    assert (
        "Dead letters" in page and f'action="/admin/federation/deliveries/{job_id}/retry"' in page
    )
    assert 'action="/admin/federation/instances/queens.example/retry"' in page

    # The admin retries one, as the form does: queued again, due now, fresh attempts.
    r = await node.client.post(
        f"/admin/federation/deliveries/{job_id}/retry", data={"csrf_token": browser.csrf(secret)}
    )
    assert (
        r.status == 200
        and f"Delivery {job_id} to queens.example is queued again." in await r.text()
    )
    async with node.ctx.db.read_session() as s:
        job = await s.get(Job, job_id)
        assert (job.state, job.attempts) == ("queued", 0) and job.next_attempt_at <= utcnow()
    (entry,) = (await get(node, "/admin/audit.json", "ana", action="delivery.retry"))["entries"]
    assert entry["target"] == f"job:{job_id}" and entry["details"]["host"] == "queens.example"
    assert entry["details"]["before"]["last_error"] == "HTTP 500: oops"

    # Queued now, so it cannot be retried again; a curator cannot retry at all.
    r = await node.client.post(
        f"/admin/federation/deliveries/{job_id}/retry.json", headers=node.auth("ana")
    )
    assert r.status == 409 and "only dead deliveries" in (await r.json())["detail"]
    r = await node.client.post(
        f"/admin/federation/deliveries/{others[0]}/retry.json", headers=node.auth("cora")
    )
    assert r.status == 403

    # "Retry all dead deliveries to queens.example".
    r = await node.client.post(
        "/admin/federation/instances/queens.example/retry.json",
        json={"reason": "they fixed their proxy"},
        headers=node.auth("ana"),
    )
    assert r.status == 200
    assert await r.json() == {"host": "queens.example", "retried": 2, "jobs": sorted(others)}
    (entry,) = (await get(node, "/admin/audit.json", "ana", action="delivery.retry_host"))[
        "entries"
    ]
    assert entry["target"] == "instance:queens.example" and entry["details"]["count"] == 2
    listing = await get(node, "/admin/federation/deliveries.json", "ana", state="dead")
    assert listing["deliveries"] == [] and listing["dead_letters"] == []
    assert listing["counts"]["queued"] == 3

    # A blocked host's dead letters stay dead: retrying them would only kill them again.
    await instance(node, "spam.example", policy="block")
    spam = await delivery(node, "spam.example", error="spam.example is blocked by instance policy")
    page = await (await node.client.get("/admin/federation/deliveries")).text()
    assert f"deliveries/{spam}/retry" not in page and "instances/spam.example/retry" not in page
    assert "not retried while the policy refuses it" in page
    page = await (await node.client.get("/admin/federation/instances/spam.example")).text()
    assert "/retry" not in page and "not retried while the policy refuses" in page
    for path in (
        f"/admin/federation/deliveries/{spam}/retry.json",
        "/admin/federation/instances/spam.example/retry.json",
    ):
        r = await node.client.post(path, headers=node.auth("ana"))
        assert r.status == 409 and "blocked" in (await r.json())["detail"]
    r = await node.client.post(
        "/admin/federation/deliveries/99999/retry.json", headers=node.auth("ana")
    )
    assert r.status == 404


async def test_an_inbound_failed_item_shows_its_error(node, browser):
    await node.user("cora", "curator")
    await browser.sign_in("cora")
    await instance(node, "queens.example", received=3)
    await inbound(node, "queens.example", 1, type="Follow", state="processed")
    await inbound(
        node, "bronx.example", 2, type="Like", state="ignored", error="a like of nothing we know"
    )
    payload = {
        "id": "https://queens.example/activities/3",
        "type": "Create",
        "actor": "https://queens.example/users/mallory",
        "object": {"type": "Note", "content": "<script>alert('x')</script>hi"},
        "to": ["https://brooklyn.example/users/ana"],
    }
    failed = await inbound(
        node,
        "queens.example",
        3,
        type="Create",
        object_type="Note",
        state="failed",
        error="BadActivity: Note without inReplyTo",
        payload=payload,
    )

    log = await get(node, "/admin/federation/inbound.json", "cora")
    assert [i["id"] for i in log["items"]][0] == failed  # newest first
    assert log["counts"]["failed"] == 1
    (item,) = (await get(node, "/admin/federation/inbound.json", "cora", state="failed"))["items"]
    assert (
        item["error"] == "BadActivity: Note without inReplyTo" and item["host"] == "queens.example"
    )
    assert "payload" not in item  # the list stays light
    by_type = await get(node, "/admin/federation/inbound.json", "cora", type="Like")
    assert [i["host"] for i in by_type["items"]] == ["bronx.example"]
    by_host = await get(node, "/admin/federation/inbound.json", "cora", host="queens.example")
    assert len(by_host["items"]) == 2

    page = await (
        await node.client.get("/admin/federation/inbound", params={"state": "failed"})
    ).text()
    assert "BadActivity: Note without inReplyTo" in page
    assert f'href="/admin/federation/inbound/{failed}"' in page

    # Its page: the error, and the raw payload as inert, pretty-printed text.
    detail = await get(node, f"/admin/federation/inbound/{failed}.json", "cora")
    assert detail["item"]["payload"] == payload and detail["item"]["public"] is False
    page = await (await node.client.get(f"/admin/federation/inbound/{failed}")).text()
    assert "Processing failed: BadActivity: Note without inReplyTo" in page
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;hi" in page
    assert "  &#34;type&#34;: &#34;Create&#34;" in page  # indented JSON
    assert "not public" in page

    r = await node.client.get(
        "/admin/federation/inbound.json", params={"state": "lost"}, headers=node.auth("cora")
    )
    assert r.status == 400
    r = await node.client.get("/admin/federation/inbound/99999.json", headers=node.auth("cora"))
    assert r.status == 404


async def test_a_curator_resolves_a_report(node, browser):
    await node.user("cora", "curator")
    await node.user("fiona", "fan")
    await node.user("jay", "artist")
    secret = await browser.sign_in("cora")
    async with node.ctx.db.read_session() as s:
        jay = (await get_account(s, "jay")).actor.uri

    # A fan reports an artist through the API; another node's Flag arrived too.
    r = await node.client.post(
        "/api/v1/reports",
        json={"targets": [jay], "reason": "stolen tracks"},
        headers=node.auth("fiona"),
    )
    assert r.status == 201
    async with node.ctx.db.transaction() as s:
        s.add(
            Report(
                uri="https://queens.example/flags/1",
                reporter_uri="https://queens.example/actor",
                target_uris=[jay, "javascript:alert(1)"],
                reason="<b>spam</b>",
                origin_host="queens.example",
                created_at=utcnow() + timedelta(seconds=1),
            )
        )

    listing = await get(node, "/admin/reports.json", "cora")
    assert listing["filters"]["state"] == "open" and listing["counts"]["open"] == 2
    remote, local = listing["reports"]  # newest first
    assert local["reason"] == "stolen tracks" and local["origin_host"] is None
    assert local["reporter"]["console"] == "/admin/users/fiona.json"
    (target,) = local["targets"]
    assert target["uri"] == jay and target["acct"].startswith("jay@")
    assert remote["origin_host"] == "queens.example"
    assert remote["targets"][1] == {"uri": "javascript:alert(1)", "link": None}

    page = await (await node.client.get("/admin/reports")).text()
    assert 'href="/admin/users/jay"' in page and 'href="/admin/users/fiona"' in page
    assert 'href="javascript:' not in page and "&lt;b&gt;spam&lt;/b&gt;" in page

    # The curator resolves the fan's report with a note, through the form.
    r = await node.client.post(
        f"/admin/reports/{local['id']}/resolve",
        data={"note": "asked jay for the licences", "csrf_token": browser.csrf(secret)},
    )
    assert r.status == 200 and f"Report {local['id']} is resolved." in await r.text()
    async with node.ctx.db.read_session() as s:
        row = await s.get(Report, local["id"])
        assert row.state == "resolved" and row.resolved_at is not None
    (entry,) = (await get(node, "/admin/audit.json", "cora", action="report.resolve"))["entries"]
    assert entry["username"] == "cora" and entry["target"] == f"report:{local['id']}"
    assert entry["details"] == {
        "before": {"state": "open"},
        "after": {"state": "resolved"},
        "reason": "asked jay for the licences",
    }
    page = await (await node.client.get(f"/admin/reports/{local['id']}")).text()
    assert "asked jay for the licences" in page and "This report is resolved." in page

    # The other is dismissed by a script; closed reports cannot be closed again.
    r = await node.client.post(
        f"/admin/reports/{remote['id']}/dismiss.json", json={}, headers=node.auth("cora")
    )
    assert r.status == 200 and (await r.json())["report"]["state"] == "dismissed"
    r = await node.client.post(
        f"/admin/reports/{remote['id']}/resolve.json", json={"note": "x"}, headers=node.auth("cora")
    )
    assert (
        r.status == 409
        and (await r.json())["detail"] == f"report {remote['id']} is already dismissed"
    )
    assert (await get(node, "/admin/reports.json", "cora"))["reports"] == []
    everything = await get(node, "/admin/reports.json", "cora", state="all")
    assert [x["state"] for x in everything["reports"]] == ["dismissed", "resolved"]
    remote_only = await get(
        node, "/admin/reports.json", "cora", state="all", origin="queens.example"
    )
    assert [x["id"] for x in remote_only["reports"]] == [remote["id"]]

    r = await node.client.post(
        f"/admin/reports/{remote['id']}/resolve.json", headers=node.auth("fiona")
    )
    assert r.status == 403


async def test_json_twins_return_the_data_the_pages_show(node, browser):
    """Each page and its `.json` twin, asked by the same admin: what the JSON
    says (hosts, errors, ids, states) is what the page shows."""
    await node.user("ana", "admin")
    await browser.sign_in("ana")
    await instance(
        node,
        "queens.example",
        consecutive_failures=3,
        last_error="timeout after 10 s",
        software="nycmg",
    )
    job_id = await delivery(node, "queens.example", error="HTTP 502: bad gateway")
    item_id = await inbound(node, "queens.example", 1, state="failed", error="KeyError: 'object'")
    async with node.ctx.db.transaction() as s:
        report = Report(
            uri="https://queens.example/flags/9",
            reporter_uri="https://queens.example/users/zed",
            target_uris=["https://queens.example/users/mallory"],
            reason="impersonation",
            origin_host="queens.example",
        )
        s.add(report)
        await s.flush()
        report_id = report.id

    def strings(data) -> set[str]:
        """Every string and number of the data a person would read."""
        out: set[str] = set()
        if isinstance(data, dict):
            for key, value in data.items():
                if key in (
                    "next",
                    "actions",
                    "uri",
                    "payload",
                    "federation",
                    "policies",
                    "states",
                    "types",
                ):
                    continue
                out |= strings(value)
        elif isinstance(data, list):
            for value in data:
                out |= strings(value)
        elif isinstance(data, bool) or data is None:
            pass
        elif isinstance(data, str):
            if not re.fullmatch(r"\d{4}-\d\d-\d\dT.*Z", data):  # times are shown as 20:00 UTC
                out.add(data)
        elif isinstance(data, int):
            out.add(str(data))
        return out

    pages = {
        "/admin/federation/instances": {"queens.example", "timeout after 10 s", "nycmg"},
        "/admin/federation/instances/queens.example": {
            "HTTP 502: bad gateway",
            "KeyError: 'object'",
        },
        "/admin/federation/deliveries": {"HTTP 502: bad gateway", f"#{job_id}"},
        "/admin/federation/inbound": {"KeyError: 'object'", str(item_id)},
        f"/admin/federation/inbound/{item_id}": {"KeyError: 'object'", "mallory#main-key"},
        "/admin/reports": {"impersonation", "queens.example"},
        f"/admin/reports/{report_id}": {"impersonation", "https://queens.example/users/mallory"},
    }
    for path, must in pages.items():
        r = await node.client.get(path)
        assert r.status == 200, path
        page = html.unescape(await r.text())
        twin = await get(node, path + ".json", "ana")
        assert f'href="{path}.json"' in await r.text(), path  # the page links its twin
        shown = strings(twin)
        missing = {s for s in shown if s not in page}
        assert not missing, (path, missing)
        assert all(m in page for m in must), path
