"""Sign-up, tokens and the caller's own account."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from ..auth import issue_token, require_role, revoke_token
from ..errors import Forbidden, NotFound
from ..models import Actor, Token
from ..serializers import account_json, artist_json
from ..services import accounts
from ..validation import F, Schema
from ..web_helpers import client_ip
from . import API
from .routing import Call

TokenIn = Schema(
    "TokenRequest",
    F("username", required=True, max_len=64),
    F("password", required=True, max_len=1024),
    F("name", max_len=100, description="A label to recognise the token by"),
    F("expires_in_days", "int", min=1, max=3650),
)
SignupIn = Schema(
    "Signup",
    F("username", "handle", required=True),
    F("password", required=True, max_len=1024),
    F("email", "email"),
    F("name", max_len=200),
    F("role", choices=("fan", "artist"), description="artist to publish music"),
)
PasswordIn = Schema(
    "PasswordChange",
    F("old_password", required=True, max_len=1024),
    F("new_password", required=True, max_len=1024),
)


@API.route(
    "POST",
    "/api/v1/auth/token",
    name="api.auth.token",
    summary="Exchange a username and password for a bearer token",
    tag="auth",
    body=TokenIn,
    status=201,
)
async def create_token(call: Call):
    account = await accounts.login(
        call.ctx, call.body["username"], call.body["password"], client_ip(call.request)
    )
    days = call.body.get("expires_in_days")
    async with call.ctx.db.transaction() as s:
        account = await s.merge(account)
        secret, token = await issue_token(
            s, account, "api", call.body.get("name", ""), timedelta(days=days) if days else None
        )
    return {
        "token": secret,
        "id": token.id,
        "token_type": "Bearer",
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
    }


@API.route(
    "GET",
    "/api/v1/auth/tokens",
    name="api.auth.tokens",
    summary="List the caller's API tokens (never their secrets)",
    tag="auth",
    role="fan",
    response="array",
)
async def list_tokens(call: Call):
    async with call.ctx.db.read_session() as s:
        rows = (
            await s.scalars(
                select(Token)
                .where(
                    Token.account_id == call.account.id,
                    Token.kind == "api",
                    Token.revoked_at.is_(None),
                )
                .order_by(Token.id)
            )
        ).all()
    return [
        {
            "id": t.id,
            "name": t.name,
            "created_at": t.created_at.isoformat(),
            "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
            "expires_at": t.expires_at.isoformat() if t.expires_at else None,
        }
        for t in rows
    ]


@API.route(
    "DELETE",
    "/api/v1/auth/tokens/{id:\\d+}",
    name="api.auth.revoke",
    summary="Revoke one of the caller's tokens",
    tag="auth",
    role="fan",
    status=204,
)
async def delete_token(call: Call):
    async with call.ctx.db.transaction() as s:
        if not await revoke_token(s, int(call.path("id")), call.account.id):
            raise NotFound("no such token")


@API.route(
    "POST",
    "/api/v1/accounts",
    name="api.accounts.create",
    summary="Sign up on this node",
    tag="auth",
    body=SignupIn,
    status=201,
)
async def signup(call: Call):
    if not call.ctx.settings.node.open_registration:
        raise Forbidden("sign-up is closed on this node")
    async with call.ctx.db.transaction() as s:
        account = await accounts.create_account(
            call.ctx,
            s,
            call.body["username"],
            call.body["password"],
            call.body.get("role", "fan"),
            email=call.body.get("email"),
            name=call.body.get("name"),
        )
    return account_json(account)


@API.route(
    "GET", "/api/v1/me", name="api.me", summary="The caller's account", tag="auth", role="fan"
)
async def me(call: Call):
    out = account_json(call.account)
    if call.account.actor.is_artist:
        async with call.ctx.db.read_session() as s:
            from sqlalchemy.orm import selectinload

            actor = await s.scalar(
                select(Actor)
                .options(selectinload(Actor.profile))
                .where(Actor.id == call.account.actor_id)
            )
            out["artist"] = artist_json(actor)
    return out


@API.route(
    "POST",
    "/api/v1/me/password",
    name="api.me.password",
    summary="Change the caller's password",
    tag="auth",
    role="fan",
    body=PasswordIn,
    status=204,
)
async def change_password(call: Call):
    require_role(call.account, "fan")
    async with call.ctx.db.transaction() as s:
        account = await s.merge(call.account)
        await accounts.change_password(
            s, account, call.body["old_password"], call.body["new_password"]
        )
