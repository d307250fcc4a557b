"""`ruvon-sync` settings: flags > env > TOML > defaults; the secret from flag, file or systemd credential, never shown."""

from __future__ import annotations

import pytest

from sync_agent.settings import SettingsError, load_settings


def test_precedence_is_flags_then_env_then_toml_then_defaults(tmp_path):
    """A flag beats RUVON_SYNC_*, which beats the TOML file, which beats the default."""
    cfg = tmp_path / "sync.toml"
    cfg.write_text(
        '[sync]\nurl = "https://a.example"\ninterval = 5\npage_size = 7\ndevice_id = "from-toml"\n'
    )
    env = {"RUVON_SYNC_INTERVAL": "9", "RUVON_SYNC_DEVICE_ID": "from-env"}
    s = load_settings({"db": "x.db", "device_id": "from-flag"}, cfg, env)
    assert (s.device_id, s.interval, s.page_size, s.url, s.timeout) == (
        "from-flag",
        9.0,
        7,
        "https://a.example",
        30.0,
    )


def test_secret_comes_from_systemd_credentials_and_is_masked(tmp_path):
    """$CREDENTIALS_DIRECTORY/ruvon-sync-secret is read, and neither repr nor str shows it."""
    (tmp_path / "ruvon-sync-secret").write_text("topsecret\n")
    s = load_settings({"db": "x.db"}, None, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert s.secret.get_secret_value() == "topsecret"
    assert "topsecret" not in repr(s) and "topsecret" not in str(s)


def test_secret_file_flag_and_missing_file(tmp_path):
    """--secret-file is read; a missing one is a one-line SettingsError naming the path."""
    (tmp_path / "k").write_text("abc")
    assert (
        load_settings(
            {"db": "x", "secret_file": str(tmp_path / "k")}, None, {}
        ).secret.get_secret_value()
        == "abc"
    )
    with pytest.raises(SettingsError, match="secret file .*nope"):
        load_settings({"db": "x", "secret_file": str(tmp_path / "nope")}, None, {})


def test_bad_values_are_refused_with_the_setting_named(tmp_path):
    """Plain http off-loopback, a bad number, an unknown TOML key and missing required settings are named errors."""
    with pytest.raises(SettingsError, match="url"):
        load_settings({"db": "x", "url": "http://example.com"}, None, {})
    assert (
        load_settings({"db": "x", "url": "http://127.0.0.1:9/"}, None, {}).url
        == "http://127.0.0.1:9"
    )
    with pytest.raises(SettingsError, match="batch_records"):
        load_settings({"db": "x", "batch_records": "0"}, None, {})
    cfg = tmp_path / "c.toml"
    cfg.write_text("typo_key = 1\n")
    with pytest.raises(SettingsError, match="unknown key.*typo_key"):
        load_settings({"db": "x"}, cfg, {})
    with pytest.raises(SettingsError, match="--url, --device-id, --key-id, --secret"):
        load_settings({"db": "x"}, None, {}).require_remote()
