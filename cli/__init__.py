"""The ledger command line: the composition root that wires the write and read sides."""
