"""Secure mode's authentication: users with passwords, checked on every call as EventStoreDB does.

A call with an `authorization: Basic …` header that does not name a user with that password is
refused before it reaches a service (UNAUTHENTICATED, "Unauthenticated", as EventStoreDB's
authentication middleware answers); a call without the header is anonymous, and an anonymous
caller may only read gossip (EventStoreDB's default policy) — anything else is refused with
PERMISSION_DENIED "Access Denied" and the `exception: access-denied` trailer."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc

ADMIN = "admin"
# EventStoreDB's policy lets anonymous callers read the cluster's gossip (for discovery).
ANONYMOUS_METHODS = frozenset({"/event_store.client.gossip.Gossip/Read"})


def authenticate(users: Mapping[str, str], header: str | None) -> str | None:
    """The user a Basic authorization header names, if its password is right; "" if anonymous."""
    if header is None:
        return ""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        name, sep, password = (
            base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        return None
    expected = users.get(name)
    if not sep or expected is None:
        return None
    return name if hmac.compare_digest(password.encode(), expected.encode()) else None


def _refusal(
    handler: grpc.RpcMethodHandler, code: grpc.StatusCode, details: str, trailer: tuple[str, str]
) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that refuses the call."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, details, trailing_metadata=(trailer,) if trailer[0] else ())

    async def refuse_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await refuse(request, context)
        yield  # pragma: no cover - abort raises; this makes the function a generator

    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse_stream, des, ser)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, des, ser)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, des, ser)
    return grpc.unary_unary_rpc_method_handler(refuse, des, ser)


class BasicAuthentication(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Checks each call's credentials against the node's users before its service runs."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = dict(users)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        header = metadata.get("authorization")
        user = authenticate(self.users, header if isinstance(header, str) else None)
        if user is None:
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED, "Unauthenticated", ("", ""))
        if user == "" and handler_call_details.method not in ANONYMOUS_METHODS:
            return _refusal(
                handler,
                grpc.StatusCode.PERMISSION_DENIED,
                "Access Denied",
                ("exception", "access-denied"),
            )
        return handler
