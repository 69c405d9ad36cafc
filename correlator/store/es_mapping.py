"""Elasticsearch index templates, index names and the catch-all text field (pure data and functions, no I/O).

Indices are time-based, one per collection, agency and UTC day of the documents' ``@timestamp``:
``<prefix>-<collection>-<agency>-YYYY.MM.DD`` (``socctl-events-sotttt-2026.11.24``), each behind the alias
``<prefix>-<collection>`` that searches read. (Cases and allowlist entries change in place, so each of those
collections is one index, ``<prefix>-<collection>-v1`` behind the same alias, created with its explicit mapping:
`versioned_index_body`.) A composable index template per collection gives every new index
its settings and explicit ECS mappings:

- ``@timestamp`` and other ECS dates are ``date``; ``*.ip`` fields of ECS are ``ip`` with a ``keyword``
  sub-field (so ``source.ip:10.0.*`` prefix queries behave as in SQLite); identifiers are ``keyword``;
  messages and command lines are ``text`` with a ``keyword`` sub-field; ``event.original`` is stored but not
  indexed; every other string (``winlog.event_data.*`` included) is a ``keyword`` by dynamic template.
- ``index.mapping.total_fields.limit`` bounds the field count: a document that would pass it is refused by
  Elasticsearch with "Limit of total fields [N] has been exceeded" and goes to the dead letters.
- ``audit`` indices also map the audit entry (``subject.kind``/``subject.id``, ``actor``, ``action`` keywords, ``at_ms``
  and ``seq`` longs); its ``before``/``after`` (any fields of any subject) are stored but not indexed.
- ``socctl_text``: the free text of the document (the words of its string and number values, lower-cased, as
  `correlator.store.query` defines them), indexed with the built-in ``whitespace`` analyzer and kept out of
  ``_source``. The integration-test distribution has no ``pattern`` tokenizer, so socctl splits the words itself.
"""

from __future__ import annotations

import re
from typing import Any, Final

from correlator.store.documents import TIMESTAMP_FIELD, VERSIONED, Collection, document_text
from correlator.store.retention import DEFAULT_PREFIX

__all__ = [
    "DEFAULT_PREFIX",
    "KEYWORD_IGNORE_ABOVE",
    "TEXT_FIELD",
    "TEXT_WITH_KEYWORD",
    "alias_name",
    "daily_collections",
    "index_pattern",
    "index_template",
    "template_name",
    "text_of",
    "versioned_index_body",
    "versioned_index_name",
    "words",
]

TEXT_FIELD: Final = "socctl_text"
# Lucene refuses terms over 32,766 bytes; 8,191 characters of up to 4 UTF-8 bytes stay under it.
KEYWORD_IGNORE_ABOVE: Final = 8191
TOTAL_FIELDS_LIMIT: Final = 2000
_WORD: Final = re.compile(r"\w+")

_KEYWORD: Final = {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}
_TEXT: Final = {"type": "text", "fields": {"keyword": _KEYWORD}}
_IP: Final = {"type": "ip", "fields": {"keyword": _KEYWORD}}
_DATE: Final = {"type": "date"}
_LONG: Final = {"type": "long"}
_INTEGER: Final = {"type": "integer"}
_BOOLEAN: Final = {"type": "boolean"}
_STORED_ONLY: Final = {"type": "object", "enabled": False}  # kept in _source, not indexed: no mapping explosion
_TEXT_INDEX: Final = {"type": "text", "analyzer": "whitespace", "norms": False, "index_options": "positions"}
VERSIONED_LAYOUT: Final = 1  # the -v<N> suffix of the index of a versioned collection

# ECS fields whose type is not "keyword": messages and command lines are text (with .keyword), addresses ip,
# times date, counters long. Everything else that is a string maps to keyword by the dynamic template.
TEXT_WITH_KEYWORD: Final = (
    "message",
    "error.message",
    "process.command_line",
    "process.parent.command_line",
    "rule.title",
    "rule.description",
    "reason",
    "file.path",
    "url.original",
    "user_agent.original",
)
_IP_FIELDS: Final = (
    "source.ip", "destination.ip", "client.ip", "server.ip", "host.ip", "related.ip",
    "source.nat.ip", "destination.nat.ip", "observer.ip",
)
_DATE_FIELDS: Final = ("@timestamp", "event.created", "event.ingested", "event.start", "event.end",
                       "alert.first_seen", "alert.last_seen", "process.start", "file.created", "file.mtime")
