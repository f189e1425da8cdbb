"""Users and roles: list, search and look at accounts (curators and admins);
create accounts, change roles, disable and enable them (admins only).

Every change goes through the core's account services and writes its audit
entry in the same transaction. One rule is the console's own: the node never
loses its last active admin, so an admin cannot demote or disable themselves
while nobody else could undo it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.errors import BadRequest, Conflict
from node.models import ROLES, Account, Token, utcnow
from node.pagination import keyset_page, parse_limit
from node.serializers import actor_brief
from node.services.accounts import create_account, get_account, set_disabled, set_role
from node.validation import F, Schema, iso

from .audit import entries_for_target, record
from .console import CONSOLE, Done, Section, View

CONSOLE.section(Section("users", "Users", "admin.users", role="curator", order=20))

# Usernames never contain a dot, so `/users/bob.json` is always bob's twin.
USER = "/users/{username:[^{}/.]+}"
ORDERS = ("username", "newest")
STATUSES = ("active", "disabled")

CreateIn = Schema(
    "ConsoleCreateUser",
    F("username", required=True, max_len=64),
    F("password", required=True, max_len=1024),
    F("role", choices=ROLES),
    F("email", "email"),
)
RoleIn = Schema("ConsoleSetRole", F("role", required=True, choices=ROLES), F("reason", max_len=500))
StateIn = Schema("ConsoleSetDisabled", F("reason", max_len=500))


def user_json(account: Account, *, with_email: bool) -> dict[str, Any]:
    """An account as the console shows it; the email address only to admins."""
    out = {
        "username": account.username,
        "role": account.role,
        "disabled": account.disabled,
        "actor": actor_brief(account.actor),
        "created_at": iso(account.created_at),
        "last_login_at": iso(account.last_login_at),
    }
    if with_email:
        out["email"] = account.email
    return out


def _target(username: str) -> str:
    return f"user:{username}"


@CONSOLE.page("/users", name="admin.users", template="users.html", role="curator", section="users")
async def users(view: View) -> dict[str, Any]:
    """Search by username, filter by role and status, keyset pages."""
    q = view.query
    search = q.get("q", "").strip().lower()[:64]
    role = q.get("role", "")
    status = q.get("status", "")
    order = q.get("order", "") or "username"
    if role and role not in ROLES:
        raise BadRequest("role must be one of " + ", ".join(ROLES))
    if status and status not in STATUSES:
        raise BadRequest("status must be active or disabled")
    if order not in ORDERS:
        raise BadRequest("order must be username or newest")
    limit = parse_limit(q.get("limit"), default=50)
    stmt = select(Account)
    if search:
        stmt = stmt.where(Account.username.contains(search, autoescape=True))
    if role:
        stmt = stmt.where(Account.role == role)
    if status:
        stmt = stmt.where(Account.disabled == (status == "disabled"))
    key = Account.username if order == "username" else Account.created_at
    async with view.ctx.db.read_session() as s:
        page = await keyset_page(
            s,
            stmt,
            key,
            Account.id,
            cursor=q.get("cursor") or None,
            limit=limit,
            descending=order == "newest",
        )
    filters = {"q": search, "role": role, "status": status, "order": order}
    name = "admin.users.json" if view.json else "admin.users"
    query = {**filters, "order": "" if order == "username" else order, "limit": q.get("limit")}
    return {
        "filters": filters,
        "users": [user_json(a, with_email=view.is_admin) for a in page.items],
        "next": view.url(name, {**query, "cursor": page.next_cursor}) if page.next_cursor else None,
    }


async def _token_counts(session: AsyncSession, account: Account) -> dict[str, int]:
    now = utcnow()
    rows = await session.execute(
        select(Token.kind, func.count())
        .where(
            Token.account_id == account.id,
            Token.revoked_at.is_(None),
            or_(Token.expires_at.is_(None), Token.expires_at > now),
        )
        .group_by(Token.kind)
    )
    counts = {"session": 0, "api": 0}
    counts.update({kind: int(n) for kind, n in rows.all()})
    return counts


@CONSOLE.page(USER, name="admin.user", template="user.html", role="curator", section="users")
async def user_detail(view: View) -> dict[str, Any]:
    username = view.arg("username")
    async with view.ctx.db.read_session() as s:
        account = await get_account(s, username)
        tokens = await _token_counts(s, account)
        audit = await entries_for_target(s, _target(account.username))
    out: dict[str, Any] = {
        "user": user_json(account, with_email=view.is_admin),
        "tokens": tokens,
        "audit": audit,
    }
    if view.is_admin:
        # What a script may do next, and where (the JSON twins of the forms).
        parts = {"username": account.username}
        out["actions"] = {
            "role": view.url("admin.user.role.json", **parts),
            "enable" if account.disabled else "disable": view.url(
                "admin.user.enable.json" if account.disabled else "admin.user.disable.json", **parts
            ),
        }
    return out


async def _refuse_losing_last_admin(
    session: AsyncSession, account: Account, *, role: str, disabled: bool
) -> None:
    """Refuse a change that would leave the node with no active admin.

    The admin rows are locked (FOR UPDATE on PostgreSQL; SQLite already
    serializes writers), so two admins demoting each other at once cannot
    both succeed.
    """
    if account.role != "admin" or account.disabled or (role == "admin" and not disabled):
        return
    admins = (
        await session.scalars(
            select(Account.id)
            .where(Account.role == "admin", Account.disabled.is_(False))
            .with_for_update()
        )
    ).all()
    if not [i for i in admins if i != account.id]:
        raise Conflict(
            f"{account.username} is the last active admin; make another account an admin first",
            field="role" if role != "admin" else "disabled",
        )


@CONSOLE.action(
    USER + "/role", name="admin.user.role", back="admin.user", role="admin", body=RoleIn
)
async def change_role(view: View) -> Done:
    role = view.body["role"]
    async with view.ctx.db.transaction() as s:
        account = await get_account(s, view.arg("username"))
        before = account.role
        changed = before != role
        if changed:
            await _refuse_losing_last_admin(s, account, role=role, disabled=account.disabled)
            await set_role(view.ctx, s, account, role)
            details = {"before": {"role": before}, "after": {"role": role}}
            if view.body.get("reason"):
                details["reason"] = view.body["reason"]
            await record(s, view, "user.role", _target(account.username), details)
        data = {"user": user_json(account, with_email=True), "changed": changed}
    notice = (
        f"{account.username} is now {role}."
        if changed
        else f"{account.username} was already {role}."
    )
    return Done(data, view.url("admin.user", username=account.username), notice)


async def _set_disabled(view: View, disabled: bool) -> Done:
    action = "user.disable" if disabled else "user.enable"
    async with view.ctx.db.transaction() as s:
        account = await get_account(s, view.arg("username"))
        changed = account.disabled != disabled
        if changed:
            await _refuse_losing_last_admin(s, account, role=account.role, disabled=disabled)
            await set_disabled(s, account, disabled)  # disabling revokes every session and token
            details: dict[str, Any] = {
                "before": {"disabled": not disabled},
                "after": {"disabled": disabled},
            }
            if view.body.get("reason"):
                details["reason"] = view.body["reason"]
            await record(s, view, action, _target(account.username), details)
        data = {"user": user_json(account, with_email=True), "changed": changed}
    word = "disabled" if disabled else "enabled"
    if not changed:
        notice = f"{account.username} was already {word}."
    elif disabled:
        notice = f"{account.username} is disabled and signed out everywhere."
    else:
        notice = f"{account.username} is enabled; they can sign in again."
    return Done(data, view.url("admin.user", username=account.username), notice)


@CONSOLE.action(
    USER + "/disable", name="admin.user.disable", back="admin.user", role="admin", body=StateIn
)
async def disable_user(view: View) -> Done:
    return await _set_disabled(view, True)


@CONSOLE.action(
    USER + "/enable", name="admin.user.enable", back="admin.user", role="admin", body=StateIn
)
async def enable_user(view: View) -> Done:
    return await _set_disabled(view, False)


@CONSOLE.action(
    "/users", name="admin.users.create", back="admin.users", role="admin", body=CreateIn
)
async def create_user(view: View) -> Done:
    b = view.body
    role = b.get("role") or "fan"
    async with view.ctx.db.transaction() as s:
        account = await create_account(
            view.ctx, s, b["username"], b["password"], role, email=b.get("email")
        )
        details: dict[str, Any] = {"after": {"role": role, "email": account.email}}
        await record(s, view, "user.create", _target(account.username), details)
        data = {"user": user_json(account, with_email=True)}
    notice = f"Created {account.username} ({role})."
    return Done(data, view.url("admin.user", username=account.username), notice, status=201)
