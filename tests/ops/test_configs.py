"""Every file in config/ loads, carries no secret, and lists every key of every section with a comment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.ops.configdoc import EXAMPLES, field_paths
from bot.settings import Settings, load_settings

CONFIG = Path(__file__).resolve().parents[2] / "config"
FILES = sorted(CONFIG.glob("*.toml"))
# "key = v" (set), "#key = v" (commented-out default), "# key: SECRET ..." (a secret: env/secrets file only).
_KEY = re.compile(r"^(?:#?([a-z_][a-z0-9_]*) = |# ([a-z_][a-z0-9_]*): SECRET)")
_TABLE = re.compile(r"^\[([a-z_.]+)\]\s*$")


def test_config_dir_has_every_example():
    names = {p.name for p in FILES}
    assert set(EXAMPLES) <= names, set(EXAMPLES) - names
    assert "default.toml" in names


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_config_file_loads(path: Path, monkeypatch):
    for var in ("SCALPER__VENUE__API_KEY", "SCALPER__VENUE__API_SECRET", "SCALPER__VENUE__SECRETS_FILE"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings(str(path))
    assert isinstance(s, Settings)
    # keys never come from a config file; exchange-sim falls back to the simulator's public pair
    want = "sim-key" if s.venue.environment == "exchange-sim" else ""
    assert s.venue.api_key.get_secret_value() == want


def _listed_keys(text: str) -> dict[str, list[str]]:
    """'table.key' -> the comment lines right above it."""
    table, out, pending = "", {}, []
    for line in text.splitlines():
        m = _TABLE.match(line)
        if m:
            table, pending = m.group(1), []
            continue
        m = _KEY.match(line)
        if m and table:
            # A secret's line is its own comment (it says where the value comes from instead).
            out[f"{table}.{m.group(1) or m.group(2)}"] = pending or ([line] if ": SECRET" in line else [])
            pending = []
        elif line.startswith("#"):
            pending.append(line)
        else:
            pending = []
    return out


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_list_every_key_with_a_comment(name: str):
    listed = _listed_keys((CONFIG / name).read_text())
    missing = [p for p in field_paths(Settings) if p not in listed]
    assert not missing, (f"{name} lacks {missing}: a section gained keys; refresh the examples with "
                         "`.venv/bin/python -m bot.ops.configdoc config/`")
    uncommented = [k for k, comments in listed.items() if not comments]
    assert not uncommented, uncommented


def test_example_specifics(monkeypatch):
    monkeypatch.setenv("SCALPER__VENUE__API_KEY", "sim-key")
    monkeypatch.setenv("SCALPER__VENUE__API_SECRET", "sim-secret")
    sim = load_settings(str(CONFIG / "exchange-sim.toml"))
    assert (sim.app.mode, sim.venue.name, sim.venue.environment) == ("exchange-sim", "binance-usdm",
                                                                      "exchange-sim")
    assert sim.venue.rest_url == "http://127.0.0.1:18080"
    assert sim.venue.api_key.get_secret_value() == "sim-key"  # from the environment only
    assert "sim-key" not in (CONFIG / "exchange-sim.toml").read_text().replace("=sim-key", "")
    live = load_settings(str(CONFIG / "live.example.toml"))
    assert (live.app.mode, live.venue.environment) == ("live", "mainnet")
    for name, venue, env in (("binance-demo", "binance-usdm", "demo"), ("binance-testnet", "binance-usdm",
                             "testnet"), ("bybit-testnet", "bybit", "testnet"), ("bybit-demo", "bybit", "demo")):
        s = load_settings(str(CONFIG / f"{name}.toml"))
        assert (s.venue.name, s.venue.environment) == (venue, env), name
        assert s.ops.host == "127.0.0.1" and s.ops.port == 9310
