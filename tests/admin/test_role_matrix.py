"""Every route of the console, asked by every kind of caller.

The routes are read from the mounted sub-app's router, so a route added
without an entry here fails `test_every_route_is_in_the_matrix`. The table
is written out by hand (not derived from the declarations) on purpose: it is
the second statement of the policy documented in `admin/__init__.py` and
`docs/admin.md`, and the test checks that both say the same.
"""

from __future__ import annotations

import itertools

import pytest

CALLERS = ("anonymous", "fan", "artist", "curator", "admin")

# Expected status per caller. Browsers (HTML routes) use the session cookie
# and the form's CSRF token; scripts (.json routes) use a Bearer token.
STAFF_PAGE = {"anonymous": 302, "fan": 403, "artist": 403, "curator": 200, "admin": 200}
STAFF_JSON = {"anonymous": 401, "fan": 403, "artist": 403, "curator": 200, "admin": 200}
ADMIN_PAGE = {"anonymous": 302, "fan": 403, "artist": 403, "curator": 403, "admin": 200}
ADMIN_JSON = {"anonymous": 401, "fan": 403, "artist": 403, "curator": 403, "admin": 200}
ADMIN_FORM = {"anonymous": 303, "fan": 403, "artist": 403, "curator": 403, "admin": 303}
ADMIN_POST = {"anonymous": 401, "fan": 403, "artist": 403, "curator": 403, "admin": 200}
ADMIN_CREATE = {**ADMIN_POST, "admin": 201}
STAFF_FORM = {"anonymous": 303, "fan": 403, "artist": 403, "curator": 303, "admin": 303}
STAFF_POST = {"anonymous": 401, "fan": 403, "artist": 403, "curator": 200, "admin": 200}
FRONT = {"anonymous": 302, "fan": 403, "artist": 403, "curator": 302, "admin": 302}
PUBLIC = dict.fromkeys(CALLERS, 200)
# Clearing actions on nothing (no such statement, transfer, payout, grant; not the
# clearing house): past the role check, the admin (or curator) gets the refusal.
ADMIN_FORM_REFUSED = {**ADMIN_FORM, "admin": 400}
ADMIN_POST_REFUSED = {**ADMIN_POST, "admin": 400}
ADMIN_FORM_MISSING = {**ADMIN_FORM, "admin": 404}
ADMIN_POST_MISSING = {**ADMIN_POST, "admin": 404}
STAFF_FORM_MISSING = {**STAFF_FORM, "curator": 404, "admin": 404}
STAFF_POST_MISSING = {**STAFF_POST, "curator": 404, "admin": 404}

