"""The store contract, run against every backend: the embedded SQLite store and a real Elasticsearch.

The backends are in `conftest.BACKENDS`; every test here runs unchanged against each. The versioned collections
(cases, allowlist) are in `test_contract_versioned`, audit entries and alert replacement in `test_contract_append`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from correlator.model import Alert, Event, EventOrigin, MatchedRule, Rejected, event_id_for, flatten, ms_to_iso
from correlator.store import (
    InvalidRequestError,
    QuerySyntaxError,
    Store,
    StoreError,
    UnknownCollectionError,
    WriteResult,
    deadletter_id_for,
    parse_query,
)
from correlator.store.retention import RetentionPolicy
from tests.correlator.store.conftest import RECEIVED_MS, T0

__all__ = ["T0", "build_alert", "build_event", "build_rejected"]


# -- factories -----------------------------------------------------------------------------------------------


def build_event(
    message: str,
    *,
    ts: int = T0,
    host: Any = "ws-01",
    code: str = "4688",
    dataset: str = "windows.security",
    extra: dict[str, Any] | None = None,
) -> Event:
    ecs: dict[str, Any] = {
        "host": {"name": host},
        "event": {"code": code, "dataset": dataset},
        "message": message,
        **(extra or {}),
    }
    raw = f"{ts} {message}"
    return Event(
        id=event_id_for(raw, ts),
        timestamp_ms=ts,
        raw=raw,
        ecs=ecs,
        fields=flatten(ecs),
        origin=EventOrigin(path="/logs/Security.evtx", offset=ts - T0, format="evtx"),
    )


def build_alert(
    event: Event, *, rule_id: str = "r-1", level: str = "high", tags: tuple[str, ...] = ("attack.t1059",)
) -> Alert:
    rule = MatchedRule(id=rule_id, title=f"Rule {rule_id}", level=level, tags=tags)
    return Alert(
        rule=rule,
        event_id=event.id,
        timestamp_ms=event.timestamp_ms,
        host_name=event.host_name,
        origin=event.origin,
        matched={"process.name": "powershell.exe"},
    )


def build_rejected(reason: str = "invalid XML", *, offset: int = 10, raw: str | None = "<Event>") -> Rejected:
    return Rejected(
        reason=reason,
        origin=EventOrigin(path="/logs/broken.evtx", offset=offset, record_id=7, format="evtx"),
        raw=raw,
        stage="read",
    )


@pytest.fixture
def make_event() -> Callable[..., Event]:
    return build_event


@pytest.fixture
def make_alert() -> Callable[..., Alert]:
    return build_alert


@pytest.fixture
def make_rejected() -> Callable[..., Rejected]:
    return build_rejected


def as_json(doc: dict[str, Any]) -> Any:
    """A document as it comes back from a store: through JSON."""
    return orjson.loads(orjson.dumps(doc))


# The corpus: indexes into this list name the expected hits below.
CORPUS_SPECS: list[dict[str, Any]] = [
    {
        "message": "powershell.exe -enc SQBFAFgA",
        "ts": T0,
        "host": "WS-01",
        "extra": {
            "process": {"name": "powershell.exe", "pid": 4242},
            "user": {"name": "alice"},
            "tags": ["lateral", "admin"],
        },
    },
    {
        "message": "cmd.exe /c whoami",
        "ts": T0 + 1_000,
        "host": "ws-02",
        "extra": {"process": {"name": "cmd.exe", "pid": 17}, "user": {"name": "bob"}},
    },
    {
        "message": "Special privileges assigned to new logon",
        "ts": T0 + 2_000,
        "host": "dc-01",
        "code": "4672",
        "extra": {"user": {"name": "Administrator"}, "winlog": {"event_id": 4672, "elevated": True}},
    },
    {
        "message": "An account failed to log on",
        "ts": T0 + 3_000,
        "host": "dc-01",
        "code": "4625",
        "extra": {"user": {"name": "alice"}, "source": {"ip": "10.0.0.5"}},
    },
    {
        "message": "Sysmon network connection to 10.0.0.5",
        "ts": T0 + 300_000,
        "host": "ws-01",
        "code": "3",
        "dataset": "windows.sysmon_operational",
        "extra": {"process": {"name": "powershell.exe"}, "destination": {"port": 443}},
    },
]


@pytest.fixture
def corpus(store: Store) -> list[Event]:
    events = [build_event(**spec) for spec in CORPUS_SPECS]
    assert store.write_events(events) == WriteResult(written=len(events))
    return events


def hit_ids(hits: list[dict[str, Any]]) -> list[str]:
    return [hit["event"]["id"] for hit in hits]


# -- writes --------------------------------------------------------------------------------------------------


def test_write_events_counts_new_documents(store: Store, make_event: Callable[..., Event]) -> None:
    events = [make_event(f"event {i}", ts=T0 + i) for i in range(3)]
    assert store.write_events(events) == WriteResult(written=3, duplicates=0, failed=[])
    assert store.count("events") == 3


def test_rewriting_events_counts_duplicates(store: Store, make_event: Callable[..., Event]) -> None:
    events = [make_event(f"event {i}", ts=T0 + i) for i in range(3)]
    store.write_events(events)
    assert store.write_events([*events, make_event("new one")]) == WriteResult(written=1, duplicates=3)
    assert store.count("events") == 4


def test_duplicate_within_one_batch(store: Store, make_event: Callable[..., Event]) -> None:
    event = make_event("twice")
    assert store.write_events([event, event]) == WriteResult(written=1, duplicates=1)


def test_duplicate_write_does_not_change_the_stored_document(
    store: Store, make_event: Callable[..., Event]
) -> None:
    original = make_event("first version", host="ws-01")
    store.write_events([original])
    changed = make_event("first version", host="ws-99")
    assert changed.id == original.id
    assert store.write_events([changed]) == WriteResult(duplicates=1)
    stored = store.get("events", original.id)
    assert stored is not None
    assert stored["host"]["name"] == "ws-01"
    assert store.count("events", "host.name:ws-99") == 0


def test_get_returns_the_event_document(store: Store, make_event: Callable[..., Event]) -> None:
    event = make_event("hello", extra={"user": {"name": "alice"}})
    store.write_events([event])
    assert store.get("events", event.id) == as_json(event.to_document())
    assert store.get("events", "0" * 32) is None


def test_empty_batch_writes_nothing(store: Store) -> None:
    assert store.write_events([]) == WriteResult()
    assert store.count("events") == 0


def test_refused_documents_are_reported_and_the_rest_written(
    store: Store, make_event: Callable[..., Event]
) -> None:
    good = make_event("fine")
    object_host = make_event("host is an object", host={"name": "x"})
    surrogate = make_event("lone surrogate \ud800")
    result = store.write_events([good, object_host, surrogate])
    assert result.written == 1
    assert result.duplicates == 0
    assert result.failed == [
        (object_host.id, "host.name must be a string or a number, not dict"),
        (surrogate.id, "document is not valid JSON: str is not valid UTF-8: surrogates not allowed"),
    ]
    assert store.get("events", good.id) is not None
    assert store.get("events", object_host.id) is None


def test_alerts_write_dedupe_and_get(
    store: Store, make_event: Callable[..., Event], make_alert: Callable[..., Alert]
) -> None:
    event = make_event("powershell")
    alert = make_alert(event)
    assert store.write_alerts([alert]) == WriteResult(written=1)
    assert store.write_alerts([make_alert(event)]) == WriteResult(duplicates=1)
    assert store.get("alerts", alert.id) == as_json(alert.to_dict())
    other_rule = make_alert(event, rule_id="r-2", level="low")
    assert store.write_alerts([other_rule]) == WriteResult(written=1)
    assert store.count("alerts", f"event.id:{event.id}") == 2
    assert store.count("alerts", "rule.level:HIGH") == 1


def test_dead_letters_get_a_content_id_and_the_time_received(
    store: Store, make_rejected: Callable[..., Rejected]
) -> None:
    item = make_rejected()
    assert store.write_rejected([item], received_ms=T0) == WriteResult(written=1)
    doc_id = deadletter_id_for(item)
    assert doc_id == deadletter_id_for(make_rejected())
    assert store.get("deadletter", doc_id) == {
        **item.to_dict(),
        "@timestamp": ms_to_iso(T0),
        "event": {"id": doc_id, "kind": "pipeline_error"},
    }


def test_retried_dead_letter_is_a_duplicate_and_keeps_its_first_time(
    store: Store, make_rejected: Callable[..., Rejected]
) -> None:
    store.write_rejected([make_rejected()], received_ms=T0)
    assert store.write_rejected([make_rejected()], received_ms=T0 + 5_000) == WriteResult(duplicates=1)
    assert store.write_rejected([make_rejected(offset=11)], received_ms=T0) == WriteResult(written=1)
    doc = store.get("deadletter", deadletter_id_for(make_rejected()))
    assert doc is not None
    assert doc["@timestamp"] == ms_to_iso(T0)


def test_dead_letter_time_defaults_to_the_store_clock(
    store: Store, make_rejected: Callable[..., Rejected]
) -> None:
    store.write_rejected([make_rejected(raw=None)])
    assert store.search("deadletter", "reason:\"invalid XML\"").hits[0]["@timestamp"] == ms_to_iso(RECEIVED_MS)
    assert store.count("deadletter", since_ms=RECEIVED_MS, until_ms=RECEIVED_MS + 1) == 1


# -- search --------------------------------------------------------------------------------------------------

QUERY_CASES = [
    ("", [0, 1, 2, 3, 4]),
    ("powershell", [0, 4]),
    ("POWERSHELL", [0, 4]),
    ("whoami", [1]),
    ('"failed to log"', [3]),
    ('"log failed"', []),
    ("powersh*", [0, 4]),
    ("cmd.exe", [1]),
    ("nosuchword", []),
    ("host.name:dc-01", [2, 3]),
    ("host.name:DC-01", [2, 3]),
    ("host.name:ws-0*", [0, 1, 4]),
    ("event.code:4688", [0, 1]),
    ("user.name:ALICE", [0, 3]),
    ("user.name:ali*", [0, 3]),
    ('process.name:"cmd.exe"', [1]),
    ('message:"An account failed to log on"', [3]),
    ('message:"an account failed"', []),
    ("process.pid:4242", [0]),
    ("winlog.event_id:4672", [2]),
    ("winlog.elevated:true", [2]),
    ("destination.port:443", [4]),
    ("tags:admin", [0]),
    ("source.ip:*", [3]),
    ("missing.field:x", []),
    ("event.code:4688 AND user.name:bob", [1]),
    ("event.code:4688 bob", [1]),
    ("host.name:dc-01 OR process.name:cmd.exe", [1, 2, 3]),
    ("NOT host.name:dc-01", [0, 1, 4]),
    ("NOT source.ip:*", [0, 1, 2, 4]),
    ("NOT user.name:alice", [1, 2, 4]),
    ("powershell AND NOT event.dataset:windows.sysmon_operational", [0]),
    ("(host.name:dc-01 OR host.name:ws-02) AND NOT alice", [1, 2]),
    ("(whoami OR privileges) AND NOT Special", [1]),
    ("alice OR whoami OR host.name:ws-01", [0, 1, 3, 4]),
]


@pytest.mark.parametrize(("query", "expected"), QUERY_CASES, ids=[case[0] or "<empty>" for case in QUERY_CASES])
def test_search_query_language(store: Store, corpus: list[Event], query: str, expected: list[int]) -> None:
    page = store.search("events", query, sort="@timestamp")
    assert hit_ids(page.hits) == [corpus[i].id for i in expected]
    assert page.total == len(expected)
    assert store.count("events", query) == len(expected)


def test_search_by_document_id(store: Store, corpus: list[Event]) -> None:
    page = store.search("events", f"event.id:{corpus[2].id}")
    assert hit_ids(page.hits) == [corpus[2].id]


def test_search_accepts_a_parsed_query(store: Store, corpus: list[Event]) -> None:
    assert hit_ids(store.search("events", parse_query("whoami")).hits) == [corpus[1].id]


def test_search_hits_are_the_stored_documents(store: Store, corpus: list[Event]) -> None:
    page = store.search("events", "whoami")
    assert page.hits == [as_json(corpus[1].to_document())]


def test_time_range_is_since_inclusive_until_exclusive(store: Store, corpus: list[Event]) -> None:
    page = store.search("events", since_ms=T0 + 1_000, until_ms=T0 + 3_000, sort="@timestamp")
    assert hit_ids(page.hits) == [corpus[1].id, corpus[2].id]
    assert store.count("events", since_ms=T0 + 3_000) == 2
    assert store.count("events", until_ms=T0) == 0
    assert store.count("events", "dc-01", since_ms=T0 + 2_500) == 1


def test_paging_keeps_the_total(store: Store, corpus: list[Event]) -> None:
    pages = [store.search("events", limit=2, offset=offset) for offset in (0, 2, 4, 6)]
    assert [page.total for page in pages] == [5, 5, 5, 5]
    assert [hit_ids(page.hits) for page in pages] == [
        [corpus[4].id, corpus[3].id],
        [corpus[2].id, corpus[1].id],
        [corpus[0].id],
        [],
    ]
    assert store.search("events", limit=0).total == 5


def by_id(events: list[Event], *indexes: int) -> list[str]:
    return sorted(events[i].id for i in indexes)


def test_sort_orders(store: Store, corpus: list[Event]) -> None:
    assert hit_ids(store.search("events").hits) == [corpus[i].id for i in (4, 3, 2, 1, 0)]
    assert hit_ids(store.search("events", sort="@timestamp").hits) == [corpus[i].id for i in range(5)]
    # Keyword sort is by exact value (binary: upper case first); ties by id; documents without the field last.
    assert hit_ids(store.search("events", sort="host.name").hits) == [
        corpus[0].id, *by_id(corpus, 2, 3), corpus[4].id, corpus[1].id,
    ]
    assert hit_ids(store.search("events", sort="-user.name").hits) == [
        corpus[1].id, *by_id(corpus, 0, 3), corpus[2].id, corpus[4].id,
    ]


def test_equal_timestamps_are_ordered_by_id(store: Store, make_event: Callable[..., Event]) -> None:
    events = [make_event(f"same time {i}") for i in range(6)]
    store.write_events(events)
    expected = sorted(event.id for event in events)
    assert hit_ids(store.search("events").hits) == expected
    assert hit_ids(store.search("events", sort="@timestamp").hits) == expected


# -- aggregations --------------------------------------------------------------------------------------------


def test_terms_on_an_indexed_field(store: Store, corpus: list[Event]) -> None:
    assert store.terms("events", "host.name") == [("dc-01", 2), ("WS-01", 1), ("ws-01", 1), ("ws-02", 1)]
    assert store.terms("events", "host.name", "event.code:4688", size=1) == [("WS-01", 1)]
    assert store.terms("events", "event.code", since_ms=T0 + 2_000) == [("3", 1), ("4625", 1), ("4672", 1)]


def test_terms_on_document_fields(store: Store, corpus: list[Event]) -> None:
    assert store.terms("events", "user.name") == [("alice", 2), ("Administrator", 1), ("bob", 1)]
    assert store.terms("events", "tags") == [("admin", 1), ("lateral", 1)]
    assert store.terms("events", "process.pid") == [(17, 1), (4242, 1)]
    assert store.terms("events", "winlog.elevated") == [(True, 1)]
    assert store.terms("events", "no.such.field") == []


def test_terms_on_alerts(
    store: Store, make_event: Callable[..., Event], make_alert: Callable[..., Alert]
) -> None:
    events = [make_event(f"e{i}", ts=T0 + i) for i in range(3)]
    alerts = [make_alert(events[0]), make_alert(events[1]), make_alert(events[2], rule_id="r-2", level="low")]
    store.write_alerts(alerts)
    assert store.terms("alerts", "rule.id") == [("r-1", 2), ("r-2", 1)]
    assert store.terms("alerts", "rule.tags") == [("attack.t1059", 3)]


def test_date_histogram_buckets_align_to_the_epoch_and_fill_gaps(store: Store, corpus: list[Event]) -> None:
    start = T0 - 20_000
    assert store.date_histogram("events", 60_000) == [
        (start, 4),
        (start + 60_000, 0),
        (start + 120_000, 0),
        (start + 180_000, 0),
        (start + 240_000, 0),
        (start + 300_000, 1),
    ]
    assert store.date_histogram("events", 1_000, "host.name:dc-01") == [(T0 + 2_000, 1), (T0 + 3_000, 1)]
    assert store.date_histogram("events", 60_000, since_ms=T0 + 60_000) == [(start + 300_000, 1)]
    assert store.date_histogram("events", 60_000, "nosuchword") == []


def test_date_histogram_refuses_too_many_buckets(store: Store, corpus: list[Event]) -> None:
    with pytest.raises(InvalidRequestError) as info:
        store.date_histogram("events", 1)
    assert str(info.value) == "date histogram would have 300001 buckets (max 65536); use a larger interval"


# -- errors --------------------------------------------------------------------------------------------------


def test_bad_query_raises_with_position(store: Store, corpus: list[Event]) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        store.search("events", "host.name:x AND (a")
    assert str(info.value) == "unclosed '(' at column 17: 'host.name:x AND (a'"
    assert info.value.position == 16
    assert isinstance(info.value, StoreError)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda s: s.search("evnts"),
            UnknownCollectionError,
            "unknown collection 'evnts' (expected one of: events, alerts, deadletter, cases, allowlist, audit)",
        ),
        (lambda s: s.get("case", "x"), UnknownCollectionError,
         "unknown collection 'case' (expected one of: events, alerts, deadletter, cases, allowlist, audit)"),
        (lambda s: s.search("events", sort="--x"), InvalidRequestError,
         "invalid sort '--x': expected a field name, optionally after '-'"),
        (lambda s: s.search("events", limit=9_000, offset=1_001), InvalidRequestError,
         "offset + limit = 10001 exceeds the result window of 10000"),
        (lambda s: s.search("events", limit=-1), InvalidRequestError,
         "limit and offset must be >= 0, got limit=-1, offset=0"),
        (lambda s: s.count("events", since_ms=2, until_ms=1), InvalidRequestError,
         "empty time range: since_ms 2 is after until_ms 1"),
        (lambda s: s.terms("events", "host..name"), InvalidRequestError, "invalid field name 'host..name'"),
        (lambda s: s.terms("events", "host.name", size=0), InvalidRequestError,
         "terms size must be >= 1, got 0"),
        (lambda s: s.date_histogram("events", 0), InvalidRequestError, "interval_ms must be >= 1, got 0"),
    ],
    ids=["search-collection", "get-collection", "sort", "window", "limit", "time-range", "terms-field",
         "terms-size", "interval"],
)
def test_invalid_requests(
    store: Store, call: Callable[[Store], object], error: type[StoreError], message: str
) -> None:
    with pytest.raises(error) as info:
        call(store)
    assert str(info.value) == message


def test_closed_store_refuses_calls(store: Store) -> None:
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(StoreError):
        store.count("events")


# -- retention -----------------------------------------------------------------------------------------------

DAY = 86_400_000


def test_retention_deletes_by_agency_level(store: Store, make_event: Callable[..., Event]) -> None:
    now = T0 + 500 * DAY
    old_a = make_event("old a", ts=now - 40 * DAY, extra={"organization": {"id": "SO-A"}})
    new_a = make_event("new a", ts=now - 10 * DAY, extra={"organization": {"id": "SO-A"}})
    old_b = make_event("old b", ts=now - 40 * DAY, extra={"organization": {"id": "so-b"}})
    ancient = make_event("ancient, no agency", ts=now - 400 * DAY)
    store.write_events([old_a, new_a, old_b, ancient])
    policy = RetentionPolicy.from_dict({"agencies": {"so-a": 2, "so-b": 5}})

    planned = store.apply_retention(policy, now, dry_run=True)
    assert sorted((p.collection, p.agency, p.level, p.documents, p.deleted) for p in planned) == [
        ("events", "default", 5, 1, False),
        ("events", "so-a", 2, 1, False),
    ]
    assert store.count("events") == 4

    done = store.apply_retention(policy, now)
    assert sorted((p.agency, p.documents, p.deleted) for p in done) == [("default", 1, True), ("so-a", 1, True)]
    assert {hit["message"] for hit in store.search("events").hits} == {"new a", "old b"}
    assert store.count("events", "old") == 1  # the free-text index forgot the deleted documents too
    assert store.apply_retention(policy, now) == []


def test_free_text_skips_the_raw_record(store: Store) -> None:
    doc = {"message": "logon ok", "host": {"name": "ws-01"}}
    event = Event(id=event_id_for("zebrafish raw", T0), timestamp_ms=T0, raw="<Event>zebrafish raw</Event>", ecs=doc,
                  fields=flatten(doc), origin=EventOrigin(path="/x.log", offset=1, format="json"))
    store.write_events([event])
    assert store.count("events", "logon") == 1
    assert store.count("events", "zebrafish") == 0
    assert store.get("events", event.id)["event"]["original"] == "<Event>zebrafish raw</Event>"  # type: ignore[index]
