"""Versioned collections (cases, allowlist) in Elasticsearch: one index each, writes checked by the server.

Each collection is one index, ``<prefix>-<collection>-v1`` behind the alias ``<prefix>-<collection>``, created with
its explicit mapping (`correlator.store.es_mapping.versioned_index_body`) when first written: a document stays in
the same index across its updates, whatever its dates.

`VersionedIndices.put` checks the version atomically on the server: a create is ``op_type=create`` (409 when the
id exists); an update reads the stored document in real time (its ``version``, ``_seq_no`` and ``_primary_term``),
compares the version the caller expected, then indexes with ``if_seq_no`` / ``if_primary_term``, which
Elasticsearch refuses (409) if any write came in between. A 409 becomes `VersionConflictError` with the stored
version, unless the stored document is the one being put (a request retried by the transport after it had
succeeded). Writes go through the alias with ``require_alias``, so an index deleted behind the store's back is
created again with its mapping, never made up by dynamic mapping. Puts are never spooled: an unreachable server
raises `BackendUnavailableError`.

Retention (`expired`, `delete`): this build has no ``_delete_by_query``, so the ids past retention are searched
(``search_after`` over the ``id`` keyword) and deleted with bulk ``delete`` actions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import orjson
from elastic_transport import TransportError
from elasticsearch import ApiError, ConflictError, Elasticsearch, NotFoundError, helpers

from correlator.store.documents import RETENTION_FIELDS, Collection, Record, agency_of, searchable
from correlator.store.errors import BackendUnavailableError, StoreError, VersionConflictError
from correlator.store.es_mapping import TEXT_FIELD, alias_name, text_of, versioned_index_body, versioned_index_name
from correlator.store.es_writer import DOWN_STATUSES, describe_api_error
from correlator.store.retention import DEFAULT_AGENCY, RetentionPolicy, agency_slug, cutoff_ms

__all__ = ["VersionedIndices"]

_PAGE: Final = 1_000  # ids per page when searching for documents past retention


class VersionedIndices:
    """Puts, real-time gets and retention for the versioned collections of one store (`url`, `prefix`)."""

    def __init__(self, url: str, prefix: str, client: Callable[[], Elasticsearch]) -> None:
        self.url = url
        self.prefix = prefix
        self._client = client
        self._ready: set[Collection] = set()

    def index(self, collection: Collection) -> str:
        return versioned_index_name(self.prefix, collection)

    def forget(self) -> None:
        """The indices were deleted: create them again on the next put."""
        self._ready.clear()

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except TransportError as exc:
            raise BackendUnavailableError(f"{self.url}: {action}: Elasticsearch is unavailable: {exc}") from exc
        except ApiError as exc:
            if exc.meta.status in DOWN_STATUSES:
                raise BackendUnavailableError(f"{self.url}: {action}: {describe_api_error(exc)}") from exc
            raise StoreError(f"{self.url}: {action}: {describe_api_error(exc)}") from exc

    def ensure(self, collection: Collection) -> str:
        """The collection's index, created (with its alias and mapping) if it does not exist yet. Client errors
        propagate: the caller names the action."""
        name = self.index(collection)
        if collection in self._ready:
            return name
        try:
            self._client().indices.create(index=name, **versioned_index_body(self.prefix, collection))
        except ApiError as exc:
            if exc.meta.status != 400 or exc.error != "resource_already_exists_exception":
                raise
        self._ready.add(collection)
        return name

    # -- documents

    def put(self, collection: Collection, record: Record, expected_version: int | None) -> None:
        with self._errors(f"put {collection.value}/{record.id}"):
            try:
                self._put(collection, record, expected_version)
            except NotFoundError:  # the index was deleted since this store created it (a reset): create it again
                self._ready.discard(collection)
                self._put(collection, record, expected_version)

    def _put(self, collection: Collection, record: Record, expected_version: int | None) -> None:
        """Writes go to the alias with ``require_alias``: never into an index Elasticsearch would make up."""
        self.ensure(collection)
        alias = alias_name(self.prefix, collection)
        client = self._client()
        body = {**record.doc, TEXT_FIELD: text_of(searchable(collection, record.doc))}
        try:
            if expected_version is None:
                client.index(index=alias, id=record.id, document=body, op_type="create", require_alias=True)
                return
            stored = self._stored(alias, record.id)
            if stored is None or _version(stored["_source"]) != expected_version:
                self._conflict(collection, record, expected_version, stored)
                return
            client.index(index=alias, id=record.id, document=body, if_seq_no=stored["_seq_no"],
                         if_primary_term=stored["_primary_term"], require_alias=True)
        except ConflictError:
            self._conflict(collection, record, expected_version, self._stored(alias, record.id))

    def _conflict(self, collection: Collection, record: Record, expected_version: int | None,
                  stored: dict[str, Any] | None) -> None:
        """Raise the conflict with the stored version, unless `record` is exactly what is stored."""
        if stored is not None and stored["_source"] == orjson.loads(record.source):
            return
        actual = None if stored is None else _version(stored["_source"])
        raise VersionConflictError(collection.value, record.id, expected_version, actual)

    def _stored(self, index: str, doc_id: str) -> dict[str, Any] | None:
        """The stored document (real time: no refresh needed) with ``_seq_no`` and ``_primary_term``, or None."""
        response = self._client().options(ignore_status=404).get(index=index, id=doc_id)
        if not response.get("found"):
            return None
        found = dict(response.body)
        found["_source"] = {k: v for k, v in found.get("_source", {}).items() if k != TEXT_FIELD}
        return found

    def get(self, collection: Collection, doc_id: str) -> dict[str, Any] | None:
        with self._errors(f"get {collection.value}/{doc_id}"):
            stored = self._stored(self.index(collection), doc_id)
        return None if stored is None else dict(stored["_source"])

    # -- retention

    def expired(self, collection: Collection, policy: RetentionPolicy, now_ms: int,
                default_agency: str) -> dict[str, list[str]]:
        """agency -> ids of the documents past its cutoff: cases closed, allowlist entries expired, before it."""
        name = RETENTION_FIELDS[collection]
        latest = max(cutoff_ms(policy, agency, collection.value, now_ms)
                     for agency in (*policy.agencies, DEFAULT_AGENCY, default_agency))
        index = self.index(collection)
        found: dict[str, list[str]] = {}
        after: list[Any] | None = None
        with self._errors(f"retention {collection.value}"):
            client = self._client()
            client.indices.refresh(index=index, ignore_unavailable=True, allow_no_indices=True)
            while True:
                response = client.search(
                    index=index, query={"range": {name: {"lt": latest}}}, sort=[{"id": "asc"}], size=_PAGE,
                    source_includes=[name, "agency", "organization.id"], ignore_unavailable=True,
                    allow_no_indices=True, search_after=after,
                )
                hits = response["hits"]["hits"]
                for hit in hits:
                    raw = agency_of(hit["_source"])
                    agency = agency_slug(raw) if raw else default_agency
                    value = hit["_source"].get(name)
                    if isinstance(value, int) and value < cutoff_ms(policy, agency, collection.value, now_ms):
                        found.setdefault(agency, []).append(hit["_id"])
                if len(hits) < _PAGE:
                    return found
                after = hits[-1]["sort"]

    def delete(self, collection: Collection, ids: list[str]) -> None:
        index = self.index(collection)
        with self._errors(f"retention {collection.value}: delete"):
            actions = ({"_op_type": "delete", "_index": index, "_id": doc_id} for doc_id in ids)
            _, errors = helpers.bulk(self._client(), actions, raise_on_error=False, refresh=True)
        failed = [item for item in errors if _status(item) != 404] if isinstance(errors, list) else []
        if failed:
            raise StoreError(f"{self.url}: retention {collection.value}: {len(failed)} deletes failed: {failed[:3]}")


def _version(source: dict[str, Any]) -> int | None:
    version = source.get("version")
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def _status(item: Any) -> int | None:
    body: Any = next(iter(item.values()), {}) if isinstance(item, dict) else {}
    status = body.get("status") if isinstance(body, dict) else None
    return status if isinstance(status, int) else None