MATRIX: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/admin/"): FRONT,
    ("GET", "/admin/dashboard"): STAFF_PAGE,
    ("GET", "/admin/dashboard.json"): STAFF_JSON,
    ("GET", "/admin/users"): STAFF_PAGE,
    ("GET", "/admin/users.json"): STAFF_JSON,
    ("GET", "/admin/users/{username}"): STAFF_PAGE,
    ("GET", "/admin/users/{username}.json"): STAFF_JSON,
    ("GET", "/admin/audit"): STAFF_PAGE,
    ("GET", "/admin/audit.json"): STAFF_JSON,
    ("GET", "/admin/jobs"): ADMIN_PAGE,
    ("GET", "/admin/jobs.json"): ADMIN_JSON,
    ("POST", "/admin/users"): ADMIN_FORM,
    ("POST", "/admin/users.json"): ADMIN_CREATE,
    ("POST", "/admin/users/{username}/role"): ADMIN_FORM,
    ("POST", "/admin/users/{username}/role.json"): ADMIN_POST,
    ("POST", "/admin/users/{username}/disable"): ADMIN_FORM,
    ("POST", "/admin/users/{username}/disable.json"): ADMIN_POST,
    ("POST", "/admin/users/{username}/enable"): ADMIN_FORM,
    ("POST", "/admin/users/{username}/enable.json"): ADMIN_POST,
    ("POST", "/admin/jobs/{id}/retry"): ADMIN_FORM,
    ("POST", "/admin/jobs/{id}/retry.json"): ADMIN_POST,
    ("GET", "/admin/federation/instances"): STAFF_PAGE,
    ("GET", "/admin/federation/instances.json"): STAFF_JSON,
    ("GET", "/admin/federation/instances/{host}"): STAFF_PAGE,
    ("GET", "/admin/federation/instances/{host}.json"): STAFF_JSON,
    ("GET", "/admin/federation/deliveries"): STAFF_PAGE,
    ("GET", "/admin/federation/deliveries.json"): STAFF_JSON,
    ("GET", "/admin/federation/inbound"): STAFF_PAGE,
    ("GET", "/admin/federation/inbound.json"): STAFF_JSON,
    ("GET", "/admin/federation/inbound/{id}"): STAFF_PAGE,
    ("GET", "/admin/federation/inbound/{id}.json"): STAFF_JSON,
    ("POST", "/admin/federation/instances"): ADMIN_FORM,
    ("POST", "/admin/federation/instances.json"): ADMIN_CREATE,
    ("POST", "/admin/federation/instances/{host}/policy"): ADMIN_FORM,
    ("POST", "/admin/federation/instances/{host}/policy.json"): ADMIN_POST,
    ("POST", "/admin/federation/instances/{host}/circuit"): ADMIN_FORM,
    ("POST", "/admin/federation/instances/{host}/circuit.json"): ADMIN_POST,
    ("POST", "/admin/federation/instances/{host}/retry"): ADMIN_FORM,
    ("POST", "/admin/federation/instances/{host}/retry.json"): ADMIN_POST,
    ("POST", "/admin/federation/deliveries/{id}/retry"): ADMIN_FORM,
    ("POST", "/admin/federation/deliveries/{id}/retry.json"): ADMIN_POST,
    ("GET", "/admin/reports"): STAFF_PAGE,
    ("GET", "/admin/reports.json"): STAFF_JSON,
    ("GET", "/admin/reports/{id}"): STAFF_PAGE,
    ("GET", "/admin/reports/{id}.json"): STAFF_JSON,
    ("POST", "/admin/reports/{id}/resolve"): STAFF_FORM,
    ("POST", "/admin/reports/{id}/resolve.json"): STAFF_POST,
    ("POST", "/admin/reports/{id}/dismiss"): STAFF_FORM,
    ("POST", "/admin/reports/{id}/dismiss.json"): STAFF_POST,
    ("GET", "/admin/live"): STAFF_PAGE,
    ("GET", "/admin/live.json"): STAFF_JSON,
    ("POST", "/admin/live/end"): STAFF_FORM,
    ("POST", "/admin/live/end.json"): STAFF_POST,
    ("GET", "/admin/devices"): STAFF_PAGE,
    ("GET", "/admin/devices.json"): STAFF_JSON,
    ("GET", "/admin/devices/{id}"): STAFF_PAGE,
    ("GET", "/admin/devices/{id}.json"): STAFF_JSON,
    ("POST", "/admin/devices"): ADMIN_FORM,
    ("POST", "/admin/devices.json"): ADMIN_CREATE,
    ("POST", "/admin/devices/{id}/revoke"): ADMIN_FORM,
    ("POST", "/admin/devices/{id}/revoke.json"): ADMIN_POST,
    ("POST", "/admin/devices/{id}/quarantine"): ADMIN_FORM,
    ("POST", "/admin/devices/{id}/quarantine.json"): ADMIN_POST,
    ("POST", "/admin/devices/{id}/release"): ADMIN_FORM,
    ("POST", "/admin/devices/{id}/release.json"): ADMIN_POST,
    ("POST", "/admin/held-plays/{id}/release"): ADMIN_FORM,
    ("POST", "/admin/held-plays/{id}/release.json"): ADMIN_POST,
    ("GET", "/admin/clearing"): STAFF_PAGE,
    ("GET", "/admin/clearing.json"): STAFF_JSON,
    ("POST", "/admin/clearing/run"): ADMIN_FORM_REFUSED,
    ("POST", "/admin/clearing/run.json"): ADMIN_POST_REFUSED,
    ("POST", "/admin/clearing/reissue"): ADMIN_FORM_REFUSED,
    ("POST", "/admin/clearing/reissue.json"): ADMIN_POST_REFUSED,
    ("POST", "/admin/clearing/transfers/pay"): ADMIN_FORM_REFUSED,
    ("POST", "/admin/clearing/transfers/pay.json"): ADMIN_POST_REFUSED,
    ("POST", "/admin/clearing/transfers/confirm"): ADMIN_FORM_REFUSED,
    ("POST", "/admin/clearing/transfers/confirm.json"): ADMIN_POST_REFUSED,
    ("POST", "/admin/clearing/payouts/run"): ADMIN_FORM,
    ("POST", "/admin/clearing/payouts/run.json"): ADMIN_POST,
    ("POST", "/admin/clearing/payouts/paid"): ADMIN_FORM_MISSING,
    ("POST", "/admin/clearing/payouts/paid.json"): ADMIN_POST_MISSING,
    ("POST", "/admin/clearing/grants"): ADMIN_FORM_MISSING,
    ("POST", "/admin/clearing/grants.json"): ADMIN_POST_MISSING,
    ("POST", "/admin/clearing/grants/decide"): STAFF_FORM_MISSING,
    ("POST", "/admin/clearing/grants/decide.json"): STAFF_POST_MISSING,
    ("GET", "/admin/media"): STAFF_PAGE,
    ("GET", "/admin/media.json"): STAFF_JSON,
    ("POST", "/admin/media/retry"): ADMIN_FORM_REFUSED,
    ("POST", "/admin/media/retry.json"): ADMIN_POST_REFUSED,
    ("GET", "/admin/royalties"): STAFF_PAGE,
    ("GET", "/admin/royalties.json"): STAFF_JSON,
    ("GET", "/admin/royalties/held"): STAFF_PAGE,
    ("GET", "/admin/royalties/held.json"): STAFF_JSON,
    ("POST", "/admin/royalties/close"): ADMIN_FORM,
    ("POST", "/admin/royalties/close.json"): ADMIN_POST,
    ("POST", "/admin/royalties/release-play"): ADMIN_FORM_MISSING,
    ("POST", "/admin/royalties/release-play.json"): ADMIN_POST_MISSING,
    ("POST", "/admin/royalties/subscriptions/grant"): ADMIN_FORM,
    ("POST", "/admin/royalties/subscriptions/grant.json"): ADMIN_POST,
    ("POST", "/admin/royalties/licences"): ADMIN_FORM_MISSING,
    ("POST", "/admin/royalties/licences.json"): ADMIN_POST_MISSING,
    ("GET", "/admin/static"): PUBLIC,
}

