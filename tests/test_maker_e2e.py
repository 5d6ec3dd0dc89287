"""Issue 13 item 2 end to end, real processes: THE BOT (`python -m bot run`) with `execution.entry = "maker"`
against `python -m bot exchange-sim` whose account pays 1.5 bps maker / 4.5 bps taker (not the config's
2 / 5): the bot reads those rates at start-up (GET /fapi/v1/commissionRate), a post-only entry fills as
maker with the maker fee, and its protective stop rests at the exchange as a STOP_MARKET. check-config
--venue-fees reads the same rates. ~25 s at load average 10 on 2 cores, most of it two interpreters
importing ccxt; the generated market decides when a maker entry fills."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from bot.cli.check_config import _fees
from bot.settings import load_settings
from tests.test_exchange_sim_e2e import PY, ROOT, _config, _env, _read_line, _rows, _run_bot_until

MAKER_BPS, TAKER_BPS = 1.5, 4.5


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir()
    return tmp_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Sim:
    def __init__(self, tmp: Path, seed: int) -> None:
        cfg = tmp / "sim.toml"
        cfg.write_text(f"[sim]\nmaker_fee_bps = {MAKER_BPS}\ntaker_fee_bps = {TAKER_BPS}\n")
        self.proc = subprocess.Popen([PY, "-m", "bot", "exchange-sim", "--port", "0", "--seed", str(seed),
                                      "--symbols", "BTCUSDT", "--config", str(cfg)], cwd=ROOT, env=_env(tmp),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        line = _read_line(self.proc, b"exchange-sim ready on", 20).decode()
        self.base = line.split("ready on ")[1].split()[0]
        self.port = int(self.base.rsplit(":", 1)[1])

    def state(self) -> dict:
        with urllib.request.urlopen(self.base + "/_sim/state", timeout=5) as r:
            return orjson.loads(r.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def test_maker_entry_fills_as_maker_and_its_stop_rests_at_the_exchange(tmp: Path) -> None:
    t0 = time.monotonic()
    sim = _Sim(tmp, seed=3)  # seed 3: a maker fill within seconds (seeds 1, 2: ~45 s under load)
    try:
        # a wide stop and a long time limit: the trade is still open (PROTECTED) when the bot is stopped
        cfg = _config(tmp, sim.port, ["BTCUSDT"], on_shutdown="keep_protected", time_limit_s=60.0,
                      min_stop_bps=30.0, max_stop_bps=80.0)
        ops_port = _free_port()
        text = cfg.read_text().replace("[ops]\nport = 0", f"[ops]\nport = {ops_port}")
        cfg.write_text(text + '[execution]\nentry = "maker"\nentry_timeout_ms = 5000\n')
        # check-config --venue-fees, in process (a second interpreter would import ccxt again: seconds)
        fees, line = _fees(load_settings(str(cfg)), True)
        assert line == f"fees: BTCUSDT {MAKER_BPS:g}/{TAKER_BPS:g} bps (venue)", line
        assert fees == {"BTCUSDT": {"maker_bps": MAKER_BPS, "taker_bps": TAKER_BPS, "source": "venue"}}

        status: list[dict] = []

        def done(journal: Path) -> bool:
            if not _rows(journal, "select 1 from trades where state = 'PROTECTED'"):
                return False
            # what the operator sees, from the running bot: /status (bearer token from the state directory)
            token = (tmp / "state" / "ops.token").read_text().strip()
            req = urllib.request.Request(f"http://127.0.0.1:{ops_port}/status",
                                         headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=5) as r:
                status.append(orjson.loads(r.read()))
            return True

        rc, logs = _run_bot_until(tmp, cfg, done, max_s=60)  # an upper bound: it stops when done
        end = sim.state()
    finally:
        sim.stop()
    assert rc == 0, logs[-20:]
    assert status and status[0]["info"]["fees"] == f"BTCUSDT {MAKER_BPS:g}/{TAKER_BPS:g} bps (venue)", status
    fee_lines = [r for r in logs if r.get("event") == "fee_rates"]
    assert fee_lines and fee_lines[0]["fees"] == f"BTCUSDT {MAKER_BPS:g}/{TAKER_BPS:g} bps (venue)", fee_lines
    journal = tmp / "state" / "journal.sqlite"
    (t,) = _rows(journal, "select * from trades where state = 'PROTECTED'")
    entries = _rows(journal, "select f.* from fills f join legs l on l.client_id = f.client_id "
                             "where l.trade_id = ? and l.role = 'entry'", (t["trade_id"],))
    assert entries and all(f["is_maker"] == 1 for f in entries), entries
    for f in entries:  # the venue's maker rate, charged by the exchange and journaled as reported
        assert f["fee"] == pytest.approx(f["qty"] * f["price"] * MAKER_BPS / 1e4, rel=1e-6, abs=1e-8), f
    legs = _rows(journal, "select * from legs where trade_id = ? and role = 'entry'", (t["trade_id"],))
    assert all(leg["time_in_force"] == "GTX" for leg in legs), legs
    # the exchange holds the position and its protective stop (reduce-only STOP_MARKET) at the stop price
    pos = [p for p in end["positions"] if float(p["positionAmt"])]
    assert len(pos) == 1 and pos[0]["symbol"] == "BTCUSDT", end["positions"]
    stops = [a for a in end["open_algo_orders"] if a["orderType"] == "STOP_MARKET"]
    assert len(stops) == 1 and stops[0]["reduceOnly"] in (True, "true"), end["open_algo_orders"]
    assert float(stops[0]["quantity"]) == pytest.approx(abs(float(pos[0]["positionAmt"])))
    # its take-profits rest as reduce-only post-only limits (GTX) where the book allows
    tps = end["open_orders"]
    assert tps and all(o["timeInForce"] == "GTX" and o["reduceOnly"] in (True, "true") for o in tps), tps
    print(f"maker e2e: {time.monotonic() - t0:.1f} s")
