"""The market session (bot.market.session) in every replay command: snapshots before the first diff,
several symbols and days merged by receive time, honest exit codes, mark-price/funding in the backtest."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import orjson
import pytest

from bot.__main__ import main
from bot.market.health import BookStatus
from bot.replay.check import check_files
from bot.replay.reader import LineError, Record, read_session
from tests.conftest import SESSIONS, needs_data

BTC = SESSIONS["btcusdt_20240808"][0]
ETH = SESSIONS["ethusdt_20240808"][0]


def _lines(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as fh:
        return [ln for ln in fh if ln.strip()]


def _snapshot_first(path: Path, at_ns: int | None = None) -> list[bytes]:
    """The recorded session with its bare REST snapshot moved before the first diff (as other tools
    record it): the diffs older than it are then dropped, the one that bridges it comes after it."""
    lines = _lines(path)
    (i,) = [k for k, ln in enumerate(lines) if b'{"lastUpdateId"' in ln[:40]]
    snap = lines.pop(i)
    ts = int(lines[0].split(b" ", 1)[0]) - 1 if at_ns is None else at_ns
    return [b"%d %s" % (ts, snap.split(b" ", 1)[1]), *lines]


def _write(path: Path, lines: list[bytes]) -> str:
    with gzip.open(path, "wb") as fh:
        fh.write(b"".join(lines))
    return str(path)


def _merged(*sessions: list[bytes]) -> list[bytes]:
    """Several sessions in one file, ordered by receive time (a multi-symbol recording)."""
    return sorted((ln for s in sessions for ln in s), key=lambda ln: int(ln.split(b" ", 1)[0]))


@pytest.fixture(scope="module")
def snap_first(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("snapfirst")
    btc = _snapshot_first(BTC)
    # In the merged file both bare snapshots precede every diff: the ids are one space across USD-M
    # symbols, so only the splice rule plus the prices can tell whose each one is.
    t0 = int(btc[0].split(b" ", 1)[0])
    both = _merged(_snapshot_first(BTC, t0 - 2), _snapshot_first(ETH, t0 - 1))
    assert b'{"lastUpdateId"' in both[0][:60] and b'{"lastUpdateId"' in both[1][:60]
    return {"single": _write(d / "btc_snapfirst.gz", btc), "multi": _write(d / "btc_eth_snapfirst.gz", both)}


@needs_data
@pytest.mark.parametrize("kind", ["single", "multi"])
def test_snapshot_before_first_diff_syncs_in_check_data(kind: str, snap_first: dict[str, str], capsys) -> None:
    res = check_files([snap_first[kind]])
    want = ["BTCUSDT"] if kind == "single" else ["BTCUSDT", "ETHUSDT"]
    assert sorted(res["symbols"]) == want
    for r in res["symbols"].values():
        assert r["status"] == "LIVE" and r["snapshots"] == 1
        assert r["gaps"] == 0 and r["resyncs"] == 0 and r["crossed"] == 0
        assert r["bbo_checked"] > 500 and r["bbo_mismatched"] == 0
    assert res["problems"] == [] and res["errors"] == 0
    assert main(["check-data", snap_first[kind]]) == 0


@needs_data
@pytest.mark.parametrize("kind", ["single", "multi"])
def test_snapshot_before_first_diff_syncs_in_signals_and_features(kind: str, snap_first: dict[str, str],
                                                                   tmp_path: Path, capsys) -> None:
    from bot.cli.features import replay_events

    stats: dict = {}
    live = {ev[1] for ev in replay_events([snap_first[kind]], stats=stats)
            if ev[0] == "depth" and ev[3] is BookStatus.LIVE}
    assert live == ({"BTCUSDT"} if kind == "single" else {"BTCUSDT", "ETHUSDT"})
    assert stats["problems"] == []
    out = tmp_path / "f.csv"
    for sym in sorted(live):
        assert main(["features", snap_first[kind], "--symbol", sym, "--csv", str(out)]) == 0
        assert len(out.read_text().splitlines()) > 300  # ~345 one-second rows of live book
    assert main(["signals", snap_first[kind], "--json"]) == 0
    res = orjson.loads(capsys.readouterr().out)
    assert res["problems"] == [] and res["stats"]


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["single", "multi"])
def test_snapshot_before_first_diff_syncs_in_backtest(kind: str, snap_first: dict[str, str]) -> None:
    from bot.cli.backtest import run_backtest
    from bot.settings import load_settings

    problems: list[str] = []
    res = asyncio.run(run_backtest([snap_first[kind]], load_settings(), problems=problems))
    assert problems == []
    s = res["summary"]
    assert s["symbols"] == (["BTCUSDT"] if kind == "single" else ["BTCUSDT", "ETHUSDT"])
    assert s["intents"] > 0 and s["trades"] > 0  # the book went LIVE and the bot traded on it
    if kind == "multi":
        assert {t["symbol"] for t in res["trades"]} == {"BTCUSDT", "ETHUSDT"}


@needs_data
@pytest.mark.slow
def test_two_symbol_backtest_trades_interleave_in_time() -> None:
    from bot.cli.backtest import run_backtest
    from bot.settings import load_settings

    problems: list[str] = []
    res = asyncio.run(run_backtest([str(BTC), str(ETH)], load_settings(), problems=problems))
    assert problems == []
    trades = sorted(res["trades"], key=lambda t: t["entry_ts_ns"])
    syms = [t["symbol"] for t in trades]
    assert set(syms) == {"BTCUSDT", "ETHUSDT"}
    # interleaved: not all of one symbol before the other (merged by time, not one file after the other)
    first_eth = syms.index("ETHUSDT")
    assert "BTCUSDT" in syms[first_eth:] or any(
        t["symbol"] == "ETHUSDT" and t["entry_ts_ns"] < max(b["exit_ts_ns"] for b in trades if b["symbol"] == "BTCUSDT")
        for t in trades)
    btc_times = [t["entry_ts_ns"] for t in trades if t["symbol"] == "BTCUSDT"]
    eth_times = [t["entry_ts_ns"] for t in trades if t["symbol"] == "ETHUSDT"]
    assert min(eth_times) < max(btc_times) and min(btc_times) < max(eth_times)
    assert res["summary"]["market_events"] == sum(1 for r in read_session([str(BTC), str(ETH)])
                                                  if isinstance(r, Record))


@needs_data
def test_bare_snapshots_after_their_diffs_in_one_multi_symbol_file(tmp_path: Path) -> None:
    # both recorded sessions in one file, each bare snapshot where it was received (after diffs of both
    # symbols, whose id spans both cover it): placed by the splice rule + prices, the README figures hold
    f = _write(tmp_path / "btc_eth.gz", _merged(_lines(BTC), _lines(ETH)))
    res = check_files([f])
    assert res["problems"] == [] and res["errors"] == 0
    assert {s: (r["bbo_checked"], r["bbo_mismatched"], r["gaps"], r["snapshots"])
            for s, r in res["symbols"].items()} == {"BTCUSDT": (629, 0, 0, 1), "ETHUSDT": (551, 0, 0, 1)}


# ---------------------------------------------------------------------------------------- merge order
def _plain(path: Path, rows: list[tuple[int, str]]) -> str:
    path.write_bytes(b"".join(b"%d %s\n" % (ts, body.encode()) for ts, body in rows))
    return str(path)


def _trade(sym: str, tid: int) -> str:
    return orjson.dumps({"stream": f"{sym.lower()}@trade", "data": {
        "e": "trade", "E": 1, "T": 1, "s": sym, "t": tid, "p": "100.0", "q": "1.0", "X": "MARKET", "m": False,
    }}).decode()


def test_files_of_several_symbols_are_merged_by_receive_time_and_a_day_pair_stays_in_order(tmp_path: Path) -> None:
    a1 = _plain(tmp_path / "rec_aaa_20240101.txt", [(10, _trade("AAAUSDT", 1)), (30, _trade("AAAUSDT", 2))])
    # the next day of the same stream starts *before* the first day's last line: still read after it
    a2 = _plain(tmp_path / "rec_aaa_20240102.txt", [(25, _trade("AAAUSDT", 3)), (50, _trade("AAAUSDT", 4))])
    b = _plain(tmp_path / "rec_bbb_20240101.txt", [(5, _trade("BBBUSDT", 1)), (20, _trade("BBBUSDT", 2)),
                                                  (40, _trade("BBBUSDT", 3))])
    got = [(r.ts_recv_ns, orjson.loads(r.raw)["data"]["s"][:3]) for r in read_session([a1, a2, b])]
    assert got == [(5, "BBB"), (10, "AAA"), (20, "BBB"), (30, "AAA"), (25, "AAA"), (40, "BBB"), (50, "AAA")]
    # streaming: the merge pulls lines as it goes (a generator over open readers), not files whole
    it = read_session([a1, a2, b])
    assert next(it).ts_recv_ns == 5


def test_a_bad_line_keeps_its_place_in_its_stream(tmp_path: Path) -> None:
    a = tmp_path / "x_aaa.txt"
    a.write_bytes(b"10 " + _trade("AAAUSDT", 1).encode() + b"\nnot-a-time {}\n30 " + _trade("AAAUSDT", 2).encode()
                  + b"\n")
    b = _plain(tmp_path / "x_bbb.txt", [(20, _trade("BBBUSDT", 1))])
    items = list(read_session([str(a), b]))
    kinds = [("err" if isinstance(r, LineError) else r.ts_recv_ns) for r in items]
    assert kinds == [10, "err", 20, 30]
    assert isinstance(items[1], LineError) and items[1].lineno == 2 and items[1].path == str(a)


# ---------------------------------------------------------------------------------------- exit codes
# missing / directory / garbage / empty / never LIVE / partial damage, per command: tests/replay/test_exit_codes.py
@needs_data
def test_snapshot_no_diff_bridges_is_reported(tmp_path: Path, capsys) -> None:
    lines = _lines(BTC)[:2000]
    (i,) = [k for k, ln in enumerate(lines) if b'{"lastUpdateId"' in ln[:40]]
    snap = orjson.loads(lines[i].split(b" ", 1)[1])
    snap["lastUpdateId"] = 1  # older than every diff: cannot be spliced (A1 step 5)
    lines[i] = lines[i].split(b" ", 1)[0] + b" " + orjson.dumps(snap) + b"\n"
    f = _write(tmp_path / "oldsnap.gz", lines)
    assert main(["check-data", f]) == 1
    err = capsys.readouterr().err
    assert "error: BTCUSDT: the book never went LIVE" in err


# ---------------------------------------------------------------------------------------- funding
def _with_mark_prices(lines: list[bytes], funding_in_s: float) -> list[bytes]:
    """Insert a markPriceUpdate (Binance's markPrice@1s stream) once a second of receive time, at the
    last bookTicker's mid, announcing the next funding `funding_in_s` ahead."""
    out: list[bytes] = []
    next_ts = 0
    mid = None
    for ln in lines:
        ts_s, body = ln.split(b" ", 1)
        ts = int(ts_s)
        if b"bookTicker" in body[:48]:
            d = orjson.loads(body)["data"]
            mid = (float(d["b"]) + float(d["a"])) / 2
        if mid is not None and ts >= next_ts:
            e_ms = ts // 1_000_000
            msg = {"stream": "btcusdt@markPrice@1s", "data": {
                "e": "markPriceUpdate", "E": e_ms, "s": "BTCUSDT", "p": f"{mid:.2f}", "i": f"{mid:.2f}",
                "P": f"{mid:.2f}", "r": "0.00010000", "T": e_ms + int(funding_in_s * 1000)}}
            out.append(b"%d %s\n" % (ts, orjson.dumps(msg)))
            next_ts = ts + 1_000_000_000
        out.append(ln)
    return out


@needs_data
@pytest.mark.slow
def test_backtest_receives_mark_price_and_funding_events(tmp_path: Path) -> None:
    from bot.cli.backtest import run_backtest
    from bot.settings import load_settings

    settings = load_settings()
    lines = _lines(BTC)
    base = asyncio.run(run_backtest([_write(tmp_path / "plain.gz", lines)], settings))["summary"]
    assert base["funding_events"] == 0 and base["intents"] > 0
    assert "FUNDING_WINDOW" not in base["denials"]
    # (a) funding always 10 s ahead: the signal layer's own rule (signals.no_entry_before_funding_s = 60)
    # vetoes every setup, which it can only do if the backtest hands it the markPrice stream
    assert settings.signals.no_entry_before_funding_s > 10
    ahead = asyncio.run(run_backtest([_write(tmp_path / "ahead.gz", _with_mark_prices(lines, 10.0))],
                                     settings))["summary"]
    assert ahead["funding_events"] > 300  # ~one a second over the ~6-minute session
    assert ahead["intents"] == 0 and ahead["trades"] == 0
    # (b) funding 10 s ago: no veto before funding, but the risk gate's window (risk.funding_window_s = 30,
    # both sides) refuses the entries: the risk view gets the next funding time too
    assert settings.risk.funding_window_s > 10
    past = asyncio.run(run_backtest([_write(tmp_path / "past.gz", _with_mark_prices(lines, -10.0))],
                                    settings))["summary"]
    assert past["intents"] > 0 and past["denials"].get("FUNDING_WINDOW", 0) >= 1
    assert sum(past["denials"].values()) == past["intents"] and past["trades"] == 0


# ---------------------------------------------------------------------------------------- exchange-sim source
@needs_data
@pytest.mark.parametrize("kind", ["single", "multi"])
def test_loopback_exchange_source_places_a_snapshot_before_the_first_diff(kind: str,
                                                                          snap_first: dict[str, str]) -> None:
    from bot.venues.binance_usdm.instruments import instrument_for
    from bot.venues.sim.exchange import SimExchange
    from bot.venues.sim.sources import replay_messages

    msgs = list(replay_messages([snap_first[kind]]))
    snaps = [(i, m) for i, m in enumerate(msgs) if m.kind == "snapshot"]
    want = ["BTCUSDT"] if kind == "single" else ["BTCUSDT", "ETHUSDT"]
    assert sorted(m.symbol for _, m in snaps) == want
    for i, m in snaps:  # played just before the diff of its own symbol that bridges it
        nxt = msgs[i + 1]
        assert nxt.kind == "depth" and nxt.symbol == m.symbol
        d, lid = orjson.loads(nxt.data), orjson.loads(m.data)["lastUpdateId"]
        assert d["U"] <= lid <= d["u"]
    insts = {"BTCUSDT": instrument_for("BTCUSDT", "61800.0", "0.001"),
             "ETHUSDT": instrument_for("ETHUSDT", "2681.62", "0.001")}
    ex = SimExchange({s: insts[s] for s in want}, keep_reports=False)
    for m in msgs:
        ex.on_message(m.raw, m.ts_ns)
    for s in want:
        sync = ex.markets[s].sync
        assert sync.health.is_live and sync.stats.gaps == 0 and sync.stats.applied > 6000


@needs_data
def test_simulated_exchange_fed_raw_lines_syncs_on_a_snapshot_before_the_first_diff(
        snap_first: dict[str, str]) -> None:
    from bot.venues.binance_usdm.instruments import KNOWN
    from bot.venues.sim.exchange import SimExchange

    # several markets: the old fallback ("the only market") could not name the bare snapshot's symbol
    ex = SimExchange(dict(KNOWN), keep_reports=False)
    assert len(ex.markets) > 1
    for rec in read_session([snap_first["single"]]):
        ex.on_message(rec.raw, rec.ts_recv_ns)
    sync = ex.markets["BTCUSDT"].sync
    assert sync.health.is_live and sync.stats.snapshots == 1 and sync.stats.gaps == 0
