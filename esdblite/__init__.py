"""esdblite: a durable, single-node, EventStoreDB-compatible gRPC server."""
