"""The small services a client asks for besides Streams: Gossip and PersistentSubscriptions.List;
and the node's leadership, which a test may make it resign (EventStoreDB's NotLeader answer)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import grpc
from esdbclient.protos.Grpc import (
    gossip_pb2,
    gossip_pb2_grpc,
    persistent_pb2,
    persistent_pb2_grpc,
    shared_pb2,
)


class GossipService(gossip_pb2_grpc.GossipServicer):
    """Gossip.Read: one alive Leader at the advertised address."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.instance_id = str(uuid.uuid4())

    async def Read(
        self, request: shared_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> gossip_pb2.ClusterInfo:
        return gossip_pb2.ClusterInfo(
            members=[
                gossip_pb2.MemberInfo(
                    instance_id=shared_pb2.UUID(string=self.instance_id),
                    time_stamp=time.time_ns() // 100,
                    state=gossip_pb2.MemberInfo.VNodeState.Leader,
                    is_alive=True,
                    http_end_point=gossip_pb2.EndPoint(address=self.host, port=self.port),
                )
            ]
        )


class Leadership:
    """Whether this node takes a write now, or answers it as a leader that has just resigned.

    esdblite is one node, so it is always the leader, save for a test control: while the
    `resign_file` exists, a write call is answered as EventStoreDB answers a write that reaches
    a node during an election: NOT_FOUND "Leader info available" with the new leader's address
    in the trailing metadata (this node's advertised address: a single node is elected again).
    The file holds how many write calls to refuse (empty: one); the last one removes it.
    """

    def __init__(self, host: str, port: int, resign_file: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.resign_file = resign_file

    def resigned(self, context: grpc.aio.ServicerContext) -> bool:
        """True for a call that requires the leader while the resign file says so."""
        if self.resign_file is None:
            return False
        metadata = dict(context.invocation_metadata() or ())
        if metadata.get("requires-leader") != "true":
            return False
        try:
            text = self.resign_file.read_text().strip()
        except FileNotFoundError:
            return False
        left = int(text) if text.isdigit() else 1
        if left > 1:
            self.resign_file.write_text(f"{left - 1}\n")
        else:
            self.resign_file.unlink(missing_ok=True)
        return True

    async def abort_not_leader(self, context: grpc.aio.ServicerContext) -> None:
        """End the call with EventStoreDB's NotLeader answer, naming the leader."""
        context.set_trailing_metadata(
            (("leader-endpoint-host", self.host), ("leader-endpoint-port", str(self.port)))
        )
        await context.abort(grpc.StatusCode.NOT_FOUND, "Leader info available")


class PersistentSubscriptionsService(persistent_pb2_grpc.PersistentSubscriptionsServicer):
    """PersistentSubscriptions.List answers with no subscriptions; the rest is UNIMPLEMENTED."""

    async def List(
        self, request: persistent_pb2.ListReq, context: grpc.aio.ServicerContext
    ) -> persistent_pb2.ListResp:
        return persistent_pb2.ListResp()