# What each action needs to succeed when an admin sends it.
BODIES = {
    "/role": {"role": "artist"},
    "/disable": {"reason": "matrix"},
    "/enable": {},
    "/retry": {},
    "/policy": {"policy": "limit", "reason": "matrix"},
    "/circuit": {},
    "/resolve": {"note": "matrix"},
    "/dismiss": {},
    "/devices": {"venue": "Matrix Hall"},  # the venue matrix_device() makes (GETs run first)
    "/revoke": {"reason": "matrix"},
    "/quarantine": {"reason": "matrix"},
    "/release": {},
    "/live/end": {"handle": "m_target"},
    "/clearing/run": {"period": "2026-01"},
    "/clearing/reissue": {"statement": "https://matrix.example/statements/none"},
    "/transfers/pay": {"transfer": "https://matrix.example/t/none", "reference": "matrix"},
    "/transfers/confirm": {"transfer": "https://matrix.example/t/none"},
    "/payouts/run": {},
    "/payouts/paid": {"payout": 999999, "reference": "matrix"},
    "/clearing/grants": {"artist": "https://matrix.example/actors/nobody", "amount": 500},
    "/grants/decide": {"grant": 999999, "approve": True},
    "/royalties/close": {"period": "2026-01"},
    "/royalties/release-play": {"play": 999999},
    "/royalties/subscriptions/grant": {"username": "m_target", "amount": 500, "currency": "USD"},
    "/royalties/licences": {"venue": "No Such Venue", "amount": 100},
}


def console_routes(node) -> set[tuple[str, str]]:
    """(method, canonical path) of every route of the mounted console."""
    (console,) = [
        r.get_info()["app"]
        for r in node.app.router.resources()
        if r.get_info().get("prefix") == "/admin"
    ]
    return {
        (route.method, route.resource.canonical)
        for route in console.router.routes()
        if route.method != "HEAD"
    }


async def test_every_route_is_in_the_matrix(node):
    routes = console_routes(node)
    assert routes - MATRIX.keys() == set(), "console routes without a role-matrix entry"
    assert MATRIX.keys() - routes == set(), "matrix entries for routes that no longer exist"


def minimum_role(expected: dict[str, int]) -> str:
    """The lowest role let in: "anyone" when anonymous callers are."""
    if expected["anonymous"] not in (302, 303, 401):
        return "anyone"
    return next(c for c in CALLERS[1:] if expected[c] != 403)


async def test_the_matrix_matches_the_documentation():
    """docs/admin.md lists the same routes with the same minimum roles."""
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "admin.md").read_text()
    for (method, path), expected in MATRIX.items():
        if path.endswith(".json"):
            continue  # the docs state the twins' rule once: the same as their page or form
        twin = MATRIX.get((method, path + ".json"))
        if twin is not None:
            assert minimum_role(twin) == minimum_role(expected), (method, path)
        rows = [ln for ln in docs.splitlines() if ln.startswith(f"| {method} `{path}`")]
        assert rows, f"docs/admin.md has no row for {method} {path}"
        assert f"| {minimum_role(expected)} |" in rows[0], rows[0]


