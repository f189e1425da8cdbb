"""Netting a period's accepted statements: every network settles exactly, with
the fewest transfers the clearing house can find, and a signed document that
anyone can check and nobody can quietly change."""

from __future__ import annotations

import itertools

from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from royalties import canonical
from royalties.netting import (
    EXACT_LIMIT,
    Obligation,
    Transfer,
    apply,
    net,
    positions,
    settle,
)

NODES = [f"https://node{i:02d}.example/actor" for i in range(24)]
CURRENCIES = ["USD", "EUR", "JPY", "KWD"]


def obligations(max_nodes: int):
    return st.integers(2, max_nodes).flatmap(
        lambda n: st.lists(
            st.builds(
                lambda a, b, cur, amount: Obligation(NODES[a], NODES[b], cur, amount),
                st.integers(0, n - 1),
                st.integers(0, n - 1),
                st.sampled_from(CURRENCIES),
                st.integers(0, 5_000_00),
            ),
            max_size=40,
        )
    )


def fewest_by_brute_force(balances: dict[str, int]) -> int:
    """n - (most zero-sum blocks of any partition), by trying every partition."""
    values = [v for v in balances.values() if v]

    def partitions(items):
        if not items:
            yield []
            return
        first, rest = items[0], items[1:]
        for part in partitions(rest):
            for i in range(len(part)):
                yield part[:i] + [[first, *part[i]]] + part[i + 1 :]
            yield [[first], *part]

    best = 0
    for part in partitions(values):
        if all(sum(block) == 0 for block in part):
            best = max(best, len(part))
    return len(values) - best


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obligations(EXACT_LIMIT))
def test_positions_sum_to_zero_and_transfers_settle_them_exactly(obs):
    pos, transfers = net(obs)
    for balances in pos.values():
        assert sum(balances.values()) == 0
    moved = apply(transfers)
    assert moved == {
        c: {n: v for n, v in p.items() if v} for c, p in pos.items() if any(p.values())
    }
    for currency, balances in pos.items():
        nonzero = sum(1 for v in balances.values() if v)
        mine = [t for t in transfers if t.currency == currency]
        assert len(mine) <= max(nonzero - 1, 0)
        assert all(t.amount_minor > 0 and t.payer != t.payee for t in mine)


@settings(max_examples=120, deadline=None)
@given(obligations(7))
def test_small_networks_settle_in_the_fewest_possible_transfers(obs):
    pos, transfers = net(obs)
    for currency, balances in pos.items():
        count = sum(1 for t in transfers if t.currency == currency)
        assert count == fewest_by_brute_force(balances)


@settings(max_examples=30, deadline=None)
@given(obligations(24), st.randoms(use_true_random=False))
def test_large_networks_use_at_most_n_minus_one_and_any_order_gives_the_same_answer(obs, rnd):
    pos, transfers = net(obs)
    shuffled = list(obs)
    rnd.shuffle(shuffled)
    assert net(shuffled) == (pos, transfers)
    for currency, balances in pos.items():
        nonzero = sum(1 for v in balances.values() if v)
        assert sum(1 for t in transfers if t.currency == currency) <= max(nonzero - 1, 0)


def test_two_pairs_that_cancel_need_two_transfers_not_three():
    a, b, c, d = NODES[:4]
    # a owes b 5, c owes d 3: a greedy run over all four could chain them.
    balances = {a: -500, b: 500, c: -300, d: 300}
    assert settle(balances, "USD") == [
        Transfer("USD", a, b, 500),
        Transfer("USD", c, d, 300),
    ]


def test_eighteen_nodes_fall_back_to_largest_debtor_to_largest_creditor():
    nodes = NODES[:18]
    balances = {n: (i + 1) * 100 for i, n in enumerate(nodes[:9])}
    balances.update({n: -(i + 1) * 100 for i, n in enumerate(nodes[9:17])})
    balances[nodes[17]] = -900
    transfers = settle(balances, "USD")
    assert apply(transfers)["USD"] == balances
    assert transfers[0] == Transfer("USD", nodes[17], nodes[8], 900)
    assert len(transfers) <= 17


def test_positions_refuse_a_float_amount():
    try:
        positions([Obligation(NODES[0], NODES[1], "USD", 1.5)])  # type: ignore[arg-type]
    except TypeError:
        pass
    else:
        raise AssertionError("a float amount was netted")


KEY = ed25519.Ed25519PrivateKey.generate()
ISSUER = NODES[0]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.text(min_size=1, max_size=20), st.integers(1, 10**9)), max_size=6),
    st.data(),
)
def test_tampering_with_one_byte_of_a_signed_statement_is_detected(lines, data):
    doc = {
        "type": "nycmg:Statement",
        "period": "2026-10",
        "issuer": ISSUER,
        "recipient": NODES[1],
        "currency": "USD",
        "lines": [
            {
                "artist": f"https://b.example/actors/{name}",
                "plays": 3,
                "listeners": 1,
                "amount": amt,
            }
            for name, amt in lines
        ],
        "total": sum(a for _, a in lines),
    }
    signed = canonical.sign(doc, KEY, ISSUER)
    canonical.verify(signed, KEY.public_key())
    raw = bytearray(canonical.canonical(signed))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = (raw[i] + data.draw(st.integers(1, 255))) % 256
    import json

    try:
        tampered = json.loads(raw.decode())
    except ValueError:
        return  # no longer JSON: refused before any signature check
    if not isinstance(tampered, dict) or canonical.canonical(tampered) == canonical.canonical(doc):
        return  # the byte changed only insignificant whitespace: the same document
    tampered["signature"] = signed["signature"]
    try:
        canonical.verify(tampered, KEY.public_key())
    except canonical.SignatureInvalid:
        return
    raise AssertionError("a tampered statement verified")


def test_a_statement_signed_by_another_key_is_refused_and_the_multikey_round_trips():
    other = ed25519.Ed25519PrivateKey.generate()
    doc = canonical.sign({"type": "nycmg:Settlement", "period": "2026-10"}, other, ISSUER)
    try:
        canonical.verify(doc, KEY.public_key())
    except canonical.SignatureInvalid:
        pass
    else:
        raise AssertionError("another node's key verified")
    multibase = canonical.multibase_of(KEY.public_key())
    assert multibase.startswith("z6Mk")  # the familiar prefix of Ed25519 Multikeys
    canonical.verify(canonical.sign(doc, KEY, ISSUER), canonical.key_from_multibase(multibase))


def test_canonical_json_follows_rfc_8785_ordering():
    assert canonical.canonical({"b": 1, "a": [True, None, "é"], "signature": {}}) == (
        '{"a":[true,null,"é"],"b":1}'.encode()
    )
    assert list(itertools.islice(canonical.doc_hash({"a": 1}), 7)) == list("sha256:")
