"""Venue licence fees: what each venue pays a month, split at close over its detected plays."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.models import Venue, utcnow

from .errors import BadMoney
from .models import VenueLicence
from .money import Money

MAX_FEE_MINOR = 10**12


@dataclass(frozen=True)
class LicenceRow:
    venue_id: int
    venue_uuid: str
    venue_name: str
    fee: Money | None


async def set_licence(session: AsyncSession, venue: Venue, fee: Money | None) -> None:
    """Set (or, with None or zero, remove) a venue's monthly licence fee."""
    row = (
        await session.execute(select(VenueLicence).where(VenueLicence.venue_id == venue.id))
    ).scalar_one_or_none()
    if fee is None or fee.amount_minor == 0:
        if row is not None:
            await session.delete(row)
            await session.flush()
        return
    if not isinstance(fee, Money) or not 0 < fee.amount_minor <= MAX_FEE_MINOR:
        raise BadMoney("a licence fee is a positive amount")
    if row is None:
        session.add(
            VenueLicence(
                venue_id=venue.id,
                amount_minor=fee.amount_minor,
                currency=fee.currency,
                updated_at=utcnow(),
            )
        )
    else:
        row.amount_minor, row.currency, row.updated_at = fee.amount_minor, fee.currency, utcnow()
    await session.flush()


async def licences(session: AsyncSession) -> list[LicenceRow]:
    """Every local venue with its fee (None when it has none), by name."""
    res = await session.execute(
        select(Venue, VenueLicence)
        .outerjoin(VenueLicence, VenueLicence.venue_id == Venue.id)
        .where(Venue.local.is_(True))
        .order_by(Venue.name, Venue.id)
    )
    return [
        LicenceRow(
            v.id,
            v.uuid,
            v.name,
            Money(lic.amount_minor, lic.currency) if lic is not None else None,
        )
        for v, lic in res.all()
    ]


async def venue_by_ref(session: AsyncSession, ref: str) -> Venue | None:
    """A venue by uuid, URI or exact name."""
    res = await session.execute(
        select(Venue).where((Venue.uuid == ref) | (Venue.uri == ref) | (Venue.name == ref))
    )
    return res.scalars().first()
