"""The gRPC server: its options and the services registered on it (Streams, Gossip, ...)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from esdbclient.protos.Grpc import gossip_pb2_grpc, persistent_pb2_grpc, streams_pb2_grpc

from esdblite.cluster import GossipService, Leadership, PersistentSubscriptionsService
from esdblite.reads import Notifier
from esdblite.store import Store
from esdblite.streams import StreamsService

__all__ = [
    "GossipService",
    "PersistentSubscriptionsService",
    "StreamsService",
    "add_services",
    "new_server",
]

MAX_MESSAGE_BYTES = 32 * 1024 * 1024


def new_server(interceptors: Sequence[grpc.aio.ServerInterceptor] = ()) -> grpc.aio.Server:
    """A grpc.aio server that refuses port sharing and carries messages up to 32 MiB."""
    return grpc.aio.server(
        interceptors=list(interceptors),
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )


def add_services(
    server: grpc.aio.Server,
    store: Store,
    notifier: Notifier,
    gossip: GossipService,
    max_append_size: int,
    leadership: Leadership | None = None,
) -> None:
    """Register every service on a grpc.aio server."""
    # The generated *_pb2_grpc modules of esdbclient carry no annotations.
    streams_pb2_grpc.add_StreamsServicer_to_server(  # type: ignore[no-untyped-call]
        StreamsService(store, notifier, max_append_size, leadership), server
    )
    gossip_pb2_grpc.add_GossipServicer_to_server(gossip, server)  # type: ignore[no-untyped-call]
    persistent_pb2_grpc.add_PersistentSubscriptionsServicer_to_server(  # type: ignore[no-untyped-call]
        PersistentSubscriptionsService(), server
    )
