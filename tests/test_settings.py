"""Settings: strict, frozen, environment overrides, secrets kept out of files and output."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from bot.__main__ import main
from bot.errors import ConfigError
from bot.settings import load_settings, redacted
from bot.settings.core import VenueSection

ROOT = Path(__file__).resolve().parent.parent


def test_default_config_loads_and_is_frozen() -> None:
    s = load_settings(str(ROOT / "config" / "default.toml"))
    assert s.venue.name == "sim" and s.app.mode == "sim"
    with pytest.raises(ValidationError):
        s.market.depth_bps = 1.0  # type: ignore[misc]


def test_bad_value_names_key_value_and_allowed(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('[market]\nsnapshot_limit = 7\ndepht_bps = 3\n[venue]\nsymbols = ["BTC-USDT"]\n')
    with pytest.raises(ConfigError) as ei:
        load_settings(str(p))
    msg = str(ei.value)
    assert "market.snapshot_limit = 7" in msg and "1000" in msg
    assert "market.depht_bps" in msg and "unknown key" in msg
    assert "BTC-USDT" in msg


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[market]\ndepth_bps = 100.0\n")
    monkeypatch.setenv("SCALPER__MARKET__DEPTH_BPS", "42")
    assert load_settings(str(p)).market.depth_bps == 42.0


def test_secret_in_config_file_is_rejected_without_echoing_it(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[venue]\napi_key = "abcdef123456"\n')
    with pytest.raises(ConfigError) as ei:
        load_settings(str(p))
    assert "venue.api_key" in str(ei.value) and "abcdef123456" not in str(ei.value)


def test_secrets_from_env_and_file_are_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    sec = tmp_path / "secrets.toml"
    sec.write_text('[venue]\napi_key = "k-123"\napi_secret = "s-456"\n')
    sec.chmod(0o600)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[venue]\nname = "binance-usdm"\nenvironment = "testnet"\nsecrets_file = "{sec}"\n')
    s = load_settings(str(cfg))
    assert s.venue.api_secret.get_secret_value() == "s-456"
    assert redacted(s)["venue"]["api_secret"] == "***"
    assert main(["check-config", "-c", str(cfg), "--json"]) == 0
    out = capsys.readouterr().out
    assert "s-456" not in out and "k-123" not in out
    assert orjson.loads(out)["config"]["venue"]["api_key"] == "***"


def test_group_readable_secrets_file_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sec = tmp_path / "secrets.toml"
    sec.write_text('[venue]\napi_key = "k"\n')
    sec.chmod(0o644)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[venue]\nsecrets_file = "{sec}"\n')
    with caplog.at_level("WARNING", logger="bot.settings"):
        load_settings(str(cfg))
    assert [r.getMessage() for r in caplog.records] == [
        f"warning: secrets file {sec} is readable by group/others; chmod 600 it"]


def test_check_config_cli_reports_errors(tmp_path: Path, capsys) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("[log]\nlevel = 'LOUD'\n")
    assert main(["check-config", "-c", str(p)]) == 2
    err = capsys.readouterr().err
    assert "log.level = 'LOUD'" in err


def test_exchange_sim_uses_the_simulators_key_pair_unless_keys_are_given(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("SCALPER__VENUE__API_KEY", "SCALPER__VENUE__API_SECRET", "SCALPER__VENUE__SECRETS_FILE"):
        monkeypatch.delenv(k, raising=False)
    v = load_settings(str(ROOT / "config" / "exchange-sim.toml")).venue
    assert (v.api_key.get_secret_value(), v.api_secret.get_secret_value()) == ("sim-key", "sim-secret")
    monkeypatch.setenv("SCALPER__VENUE__API_KEY", "k2")
    monkeypatch.setenv("SCALPER__VENUE__API_SECRET", "s2")
    v = load_settings(str(ROOT / "config" / "exchange-sim.toml")).venue
    assert (v.api_key.get_secret_value(), v.api_secret.get_secret_value()) == ("k2", "s2")
    # any other environment never gets a key it was not given
    assert VenueSection(name="binance-usdm", environment="testnet").api_key.get_secret_value() == ""
