"""Bulk actions, their outcomes and the spooled form of a pending document (pure functions, no server)."""

from __future__ import annotations

import pytest

from correlator.store.base import Collection
from correlator.store.errors import StoreError
from correlator.store.es_bulk import (
    Outcome,
    PendingDocument,
    action_for,
    decode_pending,
    encode_pending,
    item_outcome,
)


@pytest.mark.parametrize("op", ["create", "index"])
def test_pending_documents_round_trip_with_their_operation(op: str) -> None:
    document = PendingDocument(Collection.ALERTS, "socctl-alerts-default-2023.11.14", "a1", '{"x":1}', op)
    assert decode_pending(encode_pending(document)) == document
    assert action_for(document)["_op_type"] == op


def test_a_spool_written_before_operations_reads_as_create() -> None:
    assert decode_pending(b'["events","i","e1","{}"]') == PendingDocument(Collection.EVENTS, "i", "e1", "{}")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'["events","i","e1","{}","delete"]', "spooled document is not readable: unknown bulk operation 'delete': "
                                              "b'[\"events\",\"i\",\"e1\",\"{}\",\"delete\"]'"),
        (b'["nope","i","e1","{}"]', "spooled document is not readable: 'nope' is not a valid Collection: "
                                    "b'[\"nope\",\"i\",\"e1\",\"{}\"]'"),
    ],
    ids=["operation", "collection"],
)
def test_unreadable_spooled_documents(data: bytes, message: str) -> None:
    with pytest.raises(StoreError) as info:
        decode_pending(data)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("item", "outcome"),
    [
        ({"create": {"_id": "a", "status": 201}}, Outcome.WRITTEN),
        ({"index": {"_id": "a", "status": 200, "result": "updated"}}, Outcome.WRITTEN),
        ({"create": {"_id": "a", "status": 409, "error": {"type": "version_conflict_engine_exception"}}},
         Outcome.DUPLICATE),
        ({"index": {"_id": "a", "status": 429, "error": {"type": "es_rejected_execution_exception"}}},
         Outcome.RETRY),
        ({"index": {"_id": "a", "status": 400, "error": {"type": "document_parsing_exception"}}}, Outcome.FAILED),
    ],
    ids=["created", "overwritten", "duplicate", "retry", "failed"],
)
def test_item_outcomes(item: dict[str, dict[str, object]], outcome: Outcome) -> None:
    assert item_outcome(item)[:2] == ("a", outcome)
