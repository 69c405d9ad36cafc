"""Bulk actions and their outcomes for the Elasticsearch store (pure functions over `Record`s and bulk items).

Every document is written with ``op_type=create`` and ``_id`` = its id, so a replay or a retry never duplicates:
Elasticsearch answers 409 (``version_conflict_engine_exception``) for an id already in the index, which counts
as a duplicate. Documents that replace what is stored (`Store.write_alerts(..., replace=True)`) are written with
``op_type=index`` instead: a replay writes the same document again. 429 and 5xx items mean "try again later"
(the writer retries, then spools); any other error is the document's own fault (a mapping conflict, a field too
large, the total-fields limit) and is final.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

import orjson

from correlator.store.base import Collection, Record
from correlator.store.documents import searchable
from correlator.store.errors import StoreError
from correlator.store.es_mapping import TEXT_FIELD, text_of

__all__ = [
    "Outcome",
    "PendingDocument",
    "action_for",
    "decode_pending",
    "encode_pending",
    "item_body",
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
    op: str = "create"  # the bulk operation: "create" (create-only) or "index" (overwrite)

    @property
    def size(self) -> int:
        return len(self.source) + len(self.id) + len(self.index) + 64


_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


def source_with_text(record: Record, collection: Collection | None = None) -> str:
    """The record's JSON text with the catch-all text field added (the document is a JSON object); the text leaves
    out the parts of `collection`'s documents that are not searched."""
    doc = record.doc if collection is None else searchable(collection, record.doc)
    return with_catch_all(record.source, text_of(doc))


def with_catch_all(source: str, text: str) -> str:
    """A document's JSON text (an object) with the catch-all text field `text` (`text_of`) added."""
    value = orjson.dumps(text).decode()
    if source == "{}":
        return f'{{"{TEXT_FIELD}":{value}}}'
    return f'{source[:-1]},"{TEXT_FIELD}":{value}}}'


def action_for(document: PendingDocument) -> dict[str, Any]:
    """A bulk helper action; `_source` is the pre-serialised JSON text, passed through unchanged."""
    return {"_op_type": document.op, "_index": document.index, "_id": document.id, "_source": document.source}


def item_body(item: dict[str, Any]) -> dict[str, Any]:
    """The body of one item of a bulk response, whatever its operation (``create``, ``index``)."""
    body: dict[str, Any] = item.get("create") or item.get("index") or next(iter(item.values()), {})
    return body


def item_outcome(item: dict[str, Any]) -> tuple[str, Outcome, str]:
    """(id, outcome, reason) for one item of a bulk response, as the bulk helpers yield it."""
    body = item_body(item)
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
    """[collection, index, id, source], then the operation when it is not "create"."""
    fields = [document.collection.value, document.index, document.id, document.source]
    if document.op != "create":
        fields.append(document.op)
    return orjson.dumps(fields)


def decode_pending(data: bytes) -> PendingDocument:
    try:
        collection, index, doc_id, source, *rest = orjson.loads(data)
        document = PendingDocument(Collection(collection), str(index), str(doc_id), str(source), *map(str, rest))
    except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise StoreError(f"spooled document is not readable: {exc}: {data[:200]!r}") from exc
    if document.op not in ("create", "index"):
        raise StoreError(f"spooled document is not readable: unknown bulk operation {document.op!r}: {data[:200]!r}")
    return document
