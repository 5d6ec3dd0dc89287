"""The SQLite journal (WAL, one transaction per state change). Schema: see bot.journal.store."""

from bot.journal.store import SCHEMA, TRADE_FIELDS, Journal

__all__ = ["SCHEMA", "TRADE_FIELDS", "Journal"]