_LONG_FIELDS: Final = (
    "source.port", "destination.port", "client.port", "server.port", "source.bytes", "destination.bytes",
    "source.packets", "destination.packets", "network.bytes", "network.packets", "process.pid",
    "process.parent.pid", "process.thread.id", "log.offset", "file.size", "http.response.status_code",
    "event.duration", "event.sequence",
)
_KEYWORD_FIELDS: Final = (
    "event.id", "alert.id", "event.code", "event.kind", "event.dataset", "event.module", "event.action",
    "event.category", "event.type", "event.outcome", "host.name", "host.hostname", "user.name", "user.domain",
    "process.name", "process.executable", "rule.id", "rule.level", "rule.name", "rule.tags", "tags",
    "winlog.channel", "winlog.event_id", "winlog.record_id", "winlog.provider_name", "log.record_id",
    "organization.id", "stage", "user.id", "host.id", "agent.id", "process.entity_id", "process.parent.entity_id",
    "file.hash.md5", "file.hash.sha1", "file.hash.sha256", "source.address", "destination.address",
    "network.transport", "network.protocol", "dns.question.name", "url.domain", "http.request.method",
)


def _properties(fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Nested ``properties`` for dotted field names."""
    root: dict[str, Any] = {}
    for name, mapping in fields.items():
        node = root
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[leaf] = mapping
    return root


def _explicit_fields() -> dict[str, dict[str, Any]]:
    fields: dict[str, dict[str, Any]] = {}
    fields.update(dict.fromkeys(_KEYWORD_FIELDS, _KEYWORD))
    fields.update(dict.fromkeys(TEXT_WITH_KEYWORD, _TEXT))
    fields.update(dict.fromkeys(_IP_FIELDS, _IP))
    fields.update(dict.fromkeys(_DATE_FIELDS, _DATE))
    fields.update(dict.fromkeys(_LONG_FIELDS, _LONG))
    fields["event.original"] = {"type": "keyword", "index": False, "doc_values": False}
    fields["raw"] = {"type": "keyword", "index": False, "doc_values": False}
    # No index_prefixes: they cost about 40% of indexing throughput; prefix queries expand terms instead.
    fields[TEXT_FIELD] = _TEXT_INDEX
    return fields


# Fields of the daily collections besides ECS.
_COLLECTION_FIELDS: Final[dict[Collection, dict[str, dict[str, Any]]]] = {
    Collection.AUDIT: {
        "id": _KEYWORD, "at_ms": _LONG, "seq": _LONG, "actor": _KEYWORD, "action": _KEYWORD,
        "subject.kind": _KEYWORD, "subject.id": _KEYWORD, "summary": _TEXT, "before": _STORED_ONLY,
        "after": _STORED_ONLY,
    },
}

# The explicit mappings of the versioned collections. Cases keep their bulky parts (timeline, alerts, tasks,
# evidence, the risk factors) in _source only: they are read back with the case, never searched.
_VERSIONED_FIELDS: Final[dict[Collection, dict[str, dict[str, Any]]]] = {
    Collection.CASES: {
        **dict.fromkeys(("id", "status", "severity", "layer", "assignee", "agency", "group_key", "serious",
                         "incident_type", "playbook_id", "tags", "systems", "alert_ids", "rule_ids", "host_names",
                         "notify", "merged_into", "merged_from", "split_from", "risk.severity"), _KEYWORD),
        **dict.fromkeys(("created_ms", "updated_ms", "first_seen_ms", "last_seen_ms", "acknowledged_ms",
                         "contained_ms", "closed_ms", "version", "sla.acknowledge_by_ms", "sla.contain_by_ms"),
                        _LONG),
        "risk.score": _INTEGER,
        "severity_rank": _INTEGER,
        "risk.explanation": _TEXT,
        "title": _TEXT,
        "l3_assessment": _BOOLEAN,
        **dict.fromkeys(("timeline", "alerts", "tasks", "evidence", "risk.factors"), _STORED_ONLY),
    },
    Collection.ALLOWLIST: {
        # `value` is a string, a number or a list of them: a keyword takes every one (dynamic mapping would fix
        # its type by the first entry and refuse the others).
        **dict.fromkeys(("id", "rule", "field", "operator", "value", "author"), _KEYWORD),
        **dict.fromkeys(("created_ms", "updated_ms", "expires_ms", "revoked_ms", "version"), _LONG),
        "reason": _TEXT,
    },
}


def template_name(prefix: str, collection: Collection) -> str:
    return f"{prefix}-{collection.value}"


def alias_name(prefix: str, collection: Collection) -> str:
    return f"{prefix}-{collection.value}"


def index_pattern(prefix: str, collection: Collection) -> str:
    return f"{prefix}-{collection.value}-*"


def daily_collections() -> tuple[Collection, ...]:
    """The collections kept in daily indices (all but the versioned ones)."""
    return tuple(collection for collection in Collection if collection not in VERSIONED)


def versioned_index_name(prefix: str, collection: Collection) -> str:
    """The one index of a versioned collection: ``<prefix>-cases-v1``."""
    return f"{prefix}-{collection.value}-v{VERSIONED_LAYOUT}"


def _settings(shards: int, replicas: int) -> dict[str, Any]:
    return {
        "index": {
            "number_of_shards": shards,
            "number_of_replicas": replicas,
            "mapping": {"total_fields": {"limit": TOTAL_FIELDS_LIMIT}},
            "max_result_window": 10_000,
        }
    }


def _mappings(fields: dict[str, dict[str, Any]], dynamic_templates: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "_source": {"excludes": [TEXT_FIELD]},
        "date_detection": False,
        "numeric_detection": False,
        "dynamic_templates": [*dynamic_templates, {"strings": {"match_mapping_type": "string", "mapping": _KEYWORD}}],
        "properties": _properties(fields),
    }


def index_template(prefix: str, collection: Collection, *, shards: int = 1, replicas: int = 0) -> dict[str, Any]:
    """The composable index template body for one daily collection."""
    if collection in VERSIONED:
        raise ValueError(f"{collection.value} is not kept in daily indices (see versioned_index_body)")
    fields = {**_explicit_fields(), **_COLLECTION_FIELDS.get(collection, {})}
    return {
        "index_patterns": [index_pattern(prefix, collection)],
        "priority": 200,
        "template": {
            "settings": _settings(shards, replicas),
            "aliases": {alias_name(prefix, collection): {}},
            "mappings": _mappings(fields, [{"event_data": {"path_match": "winlog.event_data.*", "mapping": _KEYWORD}}]),
        },
        "_meta": {"managed_by": "socctl", "collection": collection.value},
    }


def versioned_index_body(prefix: str, collection: Collection, *, shards: int = 1, replicas: int = 0
                         ) -> dict[str, Any]:
    """The create-index body (settings, alias, mappings) of a versioned collection's index."""
    fields = {TIMESTAMP_FIELD: _DATE, **_VERSIONED_FIELDS[collection], TEXT_FIELD: _TEXT_INDEX}
    mappings = _mappings(fields, [])
    mappings["_meta"] = {"managed_by": "socctl", "collection": collection.value, "layout": VERSIONED_LAYOUT}
    return {"settings": _settings(shards, replicas), "aliases": {alias_name(prefix, collection): {}},
            "mappings": mappings}


def words(text: str) -> list[str]:
    """The words of `text` as the store's query language defines them: runs of letters, digits and ``_``."""
    return _WORD.findall(text.lower())


def text_of(doc: Any) -> str:
    """The catch-all text of a document: the words of its string and number values (not booleans), lower-cased."""
    return " ".join(words(document_text(doc)))
