"""Benchmarks of the ledger and esdblite, measured on this machine."""
