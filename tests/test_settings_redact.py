"""Config error messages: what they say (key, hint) and what they never say (values of secrets, of unknown
keys, of whole sections). The canary sweep over real processes is tests/test_secrets_canary.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.errors import ConfigError
from bot.settings import Settings, load_settings
from bot.settings.redact import collect_secret_values, looks_secret, scrub, secret_paths


def _err(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secrets: str = "", cfg: str = "",
         **env: str) -> str:
    for k in [k for k in os.environ if k.startswith("SCALPER__")]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    c = tmp_path / "c.toml"
    c.write_text(cfg)
    if secrets:
        sec = tmp_path / "s.toml"
        sec.write_text(secrets)
        sec.chmod(0o600)
        monkeypatch.setenv("SCALPER__VENUE__SECRETS_FILE", str(sec))
    with pytest.raises(ConfigError) as e:
        load_settings(str(c))
    return str(e.value)


def test_every_secret_field_is_known() -> None:
    assert set(secret_paths(Settings)) == {"venue.api_key", "venue.api_secret", "ops.token",
                                           "ops.alerts.bot_token", "ops.alerts.webhook_url"}
    assert all(looks_secret(p.rsplit(".", 1)[-1]) for p in secret_paths(Settings))


def test_misplaced_secrets_section_names_the_right_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = _err(tmp_path, monkeypatch, '[alerts]\nwebhook_url = "https://h.example/SEKRET-1"\n')
    assert msg.splitlines()[1] == ("  alerts: unknown key (check the spelling; see config/default.toml for every "
                                   "key) (did you mean ops.alerts.webhook_url?)")
    assert "SEKRET-1" not in msg


def test_misspelled_key_shows_no_value_but_a_suggestion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = _err(tmp_path, monkeypatch, SCALPER__OPS__TOKNE="SEKRET-2", SCALPER__VENUE__SYMBOLZ="BTCUSDT")
    assert "ops.tokne: unknown key" in msg and "(did you mean ops.token?)" in msg
    assert "venue.symbolz: unknown key" in msg and "(did you mean venue.symbols?)" in msg
    assert "SEKRET-2" not in msg and "BTCUSDT" not in msg  # never the value of an unknown key


def test_section_validator_does_not_echo_the_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = _err(tmp_path, monkeypatch, SCALPER__OPS__HOST="0.0.0.0",
               SCALPER__OPS__ALERTS__WEBHOOK_URL="https://h.example/SEKRET-3")
    assert msg.splitlines()[1].startswith("  ops: Value error, ops.host = '0.0.0.0' is beyond loopback")
    assert "SEKRET-3" not in msg and "webhook" not in msg


def test_ordinary_values_are_still_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = _err(tmp_path, monkeypatch, cfg="[log]\nlevel = 'LOUD'\n[ops]\nport = 70000\n")
    assert "log.level = 'LOUD'" in msg and "ops.port = 70000" in msg


def test_bad_secrets_file_and_bad_env_json_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = _err(tmp_path, monkeypatch, '[venue]\napi_secret = "SEKRET-4\n')
    assert "\n" not in msg and "not valid TOML (at line 2, column" in msg and "SEKRET-4" not in msg
    msg = _err(tmp_path, monkeypatch, SCALPER__OPS='{"token": "SEKRET-5"')
    assert "\n" not in msg and "SEKRET-5" not in msg and '"ops"' in msg


def test_collect_and_scrub() -> None:
    vals = collect_secret_values({"venue": {"api_key": "k-123456", "x": {"passphrase": "p-98765"}},
                                  "ops": {"port": 1, "token": SecretStr("t-55555")}},
                                 {"SCALPER__OPS__ALERTS__BOT_TOKEN": "b-44444", "SCALPER__LOG__LEVEL": "INFO",
                                  "SCALPER__OPS": '{"token": "j-33333"}', "HOME": "/root", "SCALPER__X__KEY": "abc"})
    assert vals == {"k-123456", "p-98765", "t-55555", "b-44444", "j-33333"}  # 'abc': too short to cut
    assert scrub("a k-123456 b j-33333", vals) == "a <redacted> b <redacted>"
