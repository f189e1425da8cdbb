"""Accounts and local actors: sign-up, login, roles, profiles."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .. import auth
from ..context import NodeContext
from ..errors import Conflict, NotFound, Unauthorized, ValidationFailed
from ..keys import generate_rsa
from ..models import ROLES, Account, Actor, ArtistProfile
from ..validation import HANDLE_RE

RESERVED = {
    "admin",
    "api",
    "actor",
    "actors",
    "inbox",
    "outbox",
    "login",
    "logout",
    "signup",
    "rest",
    "live",
    "tracks",
    "releases",
    "events",
    "venues",
    "search",
    "static",
    "root",
    "nycmg",
    "well_known",
    "nodeinfo",
    "healthz",
    "metrics",
    "me",
    "feed",
    "support",
    "about",
}
MIN_PASSWORD = 8


def check_new_account(username: str, password: str, role: str) -> list[dict[str, str]]:
    problems = []
    if not HANDLE_RE.match(username or ""):
        problems.append(
            {"field": "username", "message": "2-30 characters: lowercase letters, digits and _"}
        )
    elif username in RESERVED:
        problems.append({"field": "username", "message": "this name is reserved"})
    if len(password or "") < MIN_PASSWORD:
        problems.append({"field": "password", "message": f"at least {MIN_PASSWORD} characters"})
    elif len(password) > 1024:
        problems.append({"field": "password", "message": "at most 1024 characters"})
    if role not in ROLES:
        problems.append({"field": "role", "message": "must be one of " + ", ".join(ROLES)})
    return problems


async def create_account(
    ctx: NodeContext,
    session: AsyncSession,
    username: str,
    password: str,
    role: str = "fan",
    *,
    email: str | None = None,
    name: str | None = None,
    kind: str | None = None,
    borough: str | None = None,
    genres: list[str] | None = None,
) -> Account:
    """Create a local actor with its own RSA key, its account and, for artists, a profile."""
    username = (username or "").strip().lower()
    problems = check_new_account(username, password, role)
    if borough is not None and borough not in ctx.settings.node.boroughs:
        problems.append({"field": "borough", "message": "unknown borough"})
    if problems:
        raise ValidationFailed(problems)
    taken = await session.scalar(
        select(Actor.id).where(Actor.handle == username, Actor.domain == ctx.domain)
    ) or await session.scalar(select(Account.id).where(Account.username == username))
    if taken:
        raise Conflict(f"the name {username!r} is taken", field="username")
    if email and await session.scalar(select(Account.id).where(Account.email == email)):
        raise Conflict("an account with this email exists", field="email")
    is_artist = role == "artist"
    keys = generate_rsa()
    uri = ctx.urls.actor(username)
    actor = Actor(
        uri=uri,
        handle=username,
        domain=ctx.domain,
        kind=kind or ("Group" if is_artist else "Person"),
        local=True,
        is_artist=is_artist,
        name=(name or username)[:200],
        url=ctx.urls.profile(username),
        inbox_url=f"{uri}/inbox",
        outbox_url=f"{uri}/outbox",
        followers_url=f"{uri}/followers",
        following_url=f"{uri}/following",
        shared_inbox_url=f"{ctx.settings.base_url}/inbox",
        public_key_pem=keys.public_pem,
        private_key_pem=keys.private_pem,
        key_id=f"{uri}#main-key",
    )
    session.add(actor)
    await session.flush()
    account = Account(
        actor_id=actor.id,
        username=username,
        email=email,
        password_hash=await auth.hash_password_async(password),
        role=role,
    )
    session.add(account)
    if is_artist:
        session.add(
            ArtistProfile(actor_id=actor.id, borough=borough, genres=genres or [], links=[])
        )
    await session.flush()
    account.actor = actor
    await ctx.bus.emit(session, "actor.created", actor_id=actor.id, uri=actor.uri)
    return account


async def login(ctx: NodeContext, username: str, password: str, client_ip: str | None) -> Account:
    """Authenticate in a transaction of its own, so failures are recorded even when refused."""
    async with ctx.db.session() as s:
        try:
            account = await auth.authenticate(
                s,
                username,
                password,
                client_ip,
                limit=ctx.settings.auth.login_attempts,
                window_seconds=ctx.settings.auth.login_window_seconds,
            )
        except Unauthorized:
            await s.commit()
            raise
        await s.commit()
        return account


async def get_account(session: AsyncSession, username: str) -> Account:
    account = await session.scalar(select(Account).where(Account.username == username.lower()))
    if account is None:
        raise NotFound(f"no user {username!r}")
    return account


async def set_role(ctx: NodeContext, session: AsyncSession, account: Account, role: str) -> None:
    """Change a role; becoming an artist makes the actor an artist with a profile."""
    if role not in ROLES:
        raise ValidationFailed([{"field": "role", "message": "must be one of " + ", ".join(ROLES)}])
    account.role = role
    actor = await session.get(Actor, account.actor_id)
    if role == "artist" and not actor.is_artist:
        actor.is_artist = True
        if await session.get(ArtistProfile, actor.id) is None:
            session.add(ArtistProfile(actor_id=actor.id, genres=[], links=[]))
        await session.flush()
        await ctx.bus.emit(session, "actor.updated", actor_id=actor.id, uri=actor.uri)


async def set_disabled(session: AsyncSession, account: Account, disabled: bool) -> None:
    from sqlalchemy import update

    from ..models import Token, utcnow

    account.disabled = disabled
    if disabled:
        # A disabled account loses every session and token at once.
        await session.execute(
            update(Token)
            .where(Token.account_id == account.id, Token.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


async def change_password(session: AsyncSession, account: Account, old: str, new: str) -> None:
    if not await auth.verify_password_async(account.password_hash, old):
        raise Unauthorized("the current password is wrong")
    if len(new) < MIN_PASSWORD:
        raise ValidationFailed(
            [{"field": "password", "message": f"at least {MIN_PASSWORD} characters"}]
        )
    account.password_hash = await auth.hash_password_async(new)
