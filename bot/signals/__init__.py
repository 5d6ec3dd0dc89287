"""Signal layer: order-flow features and scalping setups (pure, synchronous, incremental).

See `bot.signals.engine` for the façade the app and the backtest use.
"""
