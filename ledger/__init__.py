"""The write side of the ledger: the Account decider, money and the command handler."""
