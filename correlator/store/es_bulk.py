"""Bulk actions and their outcomes for the Elasticsearch store (pure functions over `Record`s and bulk items).

Every document is written with ``op_type=create`` and ``_id`` = its id, so a replay or a retry never duplicates:
Elasticsearch answers 409 (``version_conflict_engine_exception``) for an id already in the index, which counts
as a duplicate. 429 and 5xx items mean "try again later" (the writer retries, then spools); any other error is
the document's own fault (a mapping conflict, a field too large, the total-fields limit) and is final.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

import orjson

from correlator.store.base import Collection, Record
from correlator.store.errors import StoreError
from correlator.store.es_mapping import TEXT_FIELD, text_of

__all__ = [
    "Outcome",
    "PendingDocument",
    "action_for",
    "decode_pending",
    "encode_pending",
    "item_outcome",
    "source_with_text",
]


class Outcome(Enum):
    WRITTEN = "written"
    DUPLICATE = "duplicate"
    RETRY = "retry"  # 429 / 5xx: the server could not take it now
    FAILED = "failed"  # the document's own fault


@dataclass(frozen=True, slots=True)
class PendingDocument:
    """A document on its way to an index: what the bulk action and the spool need."""

    collection: Collection
    index: str
    id: str
    source: str  # the JSON text sent as _source, catch-all text included

    @property
    def size(self) -> int:
        return len(self.source) + len(self.id) + len(self.index) + 64


_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


def source_with_text(record: Record) -> str:
    """The record's JSON text with the catch-all text field added (the document is a JSON object)."""
    text = orjson.dumps(text_of(record.doc)).decode()
    source = record.source
    if source == "{}":
        return f'{{"{TEXT_FIELD}":{text}}}'
    return f'{source[:-1]},"{TEXT_FIELD}":{text}}}'


def action_for(document: PendingDocument) -> dict[str, Any]:
    """A bulk helper action; `_source` is the pre-serialised JSON text, passed through unchanged."""
    return {"_op_type": "create", "_index": document.index, "_id": document.id, "_source": document.source}


def item_outcome(item: dict[str, Any]) -> tuple[str, Outcome, str]:
    """(id, outcome, reason) for one item of a bulk response, as the bulk helpers yield it."""
    body: dict[str, Any] = item.get("create") or next(iter(item.values()), {})
    doc_id = str(body.get("_id", ""))
    status = int(body.get("status", 0))
    if 200 <= status < 300:
        return doc_id, Outcome.WRITTEN, ""
    error = body.get("error")
    reason = _reason(error) if error is not None else f"HTTP status {status}"
    if status == 409:
        return doc_id, Outcome.DUPLICATE, reason
    if status in _RETRY_STATUSES or status == 0:
        return doc_id, Outcome.RETRY, reason
    return doc_id, Outcome.FAILED, reason


def _reason(error: Any) -> str:
    """`type: reason` of an Elasticsearch error, with its innermost cause."""
    if not isinstance(error, dict):
        return str(error)
    text = f"{error.get('type', 'error')}: {error.get('reason', '')}".rstrip(": ")
    cause = error.get("caused_by")
    if isinstance(cause, dict):
        text += f" (caused by {_reason(cause)})"
    return text


def encode_pending(document: PendingDocument) -> bytes:
    return orjson.dumps([document.collection.value, document.index, document.id, document.source])


def decode_pending(data: bytes) -> PendingDocument:
    try:
        collection, index, doc_id, source = orjson.loads(data)
        return PendingDocument(Collection(collection), str(index), str(doc_id), str(source))
    except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise StoreError(f"spooled document is not readable: {exc}: {data[:200]!r}") from exc
