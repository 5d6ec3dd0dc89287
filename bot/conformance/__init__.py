"""`scalper conformance`: a scripted, minimum-size order lifecycle against the configured venue that checks
the venue still answers the way the bot's own venue code relies on (docs/conformance.md)."""
