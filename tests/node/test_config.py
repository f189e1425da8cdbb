"""A collective configures its node in nycmg.toml and overrides it from the environment."""

from __future__ import annotations

import pytest

from node.config import SETTINGS, load_settings, write_config
from node.errors import ConfigError

SECRET = "s" * 64


def _write(tmp_path, values):
    tmp_path.mkdir(exist_ok=True)
    write_config(tmp_path, {"node.secret_key": SECRET, **values})


def test_file_then_environment_then_explicit_overrides(tmp_path):
    _write(
        tmp_path,
        {"node.domain": "queens.example", "server.port": 9000, "node.boroughs": ["Queens"]},
    )
    s = load_settings(
        tmp_path,
        environ={"NYCMG_SERVER_PORT": "9100", "NYCMG_FEDERATION_ALLOW_PRIVATE_ADDRESSES": "true"},
    )
    assert s.node.domain == "queens.example"
    assert s.server.port == 9100
    assert s.federation.allow_private_addresses is True
    assert s.node.boroughs == ["Queens"]
    assert s.base_url == "http://queens.example"
    assert s.database_url.startswith("sqlite+aiosqlite:///") and s.database_url.endswith("nycmg.db")
    s = load_settings(tmp_path, environ={"NYCMG_NODE_BOROUGHS": "Bronx, Queens"})
    assert s.node.boroughs == ["Bronx", "Queens"]


@pytest.mark.parametrize(
    "values, environ, message",
    [
        ({"server.port": "eighty"}, {}, "server.port must be int"),
        ({}, {"NYCMG_SERVER_PORT": "eighty"}, "NYCMG_SERVER_PORT"),
        ({}, {"NYCMG_NODE_OPEN_REGISTRATION": "maybe"}, "node.open_registration must be bool"),
        ({"node.scheme": "ftp"}, {}, "node.scheme must be http or https"),
        ({"database.url": "mysql://x"}, {}, "database.url"),
        ({"node.domain": "has/slash"}, {}, "node.domain"),
        ({"node.secret_key": "short"}, {}, "secret_key"),
    ],
)
def test_bad_values_are_one_clear_message(tmp_path, values, environ, message):
    _write(tmp_path, values)
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path, environ=environ)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_settings_and_broken_toml_are_refused(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "nycmg.toml").write_text(f'[node]\nsecret_key = "{SECRET}"\ncolour = "red"\n')
    with pytest.raises(ConfigError, match="unknown setting node.colour"):
        load_settings(tmp_path, environ={})
    (tmp_path / "nycmg.toml").write_text("[node\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(tmp_path, environ={})
    with pytest.raises(ConfigError, match="nycmg init"):
        load_settings(tmp_path / "missing", environ={})


def test_every_setting_has_help_and_a_default_of_its_type():
    for s in SETTINGS:
        assert s.help.strip(), s.dotted
        assert isinstance(s.default, s.kind), s.dotted
        assert s.env_name == f"NYCMG_{s.section.upper()}_{s.key.upper()}"
