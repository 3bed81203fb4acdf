"""Configuration: lookup order, defaults, the unprivileged port offset, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rmail.server.config import UNPRIVILEGED_OFFSET, ConfigError, build_config, load_config


def test_defaults_as_root() -> None:
    cfg = build_config({}, {}, is_root=True)
    assert (cfg.ports.smtp, cfg.ports.submission, cfg.ports.smtps) == (25, 587, 465)
    assert (cfg.ports.imap, cfg.ports.imaps, cfg.ports.api) == (143, 993, 9002)
    assert cfg.listen == ("127.0.0.1",)
    assert cfg.limits.message_size == 25 * 1024 * 1024
    assert not cfg.tls.configured
    assert cfg.port_offset == 0


def test_unprivileged_offset_applies_to_default_ports_only() -> None:
    cfg = build_config({}, {}, is_root=False)
    assert cfg.ports.smtp == 25 + UNPRIVILEGED_OFFSET and cfg.ports.api == 9002 + UNPRIVILEGED_OFFSET
    assert cfg.port_offset == UNPRIVILEGED_OFFSET
    explicit = build_config({"ports": {"imap": 1143}}, {}, is_root=False)
    assert explicit.ports.imap == 1143
    assert explicit.ports.smtp == 10025


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = tmp_path / "a.toml", tmp_path / "b.toml", tmp_path / "rmail.toml"
    a.write_text('hostname = "a.example"\n')
    b.write_text('hostname = "b.example"\n')
    c.write_text('hostname = "c.example"\n')
    monkeypatch.chdir(tmp_path)
    assert load_config(a, {"RMAIL_CONFIG": str(b)}).hostname == "a.example"
    assert load_config(None, {"RMAIL_CONFIG": str(b)}).hostname == "b.example"
    assert load_config(None, {}).hostname == "c.example"


def test_user_config_dir_is_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    user_cfg = tmp_path / "home" / "config" / "rmail" / "rmail.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / "config"))
    user_cfg.parent.mkdir(parents=True)
    user_cfg.write_text('hostname = "user.example"\n')
    assert load_config(None, {}).hostname == "user.example"


def test_data_dir_env_overrides(tmp_path: Path) -> None:
    cfg = build_config({"data_dir": "/somewhere"}, {"RMAIL_DATA_DIR": str(tmp_path)})
    assert cfg.data_dir == tmp_path.resolve()


@pytest.mark.parametrize("raw, key", [
    ({"hostnme": "x"}, "hostnme"),
    ({"ports": {"smtp": "25"}}, "ports.smtp"),
    ({"ports": {"smtp": 70000}}, "ports.smtp"),
    ({"ports": {"imap": 2000, "smtp": 2000}}, "ports"),
    ({"ports": {"pop3": 110}}, "ports.pop3"),
    ({"limits": {"message_size": -1}}, "limits.message_size"),
    ({"limits": {"message_size": True}}, "limits.message_size"),
    ({"tls": {"cert": "/nonexistent.pem", "key": "/nonexistent.key"}}, "tls.cert"),
    ({"tls": {"cert": "/nonexistent.pem"}}, "tls"),
    ({"relay": {"tls": "sometimes"}}, "relay.tls"),
    ({"listen": 5}, "listen"),
    ({"bcrypt_rounds": 2}, "bcrypt_rounds"),
    ({"ports": 5}, "ports"),
], ids=lambda v: str(v))
def test_bad_values_name_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build_config(raw, {})
    message = str(exc.value)
    assert key in message and "\n" not in message


def test_bad_toml_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "rmail.toml"
    bad.write_text("hostname = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, {})


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config"):
        load_config(tmp_path / "nope.toml", {})
