"""Paper trading: a venue's real public market data, orders filled by the project's own matching engine.

- `gateway.PaperGateway`: the `ExecutionGateway` port over an in-process `SimExchange` (queue position,
  latency, fees, funding from the stream's mark price) whose clock is the wall clock. It holds no API
  key and imports no HTTP or websocket client: no order can leave the process, by construction.
- `venue.paper_venue(settings)`: the gateway and a feed factory for the app. The feed is the venue's own
  public feed (Binance USD-M or Bybit, any environment, mainnet included) given a copy of the venue
  settings with the keys and the private URL blanked; every parsed event it delivers goes to the
  matching engine first, then to the bot (one websocket, one parse, two books: the bot's DOM and the
  engine's matching book).
"""
