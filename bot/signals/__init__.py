"""Signal layer: order-flow features and scalping setups. Pure, synchronous, incremental.

No asyncio, no venue code: it reads the DOM (`bot.market.book.OrderBook`) and the trade tape and is fed
with explicit times, so live, paper, replay and backtest run the same code.

API (what the app and the backtest call)::

    from bot.signals import SignalEngine
    engine = SignalEngine(settings.signals, instruments)   # SignalsSection, {symbol: Instrument}

    # after every depth event the book sync APPLIED (BinanceBookSync/BybitBookSync), with its health:
    intents = engine.on_depth(symbol, book, sync.health.status, ev.ts_event_ns, now_ns)
    intents = engine.on_trade(trade, now_ns)       # bot.domain.events.Trade
    intents = engine.on_funding(info, now_ns)      # bot.domain.events.FundingInfo (always [])

    engine.features(symbol)   # -> SymbolFeatures (every feature object; .snapshot(now_ns) -> dict)
    engine.stats              # candidates / intents per setup, vetoes per gate

Each call returns a list of `bot.domain.types.EntryIntent` (usually empty): symbol, side 'long'|'short',
setup, ts_ns (= now_ns), price_ticks (the touch a taker hits), stop_ticks (structure, losing side),
targets (TakeProfitTier tiers), time_limit_s, features. Never a quantity: sizing belongs to risk.
Feature windows run on the exchange event time; no intent while the book is not LIVE, the spread is
wider than `max_spread_ticks`, or within `no_entry_before_funding_s` of funding (engine.py).

Modules: book_features (spread, mid, microprice, imbalance, CKS OFI), trade_flow (signed volume, CVD,
flow imbalance, rate, large trades), absorption (absorption, icebergs, queue depletion), liquidity
(walls, pulls, round numbers), bars (time/tick/volume bars, EMA, RSI, ATR), profile (volume profile),
context (funding, basis, BTC correlation/beta), features (per-symbol wiring), setups (the four built-ins as
strategy plug-ins), plugins (loading [signals.plugins.NAME], when each is called), view (the read-only
MarketView a plug-in gets; public through bot.strategy, docs/strategies.md), engine.
"""

from bot.signals.engine import SignalEngine
from bot.signals.features import SymbolFeatures

__all__ = ["SignalEngine", "SymbolFeatures"]
