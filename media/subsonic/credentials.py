"""Subsonic passwords and OpenSubsonic API keys: setting them and checking a request.

Token auth (`t = md5(password + salt)`, API 1.13+) can only be checked by
someone who knows the password, so the Subsonic password is a second,
per-user password, stored encrypted (Fernet, key derived from the node's
`node.secret_key` with HKDF) rather than hashed. It is never the login
password: a leaked Subsonic password opens the music, not the account's
settings. API keys (OpenSubsonic `apiKeyAuthentication`) are random and
stored as SHA-256, like the node's bearer tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.models import Account, utcnow

from . import errors
from .models import SubsonicApiKey, SubsonicCredential
from .params import Params

MIN_PASSWORD = 8
MAX_PASSWORD = 128
API_KEY_PREFIX = "nss_"


def _fernet(secret_key: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"nycmg subsonic password v1"
    ).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_password(secret_key: str, password: str) -> str:
    return _fernet(secret_key).encrypt(password.encode()).decode()


def decrypt_password(secret_key: str, token: str) -> str | None:
    """The clear password, or None when the node's secret changed since it was set."""
    try:
        return _fernet(secret_key).decrypt(token.encode()).decode()
    except InvalidToken:
        return None


def check_password_rules(password: str) -> str | None:
    """Why a new Subsonic password is refused, or None."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"
    if not password.isprintable():
        return "must not contain control characters"
    return None


async def set_password(session: AsyncSession, secret_key: str, account: Account, password: str):
    row = await session.get(SubsonicCredential, account.id)
    encrypted = encrypt_password(secret_key, password)
    if row is None:
        session.add(SubsonicCredential(account_id=account.id, password_enc=encrypted))
    else:
        row.password_enc = encrypted
        row.updated_at = utcnow()
    await session.flush()


async def clear_password(session: AsyncSession, account: Account) -> None:
    row = await session.get(SubsonicCredential, account.id)
    if row is not None:
        await session.delete(row)
        await session.flush()


async def has_password(session: AsyncSession, account: Account) -> bool:
    return await session.get(SubsonicCredential, account.id) is not None


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(session: AsyncSession, account: Account, name: str) -> str:
    """A new API key; the caller shows it once, only its hash is kept."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        SubsonicApiKey(
            account_id=account.id,
            key_hash=_hash_key(key),
            name=name.strip()[:100],
            hint=key[-4:],
            created_at=utcnow(),
        )
    )
    await session.flush()
    return key


async def api_keys_of(session: AsyncSession, account: Account) -> list[SubsonicApiKey]:
    rows = await session.scalars(
        select(SubsonicApiKey)
        .where(SubsonicApiKey.account_id == account.id, SubsonicApiKey.revoked_at.is_(None))
        .order_by(SubsonicApiKey.id)
    )
    return list(rows.all())


async def revoke_api_key(session: AsyncSession, account: Account, key_id: int) -> bool:
    row = await session.get(SubsonicApiKey, key_id)
    if row is None or row.account_id != account.id or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    await session.flush()
    return True


# ---- checking a request ---------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who made a Subsonic request (the dispatcher hands this to every handler)."""

    account: Account
    api_key_id: int | None = None

    @property
    def actor_id(self) -> int:
        return self.account.actor_id

    @property
    def is_admin(self) -> bool:
        return self.account.role == "admin"


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _clear_from_p(p: str) -> str:
    """`p` is the password in clear or, in the legacy form, `enc:` + its hex."""
    if p.startswith("enc:"):
        try:
            return bytes.fromhex(p[4:]).decode()
        except ValueError:
            raise errors.SubsonicError(
                errors.WRONG_CREDENTIALS, "Wrong username or password"
            ) from None
    return p


async def authenticate(session: AsyncSession, secret_key: str, params: Params) -> Caller:
    """Check `apiKey`, or `u` with `t`+`s` (token) or `p` (password), as the specs say."""
    api_key = params.str("apiKey", max_length=200)
    if api_key is not None:
        if params.has("u") or params.has("p") or params.has("t"):
            raise errors.SubsonicError(
                errors.CONFLICTING_AUTH, "Multiple conflicting authentication mechanisms provided"
            )
        row = await session.scalar(
            select(SubsonicApiKey).where(SubsonicApiKey.key_hash == _hash_key(api_key))
        )
        account = await session.get(Account, row.account_id) if row is not None else None
        if row is None or row.revoked_at is not None or account is None or account.disabled:
            raise errors.SubsonicError(errors.INVALID_API_KEY, "Invalid API key")
        return Caller(account, row.id)

    username = params.str("u", max_length=64)
    if not username:
        raise errors.missing("u")
    token, salt, password = params.str("t", max_length=64), params.str("s", max_length=200), None
    if token is None:
        password = params.str("p", max_length=1000)
        if password is None:
            raise errors.missing("p")
    elif not salt:
        raise errors.missing("s")
    wrong = errors.SubsonicError(errors.WRONG_CREDENTIALS, "Wrong username or password")
    account = await session.scalar(select(Account).where(Account.username == username.lower()))
    if account is None or account.disabled:
        raise wrong
    row = await session.get(SubsonicCredential, account.id)
    stored = decrypt_password(secret_key, row.password_enc) if row is not None else None
    if stored is None:
        raise wrong
    if token is not None:
        expected = hashlib.md5((stored + salt).encode(), usedforsecurity=False).hexdigest()
        if not _same(expected, token.lower()):
            raise wrong
    elif not _same(stored, _clear_from_p(password)):
        raise wrong
    return Caller(account)
