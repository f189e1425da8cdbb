"""A collective runs its node from the `nycmg` command.

Each story calls `node.cli.main([...])` in-process, as the console script
would; a few start the real console script in a subprocess to prove that
`serve` and `worker` come up and go down on a signal. With
NYCMG_TEST_DATABASE_URL set, every node gets a fresh PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
import tomli_w
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from node.cli import main
from node.config import load_settings
from node.db import current_revision, head_revision, open_database
from node.keys import ED25519_FILE, RSA_FILE, load_private

ROOT = Path(__file__).resolve().parents[2]
NYCMG = Path(sys.executable).with_name("nycmg")
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(capsys, *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str) -> str:
    """Bad input is one line on stderr and a non-zero exit, never a traceback."""
    assert code != 0
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("nycmg: ")
    return err.strip()


@pytest.fixture
def db_args(tmp_path, databases) -> list[str]:
    url = databases.url_for(tmp_path)
    return ["--database-url", url] if url else []


@pytest.fixture
def data(tmp_path, db_args, capsys) -> Path:
    """A node that `nycmg init` made, on a free port."""
    d = tmp_path / "node"
    port = free_port()
    code, _, err = run(capsys, "init", "--data", d, "--domain", f"127.0.0.1:{port}", *db_args)
    assert code == 0, err
    return d


def revision_of(d: Path) -> str | None:
    async def go() -> str | None:
        db = open_database(load_settings(d).database_url)
        try:
            return await current_revision(db)
        finally:
            await db.dispose()

    return asyncio.run(go())


# ---- init ------------------------------------------------------------------


def test_init_writes_config_and_private_keys_and_migrates(tmp_path, db_args, capsys):
    d = tmp_path / "brooklyn"
    code, out, err = run(
        capsys,
        "init",
        "--data",
        d,
        "--domain",
        "127.0.0.1:8123",
        "--name",
        "Brooklyn Sound",
        *db_args,
    )
    assert code == 0, err
    assert "initialised" in out and "nycmg serve --data" in out

    config = d / "nycmg.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600  # it holds the secret key
    settings = load_settings(d)
    assert settings.node.domain == "127.0.0.1:8123"
    assert settings.server.port == 8123  # the port of the domain is where it serves
    assert settings.node.name == "Brooklyn Sound"
    assert len(settings.node.secret_key) >= 32

    rsa_key, ed_key = (settings.keys_dir / RSA_FILE), (settings.keys_dir / ED25519_FILE)
    for path in (rsa_key, ed_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert isinstance(load_private(rsa_key), rsa.RSAPrivateKey)
    assert load_private(rsa_key).key_size == 2048
    assert isinstance(load_private(ed_key), ed25519.Ed25519PrivateKey)

    assert revision_of(d) == head_revision()


def test_init_twice_refuses_and_leaves_the_node_alone(data, capsys):
    before = (data / "nycmg.toml").read_text()
    code, _, err = run(capsys, "init", "--data", data)
    assert "already holds a node" in one_line_error(code, err)
    assert (data / "nycmg.toml").read_text() == before


async def test_init_with_admin_creates_an_admin_who_can_get_a_token(
    tmp_path, db_args, aiohttp_client
):
    from node.app import create_app

    d = tmp_path / "node"
    code = await asyncio.to_thread(
        main, ["init", "--data", str(d), "--admin", f"Boss:{PASSWORD}", *db_args]
    )
    assert code == 0
    client = await aiohttp_client(create_app(load_settings(d), worker=False))
    r = await client.post("/api/v1/auth/token", json={"username": "boss", "password": PASSWORD})
    assert r.status == 201, await r.text()
    token = (await r.json())["token"]
    r = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert (await r.json())["role"] == "admin"


# ---- bad input -------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, says",
    [
        (["init"], "--data"),
        (["init", "--data", "{d}", "--scheme", "ftp"], "--scheme"),
        (["init", "--data", "{d}", "--admin", "nocolon"], "USER:PASSWORD"),
        (["init", "--data", "{d}", "--admin", "boss:short"], "password"),
        (["init", "--data", "{d}", "--admin", "api:long enough"], "reserved"),
        (["init", "--data", "{d}", "--domain", "bad/domain"], "node.domain"),
        (["init", "--data", "{d}", "--database-url", "mysql://x"], "database.url"),
        (["serve", "--data", "{d}", "--port", "http"], "--port"),
        (["serve", "--data", "{d}", "--port", "70000"], "--port"),
        (["migrate", "--data", "{d}"], "does not exist"),
        (["frobnicate"], "invalid choice"),
        (["user", "create", "--data", "{d}", "jay"], "--password"),
        (["demo", "--nodes", "0"], "--nodes"),
    ],
)
def test_bad_flags_are_one_line_and_leave_nothing_behind(tmp_path, capsys, argv, says):
    d = tmp_path / "fresh"
    code, _, err = run(capsys, *[a.replace("{d}", str(d)) for a in argv])
    assert says in one_line_error(code, err)
    assert not (d / "nycmg.toml").exists()


def test_an_unreachable_database_is_one_line_and_init_can_be_retried(tmp_path, capsys):
    d = tmp_path / "node"
    bad = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"
    code, _, err = run(capsys, "init", "--data", d, "--database-url", bad)
    assert "database error" in one_line_error(code, err)
    code, _, err = run(capsys, "init", "--data", d)  # fixed: SQLite this time
    assert code == 0, err


def _edit_config(d: Path, section: str, key: str, value) -> None:
    path = d / "nycmg.toml"
    config = tomllib.loads(path.read_text())
    config.setdefault(section, {})[key] = value
    path.write_text(tomli_w.dumps(config))


@pytest.mark.parametrize(
    "section, key, value, says",
    [
        ("server", "port", "eighty", "server.port must be int"),
        ("node", "colour", "red", "unknown setting node.colour"),
        ("node", "scheme", "gopher", "node.scheme must be http or https"),
        ("log", "level", "LOUD", "log.level"),
    ],
)
def test_a_bad_config_file_is_one_line_for_every_command(data, capsys, section, key, value, says):
    _edit_config(data, section, key, value)
    for command in (["migrate"], ["check"], ["serve"], ["worker"], ["user", "list"]):
        code, _, err = run(capsys, *command, "--data", data)
        assert says in one_line_error(code, err)


def test_broken_toml_is_one_line(data, capsys):
    (data / "nycmg.toml").write_text("[node\nname = ")
    code, _, err = run(capsys, "check", "--data", data)
    assert "not valid TOML" in one_line_error(code, err)


@pytest.mark.parametrize(
    "name, value, says",
    [
        ("NYCMG_SERVER_PORT", "eighty", "NYCMG_SERVER_PORT"),
        ("NYCMG_NODE_OPEN_REGISTRATION", "perhaps", "node.open_registration must be bool"),
        ("NYCMG_FEDERATION_POLICY", "closed", "federation.policy"),
    ],
)
def test_a_bad_environment_override_is_one_line(data, capsys, monkeypatch, name, value, says):
    monkeypatch.setenv(name, value)
    code, _, err = run(capsys, "migrate", "--data", data)
    assert says in one_line_error(code, err)


def test_a_good_environment_override_wins_over_the_file(data, capsys, monkeypatch):
    monkeypatch.setenv("NYCMG_NODE_NAME", "Queens Night Radio")
    assert load_settings(data).node.name == "Queens Night Radio"
    code, out, _ = run(capsys, "migrate", "--data", data)
    assert code == 0 and "revision" in out


# ---- users -----------------------------------------------------------------


def test_an_admin_manages_accounts_from_the_shell(data, capsys):
    for role in ("fan", "artist", "curator", "admin"):
        code, out, err = run(
            capsys,
            "user",
            "create",
            "--data",
            data,
            f"the_{role}",
            "--password",
            PASSWORD,
            "--role",
            role,
        )
        assert code == 0, err
        assert f"created {role} the_{role}@127.0.0.1:" in out

    code, _, err = run(capsys, "user", "create", "--data", data, "THE_FAN", "--password", PASSWORD)
    assert "taken" in one_line_error(code, err)

    code, _, err = run(
        capsys, "user", "create", "--data", data, "bad name!", "--password", PASSWORD
    )
    assert "username" in one_line_error(code, err)

    code, out, _ = run(
        capsys,
        "user",
        "create",
        "--data",
        data,
        "jay",
        "--password",
        PASSWORD,
        "--role",
        "artist",
        "--name",
        "Jay Sunnyside",
        "--borough",
        "Queens",
        "--email",
        "jay@example.org",
    )
    assert code == 0
    code, _, err = run(
        capsys,
        "user",
        "create",
        "--data",
        data,
        "jay2",
        "--password",
        PASSWORD,
        "--borough",
        "Atlantis",
    )
    assert "borough" in one_line_error(code, err)

    code, out, _ = run(capsys, "user", "role", "--data", data, "the_fan", "artist")
    assert code == 0 and "the_fan is now artist" in out
    code, _, err = run(capsys, "user", "role", "--data", data, "nobody", "admin")
    assert "no user" in one_line_error(code, err)

    code, out, _ = run(capsys, "user", "list", "--data", data)
    assert code == 0
    rows = [line.split("\t") for line in out.strip().splitlines()]
    assert rows == [
        ["jay", "artist", "active"],
        ["the_admin", "admin", "active"],
        ["the_artist", "artist", "active"],
        ["the_curator", "curator", "active"],
        ["the_fan", "artist", "active"],
    ]


# ---- migrate and check -----------------------------------------------------


def test_migrate_is_idempotent_and_says_where_it_is(data, capsys):
    for _ in range(2):
        code, out, _ = run(capsys, "migrate", "--data", data)
        assert code == 0
        assert out.strip() == f"database at revision {head_revision()}"


def test_check_passes_on_a_fresh_node_and_fails_on_a_readable_key(data, capsys):
    code, out, err = run(capsys, "check", "--data", data)
    assert code == 0, out + err
    lines = out.strip().splitlines()
    assert all(line.startswith("ok ") for line in lines), out
    for name in (
        "config",
        "database",
        "migrations",
        "key node-rsa.pem",
        "key node-ed25519.pem",
        "clock",
    ):
        assert any(line.split(":")[0].split(None, 1)[1] == name for line in lines), name

    (data / "keys" / RSA_FILE).chmod(0o644)
    code, out, err = run(capsys, "check", "--data", data)
    assert code != 0
    assert "FAIL key node-rsa.pem: mode 644 (should be 600)" in out
    assert "1 check(s) failed" in one_line_error(code, err)


# ---- serve and worker, as real processes -----------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NYCMG_")}
    env["NYCMG_LOG_FORMAT"] = "text"
    env["NYCMG_JOBS_POLL_SECONDS"] = "0.2"
    return env


def _wait_for(url: str, proc: subprocess.Popen, seconds: float = 30.0) -> dict:
    import json

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@pytest.mark.slow
@pytest.mark.parametrize("flags", [[], ["--no-worker"]], ids=["embedded", "no-worker"])
def test_serve_answers_healthz_and_stops_on_sigterm(data, flags):
    port = load_settings(data).server.port
    proc = subprocess.Popen(
        [str(NYCMG), "serve", "--data", str(data), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    try:
        body = _wait_for(f"http://127.0.0.1:{port}/healthz", proc)
        assert body["status"] == "ok"
        assert body["domain"] == f"127.0.0.1:{port}"
    finally:
        code = _stop(proc)
    assert code == 0, proc.stderr.read()
    assert f"nycmg serving http://127.0.0.1:{port}" in proc.stdout.read()


@pytest.mark.slow
def test_worker_starts_and_stops_on_sigterm(data):
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "worker", "--data", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the worker printed nothing in 30 s"
        line = proc.stdout.readline()  # printed once the worker is running
        assert line.startswith("nycmg worker for http://127.0.0.1:"), proc.stderr.read()
    finally:
        code = _stop(proc)
    assert code == 0, proc.stderr.read()


def test_the_console_script_and_python_m_both_work():
    for argv in ([str(NYCMG), "--help"], [sys.executable, "-m", "node.cli", "--help"]):
        done = subprocess.run(
            argv, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60
        )
        assert done.returncode == 0, done.stderr
        for command in ("init", "serve", "worker", "migrate", "user", "check", "demo"):
            assert command in done.stdout
    done = subprocess.run(
        [str(NYCMG), "serve"], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60
    )
    assert done.returncode == 2
    one_line_error(done.returncode, done.stderr)


def test_serve_on_a_port_in_use_is_one_line(data):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**_env(), "NYCMG_LOG_LEVEL": "WARNING"}
        done = subprocess.run(
            [str(NYCMG), "serve", "--data", str(data), "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
        )
    assert "address already in use" in one_line_error(done.returncode, done.stderr)
    assert "nycmg serving" not in done.stdout  # never announces a port it could not take
