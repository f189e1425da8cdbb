"""An admin finds dead jobs, reads why they died, and retries them."""

from __future__ import annotations

from node.models import Job


async def test_an_admin_retries_a_dead_job(node, browser, dead_jobs):
    await node.user("ana", "admin")
    secret = await browser.sign_in("ana")
    job_id = await dead_jobs({"to": "https://queens.example/inbox"})

    # The dashboard warns that a job died, and the jobs page shows why.
    dash = await (await node.client.get("/admin/dashboard.json", headers=node.auth("ana"))).json()
    assert dash["jobs"]["dead"] == 1
    assert dash["jobs"]["recent_dead"][0]["last_error"] == "upstream said 410 Gone"
    r = await node.client.get(
        "/admin/jobs.json", params={"state": "dead"}, headers=node.auth("ana")
    )
    listing = await r.json()
    assert [j["id"] for j in listing["jobs"]] == [job_id]
    dead = listing["jobs"][0]
    assert dead["state"] == "dead" and dead["attempts"] == 1
    assert dead["last_error"] == "upstream said 410 Gone"
    assert dead["payload"] == {"to": "https://queens.example/inbox"}
    page = await (await node.client.get("/admin/jobs")).text()
    assert f'action="/admin/jobs/{job_id}/retry"' in page and "upstream said 410 Gone" in page

    # Retry, as the form does.
    dead_jobs.state["fail"] = False
    r = await node.client.post(
        f"/admin/jobs/{job_id}/retry", data={"csrf_token": browser.csrf(secret)}
    )
    assert r.status == 200
    assert f"Job {job_id} (test.flaky) is queued again." in await r.text()
    async with node.ctx.db.read_session() as s:
        job = await s.get(Job, job_id)
        assert (job.state, job.attempts, job.locked_until) == ("queued", 0, None)

    # The worker runs it, and this time it works.
    await node.run_jobs()
    async with node.ctx.db.read_session() as s:
        assert (await s.get(Job, job_id)).state == "done"

    # The audit log remembers the retry and what the job had been.
    r = await node.client.get(
        "/admin/audit.json", params={"action": "job.retry"}, headers=node.auth("ana")
    )
    (entry,) = (await r.json())["entries"]
    assert entry["target"] == f"job:{job_id}" and entry["username"] == "ana"
    assert entry["details"]["before"] == {
        "state": "dead",
        "attempts": 1,
        "last_error": "upstream said 410 Gone",
    }
    assert entry["details"]["after"] == {"state": "queued", "attempts": 0}


async def test_only_dead_jobs_can_be_retried(node, browser, dead_jobs):
    await node.user("ana", "admin")
    secret = await browser.sign_in("ana")
    job_id = await dead_jobs()
    r = await node.client.post(f"/admin/jobs/{job_id}/retry.json", headers=node.auth("ana"))
    assert r.status == 200
    assert (await r.json())["job"]["state"] == "queued"

    # Now it is queued: a second retry is a conflict, explained.
    r = await node.client.post(f"/admin/jobs/{job_id}/retry.json", headers=node.auth("ana"))
    assert r.status == 409
    assert (await r.json())["detail"] == f"job {job_id} is queued; only dead jobs can be retried"
    r = await node.client.post(
        f"/admin/jobs/{job_id}/retry", data={"csrf_token": browser.csrf(secret)}
    )
    assert r.status == 409
    assert "only dead jobs can be retried" in await r.text()

    r = await node.client.post("/admin/jobs/99999/retry.json", headers=node.auth("ana"))
    assert r.status == 404
    r = await node.client.post(
        f"/admin/jobs/{job_id}/retry.json", json={"now": True}, headers=node.auth("ana")
    )
    assert r.status == 422
    r = await node.client.get(
        "/admin/jobs.json", params={"state": "zombie"}, headers=node.auth("ana")
    )
    assert r.status == 400


async def test_jobs_are_filtered_and_paged(node, dead_jobs):
    await node.user("ana", "admin")
    ids = [await dead_jobs({"n": i}) for i in range(5)]
    seen, url, params = (
        [],
        "/admin/jobs.json",
        {"state": "dead", "limit": "2", "kind": "test.flaky"},
    )
    while url:
        body = await (await node.client.get(url, params=params, headers=node.auth("ana"))).json()
        seen += [j["id"] for j in body["jobs"]]
        url, params = body["next"], None
    assert seen == sorted(ids, reverse=True)  # the latest to die first
    body = await (
        await node.client.get(
            "/admin/jobs.json", params={"state": "done"}, headers=node.auth("ana")
        )
    ).json()
    assert {j["kind"] for j in body["jobs"]} <= {"search.index"}
    assert "test.flaky" in body["kinds"]
    assert body["health"]["counts"]["dead"] == 5
