"""Golden rules over the v1 descriptors: what the contract promises its
integrators, checked on every message of every govex file."""

from __future__ import annotations

import re
from collections.abc import Iterator

from google.api import field_behavior_pb2, resource_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor

from govex.execution.v1 import execution_pb2
from govex.execution.v1 import execution_service_pb2 as exe
from govex.governance.v1 import governance_service_pb2 as gov
from govex_server.api.reflection import protoset_bytes
from govex_server.domain import list_filters

FILES: list[FileDescriptor] = [
    exe.DESCRIPTOR,
    gov.DESCRIPTOR,
    *exe.DESCRIPTOR.dependencies,
    *gov.DESCRIPTOR.dependencies,
]
AMOUNT_WORDS = ("quantity", "price", "notional", "fee", "balance", "value", "amount")
RESOURCE_SINGULARS = ("plan", "exchange", "execution", "freeze", "order", "signal_set")
B = field_behavior_pb2.FieldBehavior


def messages() -> Iterator[Descriptor]:
    seen: set[str] = set()
    for file in FILES:
        if not file.package.startswith("govex."):
            continue
        for message in file.message_types_by_name.values():
            if message.full_name not in seen:
                seen.add(message.full_name)
                yield message


def behaviors(field: FieldDescriptor) -> set[int]:
    return set(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])


def is_resource(message: Descriptor) -> bool:
    return message.GetOptions().HasExtension(resource_pb2.resource)


def reference(field: FieldDescriptor) -> resource_pb2.ResourceReference | None:
    options = field.GetOptions()
    if not options.HasExtension(resource_pb2.resource_reference):
        return None
    ref: resource_pb2.ResourceReference = options.Extensions[resource_pb2.resource_reference]
    return ref


def test_every_amount_is_a_decimal() -> None:
    checked = []
    for message in messages():
        for field in message.fields:
            if any(word in field.name for word in AMOUNT_WORDS):
                where = f"{message.name}.{field.name}"
                assert field.message_type is not None, f"{where} is a number or a string"
                if field.message_type.full_name.startswith("govex."):
                    continue  # a message of amounts (Balance), itself walked
                checked.append(where)
                assert field.message_type.full_name == "google.type.Decimal", (
                    f"{where} is {field.message_type.full_name}"
                )
    # The walk really saw the money (a guard against a walk that sees nothing).
    for name in ("Order.quantity", "Order.fee", "Market.min_notional", "Execution.portfolio_value"):
        assert name in checked, name
    assert len(checked) >= 15


def test_resource_names_are_identifiers_and_times_output_only() -> None:
    resources = [m for m in messages() if is_resource(m)]
    assert {m.name for m in resources} >= {
        "Plan",
        "Freeze",
        "Execution",
        "Order",
        "Exchange",
        "SignalSet",
    }
    for message in resources:
        assert B.IDENTIFIER in behaviors(message.fields_by_name["name"]), message.name
        for field in message.fields:
            if field.name.endswith("_time"):
                assert B.OUTPUT_ONLY in behaviors(field), f"{message.name}.{field.name}"


def test_every_field_holding_a_resource_name_has_a_reference() -> None:
    checked = 0
    for message in messages():
        for field in message.fields:
            if field.type != FieldDescriptor.TYPE_STRING:
                continue
            if is_resource(message) and field.name == "name":
                continue  # the resource's own name: IDENTIFIER
            holds_name = field.name in ("name", "parent", "resource") or field.name.endswith(
                RESOURCE_SINGULARS
            )
            if holds_name:
                checked += 1
                ref = reference(field)
                assert ref is not None and (ref.type or ref.child_type), (
                    f"{message.name}.{field.name} has no resource_reference"
                )
    assert checked >= 25


def test_every_list_filters_and_pages() -> None:
    lists = []
    for file in (exe.DESCRIPTOR, gov.DESCRIPTOR):
        for service in file.services_by_name.values():
            for method in service.methods:
                if method.name.startswith("List"):
                    lists.append(method.name)
                    fields = method.input_type.fields_by_name
                    for name in ("filter", "page_size", "page_token"):
                        assert name in fields, f"{method.name} has no {name}"
                    assert "next_page_token" in method.output_type.fields_by_name, method.name
    assert sorted(lists) == [
        "ListAuditRecords",
        "ListExchanges",
        "ListExecutions",
        "ListFreezes",
        "ListOrders",
        "ListPlans",
        "ListSignals",
    ]


def _type_name(field: FieldDescriptor) -> str:
    kind = field.message_type or field.enum_type
    assert kind is not None, f"{field.full_name} is a scalar"
    return str(kind.full_name)


def test_enums_not_strings_and_counts_as_messages() -> None:
    fields = execution_pb2.Order.DESCRIPTOR.fields_by_name
    assert _type_name(fields["type"]) == "govex.execution.v1.OrderType"
    counts = execution_pb2.Execution.DESCRIPTOR.fields_by_name["order_counts"]
    assert _type_name(counts) == "govex.execution.v1.OrderStateCount"
    assert counts.message_type is not None and not counts.message_type.GetOptions().map_entry


def test_update_plan_takes_the_plan_and_a_mask() -> None:
    fields = gov.UpdatePlanRequest.DESCRIPTOR.fields_by_name
    assert _type_name(fields["plan"]) == "govex.governance.v1.Plan"
    assert _type_name(fields["update_mask"]) == "google.protobuf.FieldMask"


def _shape(message: Descriptor) -> list[tuple[object, ...]]:
    proto = descriptor_pb2.DescriptorProto()
    message.CopyToProto(proto)
    return [
        (f.number, f.name, f.type, f.label, f.type_name, f.options.SerializeToString())
        for f in proto.field
    ]


def test_both_execute_plans_have_identical_fields() -> None:
    # One operation behind two services (lint forbids sharing one request type).
    assert _shape(gov.ExecutePlanRequest.DESCRIPTOR) == _shape(exe.ExecutePlanRequest.DESCRIPTOR)
    assert _shape(gov.ExecutePlanResponse.DESCRIPTOR) == _shape(exe.ExecutePlanResponse.DESCRIPTOR)


FILTER_SPECS = {
    "govex.governance.v1.ListPlansRequest": list_filters.PLANS,
    "govex.governance.v1.ListFreezesRequest": list_filters.FREEZES,
    "govex.governance.v1.ListSignalsRequest": list_filters.SIGNAL_SETS,
    "govex.governance.v1.ListAuditRecordsRequest": list_filters.AUDIT_RECORDS,
    "govex.execution.v1.ListExecutionsRequest": list_filters.EXECUTIONS,
    "govex.execution.v1.ListOrdersRequest": list_filters.ORDERS,
    "govex.execution.v1.ListExchangesRequest": list_filters.EXCHANGES,
}


def test_each_filter_comment_names_exactly_the_fields_the_server_accepts() -> None:
    files = descriptor_pb2.FileDescriptorSet.FromString(protoset_bytes())
    seen = set()
    for file in files.file:
        for m_index, message in enumerate(file.message_type):
            full = f"{file.package}.{message.name}"
            if full not in FILTER_SPECS:
                continue
            f_index = [f.name for f in message.field].index("filter")
            comment = next(
                loc.leading_comments
                for loc in file.source_code_info.location
                if list(loc.path) == [4, m_index, 2, f_index]
            )
            fields_part = comment.split("Fields:")[1]
            named = set(re.findall(r"\b([a-z][a-z_]*[a-z])\b", fields_part))
            for field in FILTER_SPECS[full]:
                assert field in named, f"{full}: {field} is filterable but not documented"
            seen.add(full)
    assert seen == set(FILTER_SPECS)
