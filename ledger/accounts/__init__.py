"""The Account aggregate: its commands, events and decider."""
