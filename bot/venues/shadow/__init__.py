"""Shadow mode (`app.mode = "shadow"`, docs/shadow.md): one venue's public market data drive the bot, its
orders go to a demo/testnet account, and the project's own matching engine paper-fills the same orders on
the same stream alongside.

- `venue.shadow_venue(settings, sink, open_trades)`: the demo account's gateway (real venue code, keys) and
  a feed factory for the app: the data venue's public feed ([shadow] keys), each parsed event to the paper
  engine first, then to the bot (one websocket, one parse), plus the mirror's housekeeping.
- `mirror.ShadowMirror`: wraps the demo gateway's order entry so each order also goes to the paper account;
  paper fills go to their own journal table (bot/journal/shadow.py), never to the engine.
The divergence report (`scalper report --shadow`) is bot/journal/shadow_report.py.
"""
