"""Malformed gRPC requests: random fields and bodies that are not messages, sent to every method
of esdblite, get an answer (a response or a deliberate status) and leave the server running.

Requests are built from the generated messages (esdbclient.protos.Grpc) with random fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from hypothesis import given, note
from hypothesis import strategies as st

from tests.hostile.protocol import (
    FUZZ,
    MAX_RESPONSES,
    SERVICES,
    TEXT,
    Target,
    assert_answered,
    call,
)

_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: TEXT,
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=32) | TEXT.map(lambda s: s.encode()),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_INT32: st.sampled_from([0, -1, 2**31 - 1, -(2**31)]) | st.integers(-9, 9),
    FieldDescriptor.TYPE_SINT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: st.sampled_from([0, 1, 2**32 - 1]) | st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: st.sampled_from([0, -1, 2**63 - 1, -(2**63)])
    | st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: st.sampled_from([0, 1, 2, 2**63, 2**64 - 1])
    | st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_SFIXED32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True, allow_infinity=True),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32, allow_nan=True, allow_infinity=True),
}


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor, depth: int = 0) -> Message:
    """A message of this type with a random subset of its fields set to random values."""
    message = message_factory.GetMessageClass(descriptor)()
    if depth > 3:
        return message
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        target = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key = field.message_type.fields_by_name["key"]
            value = field.message_type.fields_by_name["value"]
            for k, v in draw(
                st.dictionaries(_SCALARS[key.type], _value(value, depth), max_size=3)
            ).items():
                if value.message_type is not None:
                    target[k].CopyFrom(v)
                else:
                    target[k] = v
        elif field.label == FieldDescriptor.LABEL_REPEATED:
            for v in draw(st.lists(_value(field, depth), max_size=3)):
                if field.message_type is not None:
                    target.add().CopyFrom(v)
                else:
                    target.append(v)
        elif field.message_type is not None:
            target.CopyFrom(draw(messages(field.message_type, depth + 1)))
        elif field.enum_type is not None:
            setattr(message, field.name, draw(st.integers(0, len(field.enum_type.values) + 2)))
        else:
            setattr(message, field.name, draw(_SCALARS[field.type]))
    return message


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        return messages(field.message_type, depth + 1)
    if field.enum_type is not None:
        return st.integers(0, len(field.enum_type.values) + 2)
    return _SCALARS[field.type]


def _is_subscription(method: MethodDescriptor, requests: Sequence[Message | bytes]) -> bool:
    if method.name != "Read" or method.containing_service.name != "Streams":
        return method.server_streaming and method.client_streaming
    first = requests[0]
    return isinstance(first, bytes) or first.options.WhichOneof("count_option") == "subscription"


@FUZZ
@given(data=st.data())
def test_requests_with_random_fields_to_every_method_are_answered(
    target: Target, data: st.DataObject
) -> None:
    service, method = data.draw(st.sampled_from(SERVICES), label="method")
    note(f"method: {service.full_name}/{method.name}")
    count = data.draw(st.integers(1, 3)) if method.client_streaming else 1
    requests = [data.draw(messages(method.input_type), label="request") for _ in range(count)]
    enough = 1 if _is_subscription(method, requests) else MAX_RESPONSES
    answer = call(target.channel, service.full_name, method, requests, enough=enough)
    assert_answered(answer)
    assert target.server.proc is not None and target.server.proc.poll() is None


@FUZZ
@given(data=st.data())
def test_bodies_that_are_not_messages_are_answered(target: Target, data: st.DataObject) -> None:
    service, method = data.draw(st.sampled_from(SERVICES), label="method")
    note(f"method: {service.full_name}/{method.name}")
    body = data.draw(st.binary(min_size=1, max_size=256), label="body")
    try:
        message_factory.GetMessageClass(method.input_type).FromString(body)
        undecodable = False
    except DecodeError:
        undecodable = True
    answer = call(target.channel, service.full_name, method, [body], enough=1)
    assert_answered(answer, undecodable=undecodable)
    assert target.server.proc is not None and target.server.proc.poll() is None
