"""A node admin grants subscriptions, sets venue fees and closes months from the command line."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from node.cli import main
from royalties.periods import period_of, shift

PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str) -> str:
    assert code != 0
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.fixture
def data(tmp_path, databases, capsys) -> Path:
    d = tmp_path / "node"
    url = databases.url_for(tmp_path)
    extra = ["--database-url", url] if url else []
    code, _, err = run(capsys, "init", "--data", d, "--domain", f"127.0.0.1:{free_port()}", *extra)
    assert code == 0, err
    code, _, err = run(capsys, "user", "create", "--data", d, "ana", "--password", PASSWORD)
    assert code == 0, err
    return d


def test_grant_a_subscription_then_close_the_month(data, capsys):
    from datetime import UTC, datetime

    last_month = shift(period_of(datetime.now(UTC)), -1)
    code, out, err = run(
        capsys,
        "subscription",
        "grant",
        "--data",
        data,
        "ana",
        "--amount",
        "999",
        "--currency",
        "usd",
        "--from",
        last_month,
    )
    assert code == 0, err
    assert f"ana: subscribed at 9.99 USD a month, {last_month}" in out

    code, out, err = run(capsys, "royalties", "close", "--data", data, last_month)
    assert code == 0, err
    # ana played nothing: the node keeps its 10%, the rest funds the foundation
    assert f"{last_month} USD: collected 9.99 USD" in out
    assert "node 0.99 USD, foundation 9.00 USD" in out

    code, out, err = run(capsys, "royalties", "close", "--data", data, last_month)
    assert code == 0 and "already closed; nothing changed" in out
    # a closed month takes no more grants
    code, _, err = run(
        capsys,
        "subscription",
        "grant",
        "--data",
        data,
        "ana",
        "--amount",
        "999",
        "--currency",
        "USD",
        "--from",
        last_month,
    )
    assert "is closed" in one_line_error(code, err)


def test_bad_input_is_one_line_and_a_non_zero_exit(data, capsys):
    from datetime import UTC, datetime

    this_month = period_of(datetime.now(UTC))
    cases = [
        ("subscription", "grant", "--data", data, "ana", "--amount", "9.99", "--currency", "USD"),
        (
            "subscription",
            "grant",
            "--data",
            data,
            "ana",
            "--amount",
            "999",
            "--currency",
            "dollars",
        ),
        ("subscription", "grant", "--data", data, "nobody", "--amount", "999", "--currency", "USD"),
        (
            "subscription",
            "grant",
            "--data",
            data,
            "ana",
            "--amount",
            "999",
            "--currency",
            "USD",
            "--months",
            "0",
        ),
        ("royalties", "close", "--data", data, "2026-13"),
        ("royalties", "close", "--data", data, this_month),
        ("royalties", "licence", "--data", data, "No Such Club", "--amount", "100"),
    ]
    for argv in cases:
        code, _, err = run(capsys, *argv)
        one_line_error(code, err)
    code, _, err = run(capsys, "royalties", "close", "--data", data, this_month)
    assert "has not ended" in err
