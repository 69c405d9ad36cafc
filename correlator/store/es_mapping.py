"""Elasticsearch index templates, index names and the catch-all text field (pure data and functions, no I/O).

Indices are time-based, one per collection, agency and UTC day of the documents' ``@timestamp``:
``<prefix>-<collection>-<agency>-YYYY.MM.DD`` (``socctl-events-sotttt-2026.11.24``), each behind the alias
``<prefix>-<collection>`` that searches read. A composable index template per collection gives every new index
its settings and explicit ECS mappings:

- ``@timestamp`` and other ECS dates are ``date``; ``*.ip`` fields of ECS are ``ip`` with a ``keyword``
  sub-field (so ``source.ip:10.0.*`` prefix queries behave as in SQLite); identifiers are ``keyword``;
  messages and command lines are ``text`` with a ``keyword`` sub-field; ``event.original`` is stored but not
  indexed; every other string (``winlog.event_data.*`` included) is a ``keyword`` by dynamic template.
- ``index.mapping.total_fields.limit`` bounds the field count: a document that would pass it is refused by
  Elasticsearch with "Limit of total fields [N] has been exceeded" and goes to the dead letters.
- ``socctl_text``: the free text of the document (the words of its string and number values, lower-cased, as
  `correlator.store.query` defines them), indexed with the built-in ``whitespace`` analyzer and kept out of
  ``_source``. The integration-test distribution has no ``pattern`` tokenizer, so socctl splits the words itself.
"""

from __future__ import annotations

import re
from typing import Any, Final

from correlator.store.base import Collection, document_text
from correlator.store.retention import DEFAULT_PREFIX

__all__ = [
    "DEFAULT_PREFIX",
    "KEYWORD_IGNORE_ABOVE",
    "TEXT_FIELD",
    "TEXT_WITH_KEYWORD",
    "alias_name",
    "index_pattern",
    "index_template",
    "template_name",
    "text_of",
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
    fields[TEXT_FIELD] = {"type": "text", "analyzer": "whitespace", "norms": False, "index_options": "positions"}
    return fields


def template_name(prefix: str, collection: Collection) -> str:
    return f"{prefix}-{collection.value}"


def alias_name(prefix: str, collection: Collection) -> str:
    return f"{prefix}-{collection.value}"


def index_pattern(prefix: str, collection: Collection) -> str:
    return f"{prefix}-{collection.value}-*"


def index_template(prefix: str, collection: Collection, *, shards: int = 1, replicas: int = 0) -> dict[str, Any]:
    """The composable index template body for one collection."""
    return {
        "index_patterns": [index_pattern(prefix, collection)],
        "priority": 200,
        "template": {
            "settings": {
                "index": {
                    "number_of_shards": shards,
                    "number_of_replicas": replicas,
                    "mapping": {"total_fields": {"limit": TOTAL_FIELDS_LIMIT}},
                    "max_result_window": 10_000,
                }
            },
            "aliases": {alias_name(prefix, collection): {}},
            "mappings": {
                "_source": {"excludes": [TEXT_FIELD]},
                "date_detection": False,
                "numeric_detection": False,
                "dynamic_templates": [
                    {"event_data": {"path_match": "winlog.event_data.*", "mapping": _KEYWORD}},
                    {"strings": {"match_mapping_type": "string", "mapping": _KEYWORD}},
                ],
                "properties": _properties(_explicit_fields()),
            },
        },
        "_meta": {"managed_by": "socctl", "collection": collection.value},
    }


def words(text: str) -> list[str]:
    """The words of `text` as the store's query language defines them: runs of letters, digits and ``_``."""
    return _WORD.findall(text.lower())


def text_of(doc: Any) -> str:
    """The catch-all text of a document: the words of its string and number values (not booleans), lower-cased."""
    return " ".join(words(document_text(doc)))
