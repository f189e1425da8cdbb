"""Netting: from who-owes-whom to the fewest transfers that settle it (DESIGN.md 7.3).

Pure functions, no database: the clearing house and every member run the same
code on the same statements and must get the same transfers, so every choice
is deterministic (nodes ordered by URI, ties broken by URI).

The minimum number of transfers that settles n non-zero net positions is
n - k, where k is the largest number of disjoint groups with a zero sum the
nodes can be split into (each group of m settles in m - 1 transfers and no
fewer). Finding k is NP-hard in general; for up to `EXACT_LIMIT` nodes it is
a dynamic programme over subsets (2^16 masks, vectorised by popcount layer).
Beyond that: largest debtor pays largest creditor, which never needs more
than n - 1 transfers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

EXACT_LIMIT = 16


@dataclass(frozen=True, order=True)
class Obligation:
    """`debtor` owes `creditor` `amount_minor` of `currency` (one accepted statement)."""

    debtor: str
    creditor: str
    currency: str
    amount_minor: int


@dataclass(frozen=True, order=True)
class Transfer:
    currency: str
    payer: str
    payee: str
    amount_minor: int

    def as_json(self) -> dict[str, object]:
        return {
            "payer": self.payer,
            "payee": self.payee,
            "amount": self.amount_minor,
            "currency": self.currency,
        }


def positions(obligations: Iterable[Obligation]) -> dict[str, dict[str, int]]:
    """Net position per currency per node: what it receives minus what it owes.

    Each currency's positions sum to zero by construction (every obligation
    is added once and subtracted once)."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for o in obligations:
        if not isinstance(o.amount_minor, int) or isinstance(o.amount_minor, bool):
            raise TypeError("amounts are integers in minor units")
        if o.debtor == o.creditor:
            continue
        out[o.currency][o.debtor] -= o.amount_minor
        out[o.currency][o.creditor] += o.amount_minor
    return {c: dict(sorted(p.items())) for c, p in sorted(out.items())}


def _greedy(balances: Mapping[str, int], currency: str) -> list[Transfer]:
    """Largest debtor to largest creditor, ties by node URI; at most n - 1 transfers."""
    debt = {n: -v for n, v in balances.items() if v < 0}
    credit = {n: v for n, v in balances.items() if v > 0}
    transfers: list[Transfer] = []
    while debt and credit:
        payer = min(debt, key=lambda n: (-debt[n], n))
        payee = min(credit, key=lambda n: (-credit[n], n))
        amount = min(debt[payer], credit[payee])
        transfers.append(Transfer(currency, payer, payee, amount))
        for side, node in ((debt, payer), (credit, payee)):
            side[node] -= amount
            if side[node] == 0:
                del side[node]
    if debt or credit:
        raise ValueError("positions do not sum to zero")
    return transfers


def zero_sum_groups(values: list[int]) -> list[list[int]]:
    """Split indexes 0..n-1 into the most disjoint groups whose values sum to zero.

    dp[mask] = most complete zero-sum groups when the members of `mask` are
    taken one at a time in the best order; a group closes whenever the taken
    set sums to zero. Ties pick the lowest index, so the answer is stable."""
    n = len(values)
    if n == 0:
        return []
    if n > EXACT_LIMIT:
        raise ValueError(f"exact netting is for at most {EXACT_LIMIT} nodes")
    if sum(values) != 0:
        raise ValueError("positions do not sum to zero")
    size = 1 << n
    masks = np.arange(size, dtype=np.int64)
    sums = np.zeros(size, dtype=object if max(map(abs, values)) > 2**40 else np.int64)
    for i, v in enumerate(values):
        bit = 1 << i
        sums[(masks & bit) != 0] += v
    zero = (sums == 0).astype(np.int64)
    popcount = np.zeros(size, dtype=np.int64)
    for i in range(n):
        popcount += (masks >> i) & 1
    dp = np.full(size, -1, dtype=np.int64)
    dp[0] = 0
    for layer in range(1, n + 1):
        layer_masks = masks[popcount == layer]
        best = np.full(len(layer_masks), -1, dtype=np.int64)
        for i in range(n):
            bit = 1 << i
            has = (layer_masks & bit) != 0
            cand = np.where(has, dp[layer_masks ^ bit], -1)
            best = np.maximum(best, cand)
        dp[layer_masks] = best + zero[layer_masks]
    groups: list[list[int]] = []
    current: list[int] = []
    mask = size - 1
    while mask:
        need = dp[mask] - zero[mask]
        for i in range(n):
            bit = 1 << i
            if mask & bit and dp[mask ^ bit] == need:
                current.append(i)
                mask ^= bit
                if mask == 0 or zero[mask]:
                    groups.append(sorted(current))
                    current = []
                break
    return sorted(groups)


def settle(balances: Mapping[str, int], currency: str) -> list[Transfer]:
    """Transfers that bring every balance of one currency to zero.

    The fewest possible for up to `EXACT_LIMIT` non-zero nodes (each
    zero-sum group settled on its own), otherwise largest-to-largest."""
    if sum(balances.values()) != 0:
        raise ValueError(f"{currency} positions do not sum to zero")
    nodes = sorted(n for n, v in balances.items() if v != 0)
    if len(nodes) > EXACT_LIMIT:
        return _greedy({n: balances[n] for n in nodes}, currency)
    transfers: list[Transfer] = []
    for group in zero_sum_groups([balances[n] for n in nodes]):
        transfers += _greedy({nodes[i]: balances[nodes[i]] for i in group}, currency)
    return sorted(transfers, key=lambda t: (t.payer, t.payee))


def net(obligations: Iterable[Obligation]) -> tuple[dict[str, dict[str, int]], list[Transfer]]:
    """Positions per currency and the transfers that settle all of them."""
    pos = positions(obligations)
    transfers: list[Transfer] = []
    for currency, balances in pos.items():
        transfers += settle(balances, currency)
    return pos, transfers


def apply(transfers: Iterable[Transfer]) -> dict[str, dict[str, int]]:
    """What the transfers move, as positions (for checking: equals `positions`)."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for t in transfers:
        out[t.currency][t.payer] -= t.amount_minor
        out[t.currency][t.payee] += t.amount_minor
    return {c: {n: v for n, v in sorted(p.items()) if v} for c, p in sorted(out.items())}
