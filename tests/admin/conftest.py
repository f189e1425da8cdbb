"""Console test helpers: browser sessions (the `nycmg_session` cookie the
public site's /login sets) with their CSRF tokens, and dead jobs to retry."""

from __future__ import annotations

import pytest

from node.auth import csrf_token, issue_token
from node.jobs import PermanentFailure
from node.services.accounts import get_account

FAILING_KIND = "test.flaky"


class Browser:
    """Acts as one person's browser: their session cookie and its CSRF token."""

    def __init__(self, node) -> None:
        self.node = node

    async def session(self, username: str) -> str:
        """Sign `username` in, as /login would, and return the session secret."""
        async with self.node.ctx.db.transaction() as s:
            account = await get_account(s, username)
            secret, _ = await issue_token(s, account, kind="session")
        return secret

    async def sign_in(self, username: str) -> str:
        """Put `username`'s session cookie in the test client's cookie jar."""
        secret = await self.session(username)
        self.node.client.session.cookie_jar.update_cookies({"nycmg_session": secret})
        return secret

    def csrf(self, secret: str) -> str:
        return csrf_token(self.node.settings.node.secret_key, secret)

    @staticmethod
    def cookie(secret: str) -> dict[str, str]:
        """A Cookie header for one request, leaving the jar alone."""
        return {"Cookie": f"nycmg_session={secret}"}


@pytest.fixture
def browser(node) -> Browser:
    return Browser(node)


@pytest.fixture
def dead_jobs(node):
    """A factory of dead jobs: a kind that fails until told otherwise."""
    state = {"fail": True, "runs": 0}

    async def handler(job) -> None:
        state["runs"] += 1
        if state["fail"]:
            raise PermanentFailure("upstream said 410 Gone")

    node.ctx.jobs.register(FAILING_KIND, handler)

    async def make(payload: dict | None = None) -> int:
        async with node.ctx.db.transaction() as s:
            job = await node.ctx.enqueue(
                s, FAILING_KIND, payload or {"to": "https://elsewhere.example/inbox"}
            )
            await s.flush()
            job_id = job.id
        await node.run_jobs()
        return job_id

    make.state = state
    return make
