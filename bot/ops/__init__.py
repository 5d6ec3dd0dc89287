"""Operator surface: runtime state, health/metrics/control HTTP endpoint, alerts.

`bot.ops.state` is pure (the app writes it, the endpoints read it); `bot.ops.server` and
`bot.ops.alerts` are the async shell around it.
"""
