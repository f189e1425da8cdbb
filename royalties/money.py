"""Money: integer minor units with their currency, and the one way to split it.

A float anywhere in a money path raises `TypeError` (DESIGN.md 7): amounts are
`int` minor units (cents, yen, fils), and every split goes through
`allocate()`, the largest-remainder method with a deterministic tie-break, so
the parts always add up to the total, to the minor unit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K")

# ISO 4217 minor-unit exponents that are not 2. Anything else well-formed is 2.
_EXPONENTS: dict[str, int] = {
    # zero decimals
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    # three decimals
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
}
_CODE = re.compile(r"^[A-Z]{3}$")


def normalize_currency(code: str) -> str:
    """Upper-case an ISO 4217 code, or raise ValueError for anything else."""
    if not isinstance(code, str):
        raise TypeError(f"currency must be a str, not {type(code).__name__}")
    up = code.strip().upper()
    if not _CODE.match(up):
        raise ValueError(f"not a currency code: {code!r}")
    return up


def exponent(currency: str) -> int:
    """How many decimals the currency's minor unit has (0 for JPY, 3 for KWD, else 2)."""
    return _EXPONENTS.get(normalize_currency(currency), 2)


def _require_int(value: object, what: str) -> int:
    # bool is an int subclass but never an amount; float is refused outright.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int in minor units, not {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An amount in minor units of one currency. Immutable; never a float."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        _require_int(self.amount_minor, "amount_minor")
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """Read a decimal string like "12.34" (no floats involved) in `currency`."""
        exp = exponent(currency)
        m = re.fullmatch(r"\s*(-)?(\d+)(?:\.(\d+))?\s*", text or "")
        if not m:
            raise ValueError(f"not an amount: {text!r}")
        sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
        if len(frac) > exp:
            raise ValueError(f"{currency} has {exp} decimals: {text!r}")
        minor = int(whole) * 10**exp + (int(frac.ljust(exp, "0")) if exp else 0)
        return cls(-minor if sign else minor, currency)

    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} and {other.currency}")
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount_minor + self._same(other).amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount_minor - self._same(other).amount_minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_minor, self.currency)

    def __mul__(self, factor: int) -> Money:
        return Money(self.amount_minor * _require_int(factor, "factor"), self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        return self.amount_minor < self._same(other).amount_minor

    def __le__(self, other: Money) -> bool:
        return self.amount_minor <= self._same(other).amount_minor

    def __gt__(self, other: Money) -> bool:
        return self.amount_minor > self._same(other).amount_minor

    def __ge__(self, other: Money) -> bool:
        return self.amount_minor >= self._same(other).amount_minor

    def __bool__(self) -> bool:
        return self.amount_minor != 0

    def share_bps(self, bps: int) -> Money:
        """The part of this amount that `bps` basis points (1/10,000) is, rounded down.

        Rounded toward zero so a share never takes more than its rate; the
        remainder stays with whoever gets "the rest".
        """
        _require_int(bps, "bps")
        if not 0 <= bps <= 10_000:
            raise ValueError("basis points must be within 0..10000")
        q = abs(self.amount_minor) * bps // 10_000
        return Money(q if self.amount_minor >= 0 else -q, self.currency)

    def format(self) -> str:
        """A plain decimal string with the currency code, e.g. "12.34 USD", "1200 JPY"."""
        exp = exponent(self.currency)
        sign = "-" if self.amount_minor < 0 else ""
        whole, frac = (
            divmod(abs(self.amount_minor), 10**exp) if exp else (abs(self.amount_minor), 0)
        )
        body = f"{whole:,}" + (f".{frac:0{exp}d}" if exp else "")
        return f"{sign}{body} {self.currency}"

    def decimal_str(self) -> str:
        """The amount as a decimal string without grouping or currency ("1234.50")."""
        exp = exponent(self.currency)
        sign = "-" if self.amount_minor < 0 else ""
        if not exp:
            return f"{sign}{abs(self.amount_minor)}"
        whole, frac = divmod(abs(self.amount_minor), 10**exp)
        return f"{sign}{whole}.{frac:0{exp}d}"

    def __str__(self) -> str:
        return self.format()


def split_ints(amount: int, weights: Sequence[int], keys: Sequence[str]) -> list[int]:
    """The integer core of `allocate()`: split a non-negative `amount` by `weights`.

    Largest remainder; ties between equal remainders go to the smaller key.
    The close calls this directly on plain ints (millions of splits, no
    Money objects in between); `allocate()` is the typed front door.
    """
    denom = sum(weights)
    parts: list[int] = []
    rems: list[int] = []
    for w in weights:
        q, r = divmod(amount * w, denom)
        parts.append(q)
        rems.append(r)
    left = amount - sum(parts)
    if left:
        order = sorted(range(len(parts)), key=lambda i: (-rems[i], keys[i]))
        for i in order[:left]:
            parts[i] += 1
    assert sum(parts) == amount, "allocation leaks"
    return parts


def allocate(total: Money, weights: Mapping[K, int]) -> dict[K, Money]:
    """Split `total` in proportion to integer `weights`, to the minor unit.

    Largest remainder (Hamilton): every part gets the floor of its exact
    share, then the minor units left over go one each to the parts with the
    largest remainders; ties go to the smaller `str(key)`, so the result is
    the same on every node and every run. Negative totals are split as their
    positive counterpart, negated. Weights must be non-negative ints with a
    positive sum. The parts are asserted to add up to `total`.
    """
    if not isinstance(total, Money):
        raise TypeError("allocate() splits Money")
    if not weights:
        raise ValueError("allocate() needs at least one weight")
    for w in weights.values():
        _require_int(w, "weight")
        if w < 0:
            raise ValueError("weights must be non-negative")
    if sum(weights.values()) <= 0:
        raise ValueError("weights must have a positive sum")
    sign = -1 if total.amount_minor < 0 else 1
    keys = list(weights)
    parts = split_ints(abs(total.amount_minor), [weights[k] for k in keys], [str(k) for k in keys])
    out = {k: Money(sign * v, total.currency) for k, v in zip(keys, parts, strict=True)}
    assert sum(v.amount_minor for v in out.values()) == total.amount_minor, "allocation leaks"
    return out


def sum_money(items: list[Money] | tuple[Money, ...], currency: str) -> Money:
    """The sum of `items`, all in `currency` (Money.zero when empty)."""
    acc = Money.zero(currency)
    for m in items:
        acc = acc + m
    return acc