@pytest.fixture
async def callers(node, browser):
    """A session and a Bearer token for one account of each role."""
    for role in CALLERS[1:]:
        await node.user(f"m_{role}", role)
    await node.user("m_target", "fan")
    return {role: await browser.session(f"m_{role}") for role in CALLERS[1:]}


MATRIX_HOST = "matrix.example"


async def fresh_id(node, canonical: str, dead_jobs) -> int:
    """The id a `{id}` route acts on: a dead job, a dead delivery, an inbound
    activity or an open report, made for this one request."""
    from federation.models import InboxItem
    from node.models import Job, Report, new_uuid

    if canonical.startswith("/admin/jobs/"):
        return await dead_jobs()
    if canonical.startswith(("/admin/devices/", "/admin/held-plays/")):
        from detection.testing import matrix_device

        return await matrix_device(node.ctx, held_play=canonical.startswith("/admin/held-plays/"))
    uri = f"https://{MATRIX_HOST}/{new_uuid()}"
    async with node.ctx.db.transaction() as s:
        if canonical.startswith("/admin/federation/deliveries/"):
            row = Job(
                kind="federation.deliver",
                payload={"item": 1, "inbox": f"https://{MATRIX_HOST}/inbox"},
                state="dead",
                last_error="HTTP 503",
            )
        elif canonical.startswith("/admin/federation/inbound/"):
            actor = f"https://{MATRIX_HOST}/actor"
            row = InboxItem(
                activity_id=uri,
                type="Like",
                actor_uri=actor,
                host=MATRIX_HOST,
                key_id=actor + "#main-key",
                payload={"id": uri, "type": "Like"},
                state="failed",
                error="matrix",
            )
        else:
            row = Report(uri=uri, reporter_uri=f"https://{MATRIX_HOST}/actor", target_uris=[uri])
        s.add(row)
        await s.flush()
        return row.id


async def test_every_route_answers_every_caller_as_the_matrix_says(
    node, browser, callers, dead_jobs
):
    from federation.models import Instance

    async with node.ctx.db.transaction() as s:
        s.add(Instance(host=MATRIX_HOST, policy="default", consecutive_failures=5))
    counter = itertools.count()
    failures = []
    for (method, canonical), expected in sorted(MATRIX.items()):
        for caller in CALLERS:
            is_json = canonical.endswith(".json")
            path = canonical.replace("{username}", "m_target").replace("{host}", MATRIX_HOST)
            if "{id}" in path:
                # A fresh object per request: an action may close what it acts on.
                path = path.replace("{id}", str(await fresh_id(node, canonical, dead_jobs)))
            if canonical == "/admin/static":
                path = "/admin/static/admin.css"
            headers: dict[str, str] = {}
            if caller != "anonymous":
                if is_json:
                    headers = node.auth(f"m_{caller}")
                else:
                    headers = browser.cookie(callers[caller])
            kwargs = {}
            if method == "POST":
                body = next(
                    (
                        b
                        for suffix, b in BODIES.items()
                        if path.removesuffix(".json").endswith(suffix)
                    ),
                    None,
                )
                if body is None and "/federation/" in path:  # a policy for a new host
                    body = {"host": f"made{next(counter)}.example", "policy": "block"}
                elif body is None:  # create an account
                    body = {"username": f"made_{next(counter)}", "password": "long enough secret"}
                if is_json:
                    kwargs["json"] = body
                else:
                    form = dict(body)
                    if caller != "anonymous":
                        form["csrf_token"] = browser.csrf(callers[caller])
                    kwargs["data"] = form
            r = await node.client.request(
                method, path, headers=headers, allow_redirects=False, **kwargs
            )
            if r.status != expected[caller]:
                failures.append(
                    f"{method} {path} as {caller}: {r.status}, expected {expected[caller]}"
                )
                continue
            if r.status == 401:
                assert r.content_type == "application/problem+json"
            if caller == "anonymous" and r.status in (302, 303) and canonical != "/admin/static":
                assert r.headers["Location"].startswith("/login?next=/admin/"), r.headers[
                    "Location"
                ]
            if is_json and r.status == 403:
                assert r.content_type == "application/problem+json"
    assert not failures, "\n".join(failures)
