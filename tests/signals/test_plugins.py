"""Strategy plug-ins: loading contract (one line, exit 2), the view, the same gates as a built-in, a
plug-in that raises is disabled and reported while the others go on."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.domain.types import CloseReason
from bot.errors import ConfigError
from bot.market.health import BookStatus
from bot.risk import MarketView as RiskMarket
from bot.risk import RiskManager
from bot.risk.reasons import Denial, DenyReason
from bot.settings import load_settings
from bot.settings.risk import RiskSection
from bot.settings.signals import SignalsSection
from bot.signals.engine import SignalEngine
from bot.strategy import Candidate, MarketView, PluginFailed
from tests.signals.helpers import INST, Feed, S

FILES = Path(__file__).resolve().parent / "plugin_files"
OFF = {"enabled": False}
BUILTINS_OFF = {"momentum": OFF, "breakout_fade": OFF, "absorption": OFF, "rsi_snapback": OFF}


def _engine(plugins: dict[str, dict], **kw: object) -> SignalEngine:
    cfg = SignalsSection(**{**BUILTINS_OFF, "plugins": plugins, **kw})  # type: ignore[arg-type]
    return SignalEngine(cfg, {INST.symbol: INST})


def _write(tmp_path: Path, body: str, name: str = "cfg.toml") -> Path:
    p = tmp_path / name
    p.write_text(body)
    return p


# ---------------------------------------------------------------- loading contract
@pytest.mark.parametrize(("table", "expect"), [
    ('path = "nowhere.py"\nobject = "X"', "signals.plugins.p.path = "),
    ('path = "{faulty}"\nobject = "Nope"', "no such class"),
    ('path = "{faulty}"\nobject = "NOT_A_CLASS"', "not a class"),
    ('path = "{faulty}"\nobject = "Picky"\nlevel = 1\ncolour = "red"', "Picky(colour, level) failed: TypeError"),
    ('path = "{faulty}"\nobject = "Picky"', "Picky(no keys) failed: TypeError"),
    ('path = "{faulty}"\nobject = "Picky"\nlevel = -1', "ValueError: level must be >= 0"),
    ('path = "broken.py"\nobject = "X"', "importing it failed: SyntaxError"),
    ('path = "{doc}"\nobject = "DocStrategy"\ncooldown_s = -5', "cooldown_s = -5"),
    ('path = "{faulty}"\nobject = "ReturnsGarbage"\n[signals.plugins.p2]\npath = "x.txt"\nobject = "A"',
     "must be a .py file"),
])
def test_loading_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str,
                                                 expect: str) -> None:
    (tmp_path / "broken.py").write_text("def broken(:\n    pass\n")
    body = "[signals.plugins.p]\n" + table.format(faulty=FILES / "faulty.py", doc=FILES / "doc_strategy.py") + "\n"
    cfg = _write(tmp_path, body)
    for cmd in (["check-config", "-c", str(cfg)], ["signals", "-c", str(cfg), str(tmp_path / "none.gz")],
                ["run", "-c", str(cfg), "--for", "1", "--no-view"]):
        assert main(cmd) == 2, cmd
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and expect in err, (cmd, err)
        assert "Traceback" not in err


def test_bad_names_and_bar_intervals_are_config_errors(tmp_path: Path) -> None:
    doc = FILES / "doc_strategy.py"
    with pytest.raises(ConfigError, match="built-in setup"):
        load_settings(str(_write(tmp_path, f'[signals.plugins.momentum]\npath = "{doc}"\nobject = "DocStrategy"\n')))
    with pytest.raises(ConfigError, match="path"):  # path and object are required
        load_settings(str(_write(tmp_path, '[signals.plugins.x]\nobject = "DocStrategy"\n')))
    with pytest.raises(ConfigError, match="unknown key"):  # the rest of [signals] still forbids unknown keys
        load_settings(str(_write(tmp_path, "[signals]\nplugin = 1\n")))
    s = load_settings(str(_write(tmp_path, f'[signals.plugins.x]\npath = "{doc}"\nobject = "DocStrategy"\n')))
    cls = type("Bar7", (), {"bar_s": 7.0, "propose": lambda self, v: None})
    from bot.signals.plugins import make_plugin

    with pytest.raises(ConfigError, match=r"bar_s = 7.0: 7000 ms is not in signals.bar_intervals_ms"):
        make_plugin("x", cls(), s.signals.plugin_defaults, s.signals.bar_intervals_ms)
    bad_trigger = type("T", (), {"trigger": "tick", "propose": lambda self, v: None})
    with pytest.raises(ConfigError, match="trigger = 'tick'"):
        make_plugin("x", bad_trigger(), s.signals.plugin_defaults, s.signals.bar_intervals_ms)


def test_path_is_relative_to_the_config_file_and_check_config_lists_the_plugin(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "strategies").mkdir()
    (sub / "strategies" / "mine.py").write_text((FILES / "doc_strategy.py").read_text())
    cfg = _write(sub, '[signals.plugins.mine]\npath = "strategies/mine.py"\nobject = "DocStrategy"\n'
                      'window_s = 3.0\nstop_bps = 5\n')
    s = load_settings(str(cfg))
    assert s.signals.plugins["mine"].path == str(sub / "strategies" / "mine.py")
    assert s.signals.plugins["mine"].kwargs() == {"window_s": 3.0, "stop_bps": 5}
    assert main(["check-config", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "strategy plug-ins (loaded):" in out
    assert "mine: " in out and "strategies/mine.py:DocStrategy" in out and "every applied depth event" in out
    assert "cooldown 5 s" in out  # the instance's own cooldown_s attribute beats [signals.plugin_defaults]
    eng = SignalEngine(s.signals, {})
    p = eng.plugins[-1]
    assert (p.name, p.obj.window_s, p.obj.stop_bps, p.cfg.cooldown_s) == ("mine", 3.0, 5, 5.0)
    assert eng.time_limits_s()["mine"] == s.signals.plugin_defaults.time_limit_s


# ---------------------------------------------------------------- the view
class Recorder:
    """Reads the view on each call; proposes whatever `want` holds."""

    def __init__(self) -> None:
        self.views: list[dict] = []
        self.want: Candidate | None = None

    def propose(self, view: MarketView) -> Candidate | None:
        bars = view.bars(1)
        self.views.append({"symbol": view.symbol, "now": view.now_ns, "bid": view.best_bid, "ask": view.best_ask,
                           "mid": view.mid, "tick": view.tick_size, "ofi1": view.ofi(1.0), "ofi3": view.ofi(3.0),
                           "imb": view.imbalance(10), "imb2": view.imbalance(2), "flow1": view.trade_imbalance(1.0),
                           "flow5": view.trade_imbalance(5.0), "bars": [(b.open, b.high, b.low, b.close, b.volume,
                                                                          b.t_end_ns) for b in bars[-3:]],
                           "nbars": len(bars), "ema5": view.ema(1, 5), "ema3": view.ema(1, 3), "rsi": view.rsi(1, 14),
                           "rsi3": view.rsi(1, 3), "atr": view.atr(1, 14), "atr2": view.atr(1, 2),
                           "profile": view.profile(), "funding": view.funding_rate, "nf": view.next_funding_ns,
                           "feat": view.features})
        return self.want


class TradeRecorder(Recorder):
    trigger = "trade"


def _with(obj: object, **kw: object) -> SignalEngine:
    """An engine whose only strategy is `obj` (loaded through the same make_plugin as a file's)."""
    from bot.signals.plugins import make_plugin

    eng = _engine({}, **kw)
    eng.plugins = [make_plugin("rec", obj, eng.cfg.plugin_defaults, eng.cfg.bar_intervals_ms)]
    eng._index()
    return eng


def test_view_reads_prices_in_quote_units_and_matches_the_features() -> None:
    rec = Recorder()
    eng = _with(rec)
    feed = Feed(eng)  # touch 10,000.0 x 10 / 10,000.1 x 10
    v = rec.views[-1]
    assert (v["symbol"], v["bid"], v["ask"], v["tick"]) == ("TESTUSDT", pytest.approx(10_000.0),
                                                             pytest.approx(10_000.1), 0.1)
    assert v["mid"] == pytest.approx(10_000.05) and v["profile"] is None and v["funding"] is None
    assert v["nbars"] == 0 and v["ema5"] is None and v["rsi"] is None
    # prints over 25 s: 1 s bars with a rising close every second; the book moves up too
    price = 100_000
    for sec in range(25):
        price += 3 if sec % 4 else -2
        feed.trade(sec * S + 100_000_000, price, 2, buy=sec % 3 != 0)
        feed.set_touch(price, 12, price + 1, 4 + sec % 5, ts=sec * S + 500_000_000)
    v = rec.views[-1]
    f = v["feat"]
    assert v["now"] == 24 * S + 500_000_000  # exchange event time of the triggering event
    s1 = f.bars[1000].series
    assert v["nbars"] == len(s1.bars) >= 20
    last = s1.bars[-1]
    assert v["bars"][-1] == (pytest.approx(last.open * 0.1), pytest.approx(last.high * 0.1),
                             pytest.approx(last.low * 0.1), pytest.approx(last.close * 0.1), float(last.volume),
                             last.t_start_ns + S)
    # configured periods read through, others computed from the same bars
    assert v["ema5"] == pytest.approx(s1.ema_fast.value * 0.1)
    assert v["rsi"] == s1.rsi.value and v["atr"] == pytest.approx(s1.atr.value * 0.1)
    closes = [b.close for b in s1.bars]
    e = closes[0]
    for c in closes[1:]:
        e += 0.5 * (c - e)  # alpha = 2 / (3 + 1)
    assert v["ema3"] == pytest.approx(e * 0.1)
    assert 0 <= v["rsi3"] <= 100 and v["atr2"] > 0
    assert v["ofi1"] == pytest.approx(f.book.ofi(0) * 1.0)  # step 1: lots = units
    assert v["imb"] == pytest.approx(f.book.imbalance)
    bids, asks = feed.book.depth_lots(2)
    assert v["imb2"] == pytest.approx((bids - asks) / (bids + asks))
    assert v["flow1"] == pytest.approx(f.flow.window(0).imbalance)
    assert -1 <= v["flow5"] <= 1
    prof = v["profile"]
    lv = f.profile.levels()
    assert prof == (pytest.approx(lv.poc_ticks * 0.1), pytest.approx(lv.vah_ticks * 0.1),
                    pytest.approx(lv.val_ticks * 0.1))


def test_extra_windows_fill_after_their_first_call() -> None:
    rec = Recorder()
    eng = _with(rec)
    feed = Feed(eng)
    # the 3 s OFI window is not configured: it starts at the first call and then sums every e_n
    base = rec.views[-1]["ofi3"]
    assert base == 0.0
    total = 0
    for k in range(1, 6):
        before = eng.features(INST.symbol).book.ofi_cum
        feed.set_touch(100_000 + k, 10 + k, 100_001 + k, 10, ts=k * 400_000_000)
        total += eng.features(INST.symbol).book.ofi_cum - before
    assert rec.views[-1]["ofi3"] == pytest.approx(total)
    feed.trade(3 * S, 100_010, 5, buy=True)
    feed.depth(3 * S + 1)
    feed.trade(4 * S, 100_010, 1, buy=False)
    feed.depth(4 * S + 1)
    assert rec.views[-1]["flow5"] == pytest.approx((5 - 1) / 6)


# ---------------------------------------------------------------- same gates as a built-in
def test_plugin_intents_meet_the_same_engine_gates() -> None:
    rec = Recorder()
    eng = _with(rec, max_spread_ticks=5)
    feed = Feed(eng)
    rec.want = Candidate(side="long", stop=9_997.0, target=10_003.0, tag="t", features={"x": 1.5})
    feed.depth(1 * S)
    assert len(feed.intents) == 1
    it = feed.intents[0]
    assert (it.setup, it.side, it.tag, it.price_ticks) == ("rec", "long", "t", 100_001)
    assert it.stop_ticks == 99_970 - 5  # the level 9,997.0 minus the 0.5 bps buffer (5 ticks)
    # R = 36 ticks: tiers 1 R / 2 R, the structural target (29 ticks >= 0.5 R) replaces the first
    assert [t.price_ticks for t in it.targets] == [100_030, 100_001 + 72]
    assert it.features["x"] == 1.5 and "spread_ticks" in it.features
    # cooldown (plugin_defaults.cooldown_s = 45 s), then spread, funding, not LIVE
    feed.depth(2 * S)
    assert eng.stats.vetoes["cooldown"] == 1 and len(feed.intents) == 1
    feed.depth(50 * S)
    assert len(feed.intents) == 2
    feed.set_touch(100_000, 10, 100_010, 10, ts=100 * S)
    assert eng.stats.vetoes["spread"] == 1
    from bot.domain.events import FundingInfo

    eng.on_funding(FundingInfo(INST.symbol, 10_000.5, 10_000.0, 0.0001, 230 * S, 0, 0), 0)
    feed.set_touch(100_000, 10, 100_001, 10, ts=200 * S)
    assert eng.stats.vetoes["funding"] == 1 and len(feed.intents) == 2
    # a stop farther than max_stop_bps (25 bps = 250 ticks) is dropped like a built-in's
    rec.want = Candidate(side="short", stop=10_100.0)
    feed.set_touch(100_000, 10, 100_001, 10, ts=400 * S)
    assert eng.stats.vetoes["stop_too_wide"] == 1
    # a trade-triggered plug-in on a book that is not LIVE: vetoed "not_live"
    rec2 = TradeRecorder()
    rec2.want = Candidate(side="short", stop=10_001.0)
    eng2 = _with(rec2)
    feed2 = Feed(eng2, status=BookStatus.SYNCING)
    feed2.trade(S, 100_000, 1, buy=False)
    assert eng2.stats.vetoes["not_live"] == 1 and feed2.intents == []
    assert eng.stats.candidates["rec"] >= 5 and eng.stats.intents["rec"] == 2


def test_plugin_and_builtin_intents_meet_the_same_risk_gate() -> None:
    rec = Recorder()
    rec.want = Candidate(side="long", stop=9_980.0)
    feed = Feed(_with(rec))
    plug = feed.intents[-1]
    from dataclasses import replace

    builtin = replace(plug, setup="momentum")
    rm = RiskManager(RiskSection(), 100_000.0, 0)
    market = RiskMarket(book_live=True, spread_bps=0.1)
    kw = {"equity": 100_000.0, "free_margin": 100_000.0, "now_ns": S}

    def reason(it: object, m: RiskMarket = market) -> str:
        r = rm.assess(it, INST, m, **kw)  # type: ignore[arg-type]
        return r.reason.value if isinstance(r, Denial) else "sized"

    # the same answer for the same intent whichever kind of setup proposed it
    assert reason(plug) == reason(builtin)  # (an unknown symbol's default bracket refuses this size)
    not_live = RiskMarket(book_live=False, spread_bps=0.1)
    assert reason(plug, not_live) == reason(builtin, not_live) == DenyReason.BOOK_NOT_LIVE.value
    wide = RiskMarket(book_live=True, spread_bps=50.0)
    assert reason(plug, wide) == reason(builtin, wide) == DenyReason.SPREAD_TOO_WIDE.value
    rm.gate.on_trade_closed(INST.symbol, "rec", -5.0, CloseReason.STOP_LOSS, S)  # the plug-in's stop-out
    assert reason(plug) == DenyReason.SETUP_COOLDOWN.value
    assert reason(builtin) != DenyReason.SETUP_COOLDOWN.value  # keyed by setup name, like a built-in's


# ---------------------------------------------------------------- errors while running
@pytest.fixture
def json_log() -> Iterator[None]:
    """The test logs as JSON to its captured stderr (configured in its body, where capsys is live);
    afterwards logs go back to the process's own stderr (a later test must not log into a closed capture)."""
    yield
    from bot.logging import configure_logging

    configure_logging("WARNING", "json", stream=sys.__stderr__)


def test_a_plugin_that_raises_is_disabled_reported_and_the_others_go_on(capsys: pytest.CaptureFixture[str],
                                                                        json_log: None) -> None:
    import json

    from bot.logging import configure_logging

    configure_logging("INFO", "json")  # sys.stderr is this test's capture here
    faulty, doc = FILES / "faulty.py", FILES / "doc_strategy.py"
    eng = _engine({"boom": {"path": str(faulty), "object": "RaiseOnCall", "n": 3},
                   "garbage": {"path": str(faulty), "object": "ReturnsGarbage"},
                   "doc": {"path": str(doc), "object": "DocStrategy", "min_imbalance": 0.2, "cooldown_s": 0.0}},
                  absorption={"min_absorbed_quote": 100_000.0, "min_hold_ms": 1000})
    got: list[PluginFailed] = []
    eng.on_failure = got.append
    feed = Feed(eng)
    boom = next(p for p in eng.plugins if p.name == "boom").obj
    for k in range(1, 40):
        feed.trade(k * 100_000_000, 100_000 + k % 3, 2, buy=True)
        feed.set_touch(100_000, 10, 100_001, 10, ts=k * 100_000_000 + 50_000_000)
    names = [e.name for e in got]
    assert sorted(names) == ["boom", "garbage"]  # each reported once, then never called again
    ev = next(e for e in got if e.name == "boom")
    assert ev.error == "RuntimeError: boom on call 3" and ev.symbol == "TESTUSDT"
    assert "strategy 'boom' disabled for this run" in ev.message
    assert boom.calls == 3
    assert "TypeError" in next(e for e in got if e.name == "garbage").error
    assert [p.name for p in eng.plugins] == ["absorption", "doc"]
    assert eng.stats.as_dict()["disabled"] == {e.name: e.error for e in got}
    assert any(i.setup == "doc" for i in feed.intents)  # the healthy plug-in still trades
    doc_times = [i.ts_ns for i in feed.intents if i.setup == "doc"]
    assert max(doc_times) > ev.ts_ns  # ... after the failure
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "strategy_disabled" in line]
    assert [(r["strategy"], r["level"], r["error"]) for r in logged if r["strategy"] == "boom"] == [
        ("boom", "error", "RuntimeError: boom on call 3")]
    assert sorted(r["strategy"] for r in logged) == ["boom", "garbage"]


def test_plugin_defaults_disabled_loads_but_never_calls() -> None:
    eng = _engine({"doc": {"path": str(FILES / "doc_strategy.py"), "object": "DocStrategy"}},
                  plugin_defaults={"enabled": False})
    assert [p.name for p in eng.user_plugins] == ["doc"] and eng.plugins == []
    feed = Feed(eng)
    feed.trade(S, 100_000, 5, buy=True)
    assert eng.user_plugins[0].obj.calls == 0 and feed.intents == []
