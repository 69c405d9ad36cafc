"""The Elasticsearch backend of the store contract (`correlator.store.base`).

Layout: time-based indices ``<prefix>-<collection>-<agency>-YYYY.MM.DD`` behind the alias ``<prefix>-<collection>``,
shaped by composable index templates (`correlator.store.es_mapping`) that the store installs when it first writes.
The agency of a document is its ``organization.id`` (as a slug), else the store's `agency`. The versioned
collections (cases, allowlist) are one index each, written by `Store.put` with the version checked by the server
(`correlator.store.es_versioned`).

Writes go through the official client's bulk helper with ``op_type=create`` and ``_id`` = the document id
(`correlator.store.es_bulk`): a replay or retry never duplicates. A document Elasticsearch refuses (mapping
conflict, too many fields, ...) is reported in `WriteResult.failed` and goes to the dead letters with the reason.
429/5xx are retried with backoff by the helper and the transport.

When Elasticsearch cannot be reached, the documents of a write go to the spool (`correlator.store.spool`, a
bounded, fsync'd on-disk queue) when the store has one, and the write returns with `WriteResult.spooled`; until
the spool is empty every later write is appended behind it, so documents reach Elasticsearch in the order they
were written. The store tries to drain the spool on the next write after a back-off (1 s doubling to 30 s) and on
`flush()`/`close()`. Without a spool, an unreachable server raises `BackendUnavailableError`. A full spool raises
`SpoolFullError`: the caller must slow down or stop; nothing is dropped.

Reads see every write this store made (indices written since the last read are refreshed first); other
processes see them within the index refresh interval (1 s), except in the versioned collections, which are
refreshed before every read: a put is visible to every process when it returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch
from elasticsearch.serializer import OrjsonSerializer

from correlator.model import EventOrigin, Rejected
from correlator.store.base import (
    ID_FIELDS,
    TIMESTAMP_FIELD,
    VERSIONED,
    Clock,
    Collection,
    FieldValue,
    Filter,
    PreparedRecord,
    Record,
    SearchPage,
    Sort,
    Store,
    WriteResult,
    iter_records,
    refused_dead_letter,
)
from correlator.store.errors import BackendUnavailableError, StoreError
from correlator.store.es_bulk import PendingDocument, source_with_text, with_catch_all
from correlator.store.es_mapping import (
    DEFAULT_PREFIX,
    alias_name,
    daily_collections,
    index_template,
    template_name,
    words,
)
from correlator.store.es_query import FieldKinds, query_fields, sort_clause, terms_field, to_dsl
from correlator.store.es_versioned import VersionedIndices
from correlator.store.es_writer import (
    DOWN_STATUSES,
    UNREACHABLE,
    BulkWriter,
    UnavailableError,
    WriterSettings,
    describe_api_error,
)
from correlator.store.retention import Purge, RetentionPolicy, agency_slug, cutoff_ms, index_name, plan_retention
from correlator.store.spool import Spool

__all__ = ["ElasticsearchStore", "WriterSettings"]

_T = TypeVar("_T")

log = logging.getLogger(__name__)

class ElasticsearchStore(Store):
    backend = "elasticsearch"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        agency: str = "default",
        clock: Clock | None = None,
        spool_dir: str | Path | None = None,
        spool_max_bytes: int | None = None,
        request_timeout: float = 30.0,
        settings: WriterSettings | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        client: Elasticsearch | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self.url = url
        self.prefix = prefix
        self.agency = agency_slug(agency)
        self.settings = settings or WriterSettings()
        self._monotonic = monotonic
        self._client: Elasticsearch | None = client or Elasticsearch(
            url,
            request_timeout=request_timeout,
            max_retries=2,
            retry_on_timeout=False,
            retry_on_status=(502, 503, 504),
            serializer=OrjsonSerializer(),
        )
        self._templates_ready = False
        self._dirty: set[Collection] = set()
        self._kinds: dict[Collection, dict[str, dict[str, tuple[str, ...] | None]]] = {}
        spool = None
        if spool_dir is not None:
            spool = Spool(spool_dir, **({} if spool_max_bytes is None else {"max_bytes": spool_max_bytes}))
        self._versioned = VersionedIndices(url, prefix, self._connection)
        self._writer = BulkWriter(
            url, self._connection, self.settings, spool, prepare=self._ensure_templates,
            on_written=self._written, on_refused=self._dead_letter, monotonic=monotonic,
        )

    def __repr__(self) -> str:
        return f"ElasticsearchStore({self.url!r}, prefix={self.prefix!r})"

    # -- lifecycle

    @property
    def pending(self) -> int:
        """Documents waiting in the spool."""
        return self._writer.pending

    @property
    def replayed(self) -> int:
        """Spooled documents delivered since the store was opened."""
        return self._writer.replayed

    def flush(self) -> int:
        """Try to deliver the spool now; the documents still waiting."""
        return self._writer.flush()

    def close(self) -> None:
        if self._client is None:
            return
        try:
            for collection in list(self._dirty):  # visible to other processes now, not after the refresh interval
                try:
                    self._refresh(collection)
                except (ApiError, TransportError) as exc:
                    log.warning("%s: refresh at close failed: %s", self.url, exc)
            spool = self._writer.spool
            if spool is not None:
                if spool.pending_items:
                    try:
                        self.flush()
                    except StoreError as exc:
                        log.warning("%s: spool not drained at close: %s", self.url, exc)
                if spool.pending_items:
                    log.warning("%s: %d documents stay spooled in %s; they are sent when the store is next "
                                "opened with the same spool", self.url, spool.pending_items, spool)
                spool.close()
        finally:
            self._client.close()
            self._client = None

    def _connection(self) -> Elasticsearch:
        if self._client is None:
            raise StoreError(f"{self.url}: store is closed")
        return self._client

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except ApiError as exc:
            raise StoreError(f"{self.url}: {action}: {describe_api_error(exc)}") from exc
        except TransportError as exc:
            raise BackendUnavailableError(f"{self.url}: {action}: {exc}") from exc

    # -- templates

    def _ensure_templates(self) -> None:
        if self._templates_ready:
            return
        client = self._connection()
        try:
            for collection in daily_collections():
                client.indices.put_index_template(
                    name=template_name(self.prefix, collection), **index_template(self.prefix, collection)
                )
        except UNREACHABLE as exc:
            raise UnavailableError(str(exc)) from exc
        except ApiError as exc:
            if exc.meta.status in DOWN_STATUSES:
                raise UnavailableError(describe_api_error(exc)) from exc
            raise StoreError(f"{self.url}: install index templates: {describe_api_error(exc)}") from exc
        self._templates_ready = True

    # -- writes

    def _index_for(self, collection: Collection, record: Record) -> str:
        organization = record.doc.get("organization")
        agency = organization.get("id") if isinstance(organization, dict) else None
        return self._index_of(collection, str(agency) if agency else None, record.timestamp_ms)

    def _index_of(self, collection: Collection, agency: str | None, timestamp_ms: int) -> str:
        slug = agency_slug(agency) if agency else self.agency
        return index_name(collection.value, slug, timestamp_ms, prefix=self.prefix)

    def _write_prepared(self, collection: Collection, records: Sequence[PreparedRecord]) -> WriteResult:
        """Prepared records go out as they are: their free text gives the catch-all field, their organization the
        index (no document is parsed again)."""
        if collection is Collection.DEADLETTER:
            return super()._write_prepared(collection, records)
        self._connection()
        return self._writer.deliver(
            PendingDocument(collection, self._index_of(collection, r.organization, r.timestamp_ms), r.id,
                            with_catch_all(r.source, " ".join(words(r.text))))
            for r in records)

    def _document(self, collection: Collection, record: Record, *, replace: bool = False) -> PendingDocument:
        return PendingDocument(collection, self._index_for(collection, record), record.id,
                               source_with_text(record, collection),
                               "index" if replace else "create")

    def _write_items(
        self,
        collection: Collection,
        items: Sequence[_T],
        build: Callable[[_T], Record],
        describe: Callable[[_T], str],
        dead_letter: Callable[[_T, str, str], Rejected] | None,
        *,
        replace: bool = False,
    ) -> WriteResult:
        """Events, alerts and audit entries stream: records are built chunk by chunk while earlier chunks are in
        flight."""
        if collection is Collection.DEADLETTER:
            return super()._write_items(collection, items, build, describe, dead_letter, replace=replace)
        self._connection()
        refused: list[tuple[_T, str, str]] = []
        records = iter_records(items, build, describe, refused)
        result = self._writer.deliver(self._document(collection, record, replace=replace) for record in records)
        return self._with_refused(result, refused, dead_letter)

    def _write(self, collection: Collection, records: Sequence[Record], *, replace: bool = False) -> WriteResult:
        self._connection()
        documents = [self._document(collection, record, replace=replace) for record in records]
        already = 0
        if collection is Collection.DEADLETTER:
            documents, already = self._without_stored(documents)
        result = self._writer.deliver(documents)
        return WriteResult(result.written, result.duplicates + already, result.failed, result.spooled)

    def _without_stored(self, documents: list[PendingDocument]) -> tuple[list[PendingDocument], int]:
        """Dead letters already stored under another day's index (their time is when they were received)."""
        if not documents:
            return documents, 0
        ids = sorted({document.id for document in documents})
        try:
            self._refresh(Collection.DEADLETTER)
            response = self._connection().search(
                index=alias_name(self.prefix, Collection.DEADLETTER), query={"ids": {"values": ids}},
                size=len(ids), source=False, ignore_unavailable=True, allow_no_indices=True,
            )
        except (TransportError, ApiError):
            return documents, 0  # unknown: create-only writes still keep each index free of duplicates
        stored = {hit["_id"] for hit in response["hits"]["hits"]}
        kept = [document for document in documents if document.id not in stored]
        return kept, len(documents) - len(kept)

    def _put(self, collection: Collection, record: Record, expected_version: int | None) -> None:
        self._connection()
        self._versioned.put(collection, record, expected_version)
        self._dirty.add(collection)
        self._kinds.pop(collection, None)  # a new field may have been mapped

    def _written(self, collections: set[Collection]) -> None:
        self._dirty.update(collections)
        self._kinds.clear()

    def _dead_letter(self, failed: list[tuple[PendingDocument, str]]) -> None:
        """Documents Elasticsearch refused go to the dead letters with the reason (never for dead letters)."""
        letters = [
            refused_dead_letter(document.collection, document.id, f"Elasticsearch: {reason}",
                                EventOrigin(format="store"), document.source)
            for document, reason in failed
            if document.collection is not Collection.DEADLETTER
        ]
        if letters:
            self.write_rejected(letters)

    # -- reads

    def _refresh(self, collection: Collection) -> None:
        if collection in self._dirty or collection in VERSIONED:
            self._connection().indices.refresh(
                index=alias_name(self.prefix, collection), ignore_unavailable=True, allow_no_indices=True
            )
            self._dirty.discard(collection)

    def _field_kinds(self, collection: Collection, fields: set[str]) -> FieldKinds:
        known = self._kinds.setdefault(collection, {})
        missing = sorted(fields - known.keys())
        if not missing:
            return known
        response = self._connection().field_caps(
            index=alias_name(self.prefix, collection), fields=missing,
            ignore_unavailable=True, allow_no_indices=True,
        )
        found = response.get("fields", {})
        kinds = dict(known)
        for name in missing:
            kinds[name] = {
                kind: (tuple(caps["indices"]) if caps.get("indices") else None)
                for kind, caps in found.get(name, {}).items()
                if kind != "unmapped"
            }
            # Another process's put may map a field of a versioned collection at any time: only cache what exists.
            if kinds[name] or collection not in VERSIONED:
                known[name] = kinds[name]
        return kinds

    def _request(
        self, where: Filter, extra_fields: frozenset[str] = frozenset()
    ) -> tuple[dict[str, Any], FieldKinds]:
        self._refresh(where.collection)
        kinds = self._field_kinds(where.collection, query_fields(where.query) | extra_fields)
        clauses: list[dict[str, Any]] = [to_dsl(where.query, kinds)]
        if where.since_ms is not None or where.until_ms is not None:
            bounds: dict[str, Any] = {"format": "epoch_millis"}
            if where.since_ms is not None:
                bounds["gte"] = where.since_ms
            if where.until_ms is not None:
                bounds["lt"] = where.until_ms
            clauses.append({"range": {TIMESTAMP_FIELD: bounds}})
        return {"bool": {"filter": clauses}}, kinds

    def _search(self, where: Filter, sort: Sort, limit: int, offset: int) -> SearchPage:
        with self._errors(f"search {where.collection.value}"):
            query, kinds = self._request(where, frozenset({sort.field}))
            id_field = ID_FIELDS[where.collection]
            response = self._connection().search(
                index=alias_name(self.prefix, where.collection),
                query=query,
                sort=[sort_clause(sort.field, kinds.get(sort.field, {}), descending=sort.descending),
                      {id_field: {"order": "asc", "unmapped_type": "keyword"}}],
                from_=offset,
                size=limit,
                track_total_hits=True,
                ignore_unavailable=True,
                allow_no_indices=True,
            )
        hits = response["hits"]
        return SearchPage(int(hits["total"]["value"]), [hit["_source"] for hit in hits["hits"]])

    def _count(self, where: Filter) -> int:
        with self._errors(f"count {where.collection.value}"):
            query, _ = self._request(where)
            response = self._connection().count(
                index=alias_name(self.prefix, where.collection), query=query,
                ignore_unavailable=True, allow_no_indices=True,
            )
        return int(response["count"])

    def _terms(self, where: Filter, field: str, size: int) -> list[tuple[FieldValue, int]]:
        with self._errors(f"terms {where.collection.value} {field}"):
            query, kinds = self._request(where, frozenset({field}))
            target = terms_field(field, kinds.get(field, {}))
            if target is None:
                return []
            name, kind = target
            aggregation: dict[str, Any] = {
                "field": name, "size": size, "shard_size": max(size * 10, 1_000),
                "order": [{"_count": "desc"}, {"_key": "asc"}],
            }
            if kind in ("date", "date_nanos"):
                aggregation["format"] = "strict_date_time"
            response = self._connection().search(
                index=alias_name(self.prefix, where.collection), query=query, size=0,
                aggregations={"terms": {"terms": aggregation}}, ignore_unavailable=True, allow_no_indices=True,
            )
        buckets = response.get("aggregations", {}).get("terms", {}).get("buckets", [])
        return [(_bucket_key(bucket, kind), int(bucket["doc_count"])) for bucket in buckets]

    def _date_histogram(self, where: Filter, interval_ms: int) -> list[tuple[int, int]]:
        with self._errors(f"date histogram {where.collection.value}"):
            query, _ = self._request(where)
            response = self._connection().search(
                index=alias_name(self.prefix, where.collection), query=query, size=0,
                aggregations={"histogram": {"date_histogram": {
                    "field": TIMESTAMP_FIELD, "fixed_interval": f"{interval_ms}ms", "min_doc_count": 1,
                }}},
                ignore_unavailable=True, allow_no_indices=True,
            )
        buckets = response.get("aggregations", {}).get("histogram", {}).get("buckets", [])
        return [(int(bucket["key"]), int(bucket["doc_count"])) for bucket in buckets]

    def _get(self, collection: Collection, doc_id: str) -> dict[str, Any] | None:
        if collection in VERSIONED:
            self._connection()
            return self._versioned.get(collection, doc_id)
        with self._errors(f"get {collection.value} {doc_id}"):
            self._refresh(collection)
            response = self._connection().search(
                index=alias_name(self.prefix, collection), query={"ids": {"values": [doc_id]}}, size=1,
                ignore_unavailable=True, allow_no_indices=True,
            )
        hits = response["hits"]["hits"]
        return dict(hits[0]["_source"]) if hits else None

    # -- maintenance

    def indices(self) -> list[str]:
        """The names of this store's indices."""
        with self._errors("list indices"):
            response = self._connection().indices.get(
                index=f"{self.prefix}-*", ignore_unavailable=True, allow_no_indices=True, expand_wildcards="open"
            )
        return sorted(response.keys())

    def delete_indices(self, names: Sequence[str]) -> None:
        for name in names:
            if not name.startswith(f"{self.prefix}-"):
                raise StoreError(f"{self.url}: refusing to delete {name!r}: not an index of prefix {self.prefix!r}")
            with self._errors(f"delete index {name}"):
                self._connection().indices.delete(index=name, ignore_unavailable=True)

    def _apply_retention(self, policy: RetentionPolicy, now_ms: int, dry_run: bool) -> list[Purge]:
        purges: list[Purge] = []
        for collection in list(self._dirty):
            self._refresh(collection)
        for action in plan_retention(self.indices(), policy, now_ms, prefix=self.prefix):
            with self._errors(f"count {action.index}"):
                documents = int(self._connection().count(index=action.index)["count"])
            if not dry_run:
                self.delete_indices([action.index])
                log.info("retention: deleted %s (%d documents; agency %s, level %d, kept %d days)",
                         action.index, documents, action.agency, action.level, action.age_days)
            purges.append(Purge(action.index, action.collection, action.agency, action.level, action.cutoff_ms,
                                documents, not dry_run))
        for collection in sorted(VERSIONED, key=list(Collection).index):
            expired = self._versioned.expired(collection, policy, now_ms, self.agency)
            for agency, ids in sorted(expired.items()):
                if not dry_run:
                    self._versioned.delete(collection, ids)
                    log.info("retention: deleted %d %s documents of agency %s from %s", len(ids), collection.value,
                             agency, self._versioned.index(collection))
                purges.append(Purge(self._versioned.index(collection), collection.value, agency,
                                    policy.level_for(agency), cutoff_ms(policy, agency, collection.value, now_ms),
                                    len(ids), not dry_run))
        return purges

    def drop_all(self) -> None:
        """Delete every index and template of this prefix (tests and `socctl` resets)."""
        self.delete_indices(self.indices())
        self._versioned.forget()
        with self._errors("delete index templates"):
            for collection in Collection:
                self._connection().options(ignore_status=404).indices.delete_index_template(
                    name=template_name(self.prefix, collection)
                )
        self._templates_ready = False


def _bucket_key(bucket: dict[str, Any], kind: str) -> FieldValue:
    key = bucket["key"]
    if kind == "boolean":
        return bool(key)
    if kind in ("date", "date_nanos"):
        return str(bucket.get("key_as_string", key))
    if kind in ("long", "integer", "short", "byte", "unsigned_long"):
        return int(key)
    if isinstance(key, float) and key.is_integer() and kind in ("double", "float", "half_float", "scaled_float"):
        return key
    return key
