"""The small services a client asks for besides Streams: Gossip and PersistentSubscriptions.List."""

from __future__ import annotations

import time
import uuid

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


class PersistentSubscriptionsService(persistent_pb2_grpc.PersistentSubscriptionsServicer):
    """PersistentSubscriptions.List answers with no subscriptions; the rest is UNIMPLEMENTED."""

    async def List(
        self, request: persistent_pb2.ListReq, context: grpc.aio.ServicerContext
    ) -> persistent_pb2.ListResp:
        return persistent_pb2.ListResp()
