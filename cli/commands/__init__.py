"""The command groups of `ledger`, one module each, joined in cli.main."""
