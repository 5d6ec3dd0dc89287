"""`scalper signals` on the recorded sessions with the default config: several setups, a scalper's rate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.__main__ import main
from tests.conftest import SESSIONS, needs_data


@needs_data
def test_default_config_gives_intents_from_several_setups_at_a_plausible_rate(
        capsys: pytest.CaptureFixture[str]) -> None:
    setups: set[str] = set()
    total = 0
    minutes = 0.0
    lines = []
    for name, paths in sorted(SESSIONS.items()):
        assert main(["signals", *map(str, paths), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        intents = out["intents"]
        ts = [i["ts_ns"] for i in intents]
        assert ts == sorted(ts)
        for i in intents:
            assert i["side"] in ("long", "short")
            assert set(i) >= {"setup", "symbol", "price", "stop", "targets", "time_limit_s", "features", "ts_ns"}
            if i["side"] == "long":
                assert i["stop"] < i["price"] < i["targets"][0]["price"]
            else:
                assert i["stop"] > i["price"] > i["targets"][0]["price"]
            assert sum(t["fraction"] for t in i["targets"]) == pytest.approx(1.0)
            assert "quantity" not in i and "qty" not in i
        setups |= {i["setup"] for i in intents}
        total += len(intents)
        # spans of the recordings: 8 min (0718 pair), ~5.75 min (0808)
        minutes += 8.0 if "0718" in name else 5.75
        lines.append(f"{name}: {len(intents)} intents {out['counts']} vetoes {out['stats']['vetoes']}")
    rate = total / minutes
    print("\n" + "\n".join(lines))
    print(f"total {total} intents over {minutes:.0f} min = {rate:.2f}/min from {sorted(setups)}")
    assert len(setups) >= 3
    assert 0.2 <= rate <= 6.0  # not zero, not one a second


@needs_data
def test_table_output(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[signals.momentum]\nenabled = false\n")
    assert main(["signals", *map(str, SESSIONS["btcusdt_20240718"]), "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "momentum" not in out.split("\n\n")[-1]
    assert "rsi_snapback" in out


def test_bad_config_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[signals]\nmax_spread_tick = 3\n")
    assert main(["signals", "x.gz", "-c", str(cfg)]) == 2
    assert "max_spread_tick" in capsys.readouterr().err
