"""Research at scale (issue 14): parameter sweeps over the bot's own backtest, validation that resists
overfitting (walk-forward, purged CV, deflated Sharpe ratio, PBO), cost and latency sensitivity.

Every number comes from `bot.cli.backtest.run_backtest`, the very backtest `scalper backtest` runs, on a
config loaded by `bot.settings.load_settings` with the trial's keys merged on top (one validation path).
Modules: space (the space file), objective (one trial = one backtest), workers (local pool / Ray),
sweep (Optuna ask/tell), stats (DSR, PBO), folds (walk-forward, CPCV), validate, export, progress.
"""
