"""Passwords, tokens, sessions, CSRF, roles and login rate limiting: all
authentication and authorization decisions live here, in one place.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .errors import Forbidden, RateLimited, Unauthorized
from .models import ROLES, Account, LoginFailure, Token, utcnow

# Each role includes the powers of those before it.
ROLE_RANK = {role: i for i, role in enumerate(ROLES)}
_hasher = PasswordHasher()
# Verified against when the username does not exist, so timing does not tell.
_DUMMY_HASH = _hasher.hash("not a real password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# argon2 is slow on purpose (tens to hundreds of ms): never on the event loop,
# or one sign-in would stall every other request of the node.
async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password_hash: str, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def has_role(account: Account | None, minimum: str) -> bool:
    return (
        account is not None
        and not account.disabled
        and ROLE_RANK[account.role] >= ROLE_RANK[minimum]
    )


def require_role(account: Account | None, minimum: str) -> Account:
    """The single authorization check: 401 without a login, 403 below `minimum`."""
    if account is None:
        raise Unauthorized("sign in first")
    if account.disabled:
        raise Forbidden("this account is disabled")
    if ROLE_RANK[account.role] < ROLE_RANK[minimum]:
        raise Forbidden(f"needs the {minimum} role")
    return account


def require_owner_or(
    account: Account | None, owner_actor_id: int, minimum: str = "curator"
) -> Account:
    """Artists edit their own things; curators and admins edit anyone's."""
    account = require_role(account, "fan")
    if account.actor_id != owner_actor_id and not has_role(account, minimum):
        raise Forbidden("not yours")
    return account


async def issue_token(
    session: AsyncSession,
    account: Account,
    kind: str = "api",
    name: str = "",
    lifetime: timedelta | None = None,
) -> tuple[str, Token]:
    """Create a token; the secret is returned once and only its hash is stored."""
    secret = secrets.token_urlsafe(32)
    token = Token(
        account_id=account.id,
        kind=kind,
        token_hash=hash_token(secret),
        name=name[:100],
        created_at=utcnow(),
        expires_at=utcnow() + lifetime if lifetime else None,
    )
    session.add(token)
    await session.flush()
    return secret, token


async def account_for_token(
    session: AsyncSession, secret: str, kind: str
) -> tuple[Account, Token] | None:
    token = await session.scalar(
        select(Token).where(Token.token_hash == hash_token(secret), Token.kind == kind)
    )
    now = utcnow()
    if token is None or token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if token.account.disabled:
        return None
    return token.account, token


async def touch_token(session: AsyncSession, token: Token) -> None:
    """Record use at most once a minute, so reads do not turn into writes."""
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        await session.execute(update(Token).where(Token.id == token.id).values(last_used_at=now))


async def revoke_token(session: AsyncSession, token_id: int, account_id: int | None = None) -> bool:
    stmt = update(Token).where(Token.id == token_id, Token.revoked_at.is_(None))
    if account_id is not None:
        stmt = stmt.where(Token.account_id == account_id)
    result = await session.execute(stmt.values(revoked_at=utcnow()))
    return bool(result.rowcount)


def csrf_token(secret_key: str, session_secret: str) -> str:
    """Bound to the login session: a token from one session is useless in another."""
    return hmac.new(
        secret_key.encode(), b"csrf:" + session_secret.encode(), hashlib.sha256
    ).hexdigest()


def check_csrf(secret_key: str, session_secret: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(
        csrf_token(secret_key, session_secret), presented
    )


async def check_login_rate(
    session: AsyncSession, keys: list[str], limit: int, window_seconds: int
) -> None:
    """Refuse a login once `limit` failures for the username or the address fall in the window."""
    since = utcnow() - timedelta(seconds=window_seconds)
    for key in keys:
        failures = await session.scalar(
            select(func.count())
            .select_from(LoginFailure)
            .where(LoginFailure.key == key, LoginFailure.at >= since)
        )
        if failures >= limit:
            raise RateLimited(
                "too many failed sign-ins; wait a few minutes", retry_after=window_seconds
            )


async def record_login_failure(session: AsyncSession, keys: list[str], window_seconds: int) -> None:
    now = utcnow()
    for key in keys:
        session.add(LoginFailure(key=key, at=now))
    # Keep the table small: forget failures older than the window.
    await session.execute(
        delete(LoginFailure).where(LoginFailure.at < now - timedelta(seconds=window_seconds))
    )


async def authenticate(
    session: AsyncSession,
    username: str,
    password: str,
    client_ip: str | None,
    *,
    limit: int,
    window_seconds: int,
) -> Account:
    """Check a username and password with rate limiting; raises Unauthorized or RateLimited."""
    username = username.strip().lower()
    keys = [f"user:{username}"] + ([f"ip:{client_ip}"] if client_ip else [])
    await check_login_rate(session, keys, limit, window_seconds)
    account = await session.scalar(select(Account).where(Account.username == username))
    ok = await verify_password_async(account.password_hash if account else _DUMMY_HASH, password)
    if not ok or account is None or account.disabled:
        await record_login_failure(session, keys, window_seconds)
        raise Unauthorized("wrong username or password")
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = await hash_password_async(password)
    account.last_login_at = utcnow()
    return account


def session_expiry(days: int) -> datetime:
    return utcnow() + timedelta(days=days)
