"""[store]: the PostgreSQL URL and pool size, their checks and $RMAIL_STORE_URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from rmail.server.config import ConfigError, build_config, load_config

URL = "postgresql://rmail:secret@db.example.com:5432/rmail"


def test_default_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    cfg = build_config({"data_dir": str(tmp_path)}, {})
    assert cfg.store.url is None and cfg.store.pool_size == 20
    assert cfg.store_location.kind == "sqlite" and cfg.store_location.data_dir == tmp_path.resolve()


@pytest.mark.parametrize("url", [URL, "postgres://db.example.com/rmail", "postgresql:///rmail?host=/run/postgresql"])
def test_url(url: str) -> None:
    cfg = build_config({"store": {"url": url, "pool_size": 8}}, {})
    assert cfg.store.url == url and cfg.store.pool_size == 8
    assert cfg.store_location.url == url and cfg.store_location.kind == "postgresql"


@pytest.mark.parametrize("value", ["mysql://db/rmail", "dbhost.internal", "", "postgresql://db /rmail",
                                   "postgresql://db:99999/rmail", "postgresql://[::1/rmail", 5, True,
                                   ["postgresql://db/rmail"]])
def test_bad_url_names_the_key_and_not_the_value(value: object) -> None:
    with pytest.raises(ConfigError) as err:
        build_config({"store": {"url": value}}, {})
    message = str(err.value)
    assert message.startswith("store.url:") and "postgresql://" in message and "\n" not in message
    if isinstance(value, str) and value:
        assert value not in message


def test_bad_url_never_echoes_a_password() -> None:
    with pytest.raises(ConfigError) as err:
        build_config({"store": {"url": "postgresql://rmail:hunter2 @db/rmail"}}, {})
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize("value", [1, 0, -3, 501, "20", 2.5, True])
def test_bad_pool_size(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^store.pool_size: must be an integer from 2 to 500$"):
        build_config({"store": {"pool_size": value}}, {})


def test_unknown_store_key() -> None:
    with pytest.raises(ConfigError, match="unknown key store.host"):
        build_config({"store": {"host": "db"}}, {})


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    toml = tmp_path / "rmail.toml"
    toml.write_text(f'[store]\nurl = "{URL}"\npool_size = 4\n')
    cfg = load_config(toml, {"RMAIL_STORE_URL": "postgres://other.example/mail"})
    assert cfg.store.url == "postgres://other.example/mail" and cfg.store.pool_size == 4
    assert load_config(toml, {"RMAIL_STORE_URL": ""}).store.url == URL
    with pytest.raises(ConfigError, match="^RMAIL_STORE_URL: must be a PostgreSQL URL"):
        load_config(toml, {"RMAIL_STORE_URL": "sqlite:///x"})
