"""`scalper run` on the sim venue with twenty symbols: instruments derived for the ones with no embedded rules,
every book syncs and feeds the signals, and the bot trades (one process; it stops once every book fed its
features and an entry's stop was confirmed, ~10-15 s, 25 s at most)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from bot.app import App
from bot.logging import configure_logging
from bot.settings import load_settings
from bot.venues.sim.symbols import parse_symbols

ROOT = Path(__file__).resolve().parent.parent


def test_the_sim_venue_runs_and_trades_twenty_symbols(tmp_path: Path) -> None:
    configure_logging("WARNING", "json")
    syms = parse_symbols("20")
    # reconcile_interval_ms: 20 symbols cost 45 weight per pass; the 10 % REST budget rule asks >= 11.25 s
    settings = load_settings(str(ROOT / "config" / "default.toml"), overrides={
        "app": {"state_dir": str(tmp_path)}, "ops": {"port": 0},
        "venue": {"symbols": list(syms), "reconcile_interval_ms": 12_000}})
    app = App(settings, view=False, run_for_s=25)

    def seen_enough() -> bool:  # every book fed its features, and an entry's stop was confirmed
        if app.pipeline is None or not all((f := app.pipeline.signals.features(s)) is not None and
                                           f.last_depth_ns > 0 and f.book.valid for s in syms):
            return False
        db = sqlite3.connect(f"file:{tmp_path / 'journal.sqlite'}?mode=ro", uri=True, timeout=2)
        try:
            return bool(db.execute("select 1 from trades where entry_ts_ns is not null and stop_confirm_ms is not "
                                   "null").fetchone())
        except sqlite3.OperationalError:
            return False
        finally:
            db.close()

    async def main() -> int:  # ends when it has seen what the assertions need; 25 s stays the upper bound
        runner = asyncio.create_task(app.run())
        while not runner.done():
            await asyncio.sleep(0.25)
            if seen_enough():
                app.stop.set()
                break
        return await asyncio.wait_for(runner, 60)

    assert asyncio.run(main()) == 0
    assert app.pipeline is not None
    for s in syms:  # every symbol's book went live and fed its features
        f = app.pipeline.signals.features(s)
        assert f is not None and f.last_depth_ns > 0 and f.book.valid, s
        assert f.instrument.symbol == s
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    rows = list(db.execute("select symbol, entry_ts_ns, exit_reason, stop_confirm_ms from trades"))
    entered = [r for r in rows if r[1] is not None]
    assert entered, f"no entry in 25 s over 20 symbols: {app.pipeline.intents} intents, {app.state.denials}"
    for sym, _, exit_reason, stop_ms in entered:  # protected, and flattened at the exit
        assert sym in syms and stop_ms is not None and exit_reason, (sym, stop_ms, exit_reason)
    assert not app.engine.trades  # type: ignore[union-attr]
