"""The exchange simulator: Binance USD-M semantics with no network (docs/exchange-sim.md).

Pure, synchronous core (no asyncio):
- `exchange.SimExchange`: markets (`matching.SymbolMarket`: the venue's L2 book rebuilt by the bot's own
  `BinanceBookSync` + `OrderBook`, our resting orders with queue positions), the account
  (`account.Account`: one-way USD-M positions, fees, funding, isolated/cross margin, liquidation with
  `brackets`), conditional orders (`triggers.TriggerBook`) and requests in flight (`latency.Latency`).
  Drive it with `on_message(raw, ts_ns)` / `on_event(ev, ts_ns)` / `advance_to(ts_ns)`; act with `place`,
  `cancel`, `cancel_algo`, ... (immediate) or `send("place", req, now_ns=...)` (through the order
  latency); read `drain()` (OrderReport / AlgoReport / AccountReport / RequestResult) or add a listener.
- `generator.MarketGenerator`: the seeded market of the embedded default, as raw Binance messages.
- `sources`: recorded sessions as messages; market-data latency.

Shells:
- `gateway.SimGateway`: the `ExecutionGateway` port in process (paper trading, backtests).
- `server.SimServer` (+ `rest`, `wire`, `auth`, `faults`): `scalper exchange-sim`, the loopback exchange.
"""
