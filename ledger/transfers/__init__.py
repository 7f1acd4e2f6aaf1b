"""Transfers: the process that moves money between two accounts of one currency."""
