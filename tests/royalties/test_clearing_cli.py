"""`nycmg clearing ...` and `nycmg payouts ...` as an admin types them: in-process,
against a node `nycmg init` made; refusals are one line and a non-zero exit."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from node.cli import main


def run(capsys, *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code: int, err: str) -> str:
    assert code != 0 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.fixture
def data(tmp_path, databases, capsys) -> Path:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = databases.url_for(tmp_path)
    d = tmp_path / "node"
    code, _, err = run(
        capsys,
        "init",
        "--data",
        d,
        "--domain",
        f"127.0.0.1:{port}",
        *(["--database-url", url] if url else []),
    )
    assert code == 0, err
    return d


def test_a_member_node_cannot_run_the_clearing_and_says_why(data, capsys):
    code, _, err = run(capsys, "clearing", "run", "--data", data, "2026-01")
    assert one_line(code, err).startswith("nycmg: this node is not the clearing house")
    code, _, err = run(capsys, "clearing", "run", "--data", data, "2026-13")
    assert code == 2 and "is not a period" in one_line(code, err)


def test_payouts_with_nothing_owed_book_nothing_and_export_an_empty_sheet(data, capsys):
    code, out, err = run(capsys, "payouts", "run", "--data", data)
    assert code == 0, err
    assert out.strip() == "0 payout(s) booked"
    sheet = data / "payouts.csv"
    code, out, err = run(capsys, "payouts", "export", "--data", data, "--output", sheet)
    assert code == 0, err
    assert sheet.read_text().splitlines() == ["payout,artist,amount_minor,currency,created_at,key"]
    code, out, err = run(capsys, "clearing", "statements", "--data", data)
    assert (code, out) == (0, "")


def test_unknown_payouts_transfers_and_statements_are_one_line_errors(data, capsys):
    code, _, err = run(capsys, "payouts", "mark-paid", "--data", data, "7", "--reference", "WIRE-1")
    assert one_line(code, err) == "nycmg: no payout 7"
    code, _, err = run(capsys, "clearing", "pay", "--data", data, "https://x.example/t/1")
    assert "--reference" in one_line(code, err)
    code, _, err = run(
        capsys, "clearing", "pay", "--data", data, "https://x.example/t/1", "--reference", "W"
    )
    assert one_line(code, err) == "nycmg: no transfer https://x.example/t/1"
    code, _, err = run(capsys, "clearing", "confirm", "--data", data, "https://x.example/t/1")
    assert one_line(code, err) == "nycmg: no transfer https://x.example/t/1"
    code, _, err = run(capsys, "clearing", "reissue", "--data", data, "https://x.example/s/1")
    assert one_line(code, err) == "nycmg: no statement of ours https://x.example/s/1"
