"""What only the Elasticsearch backend does: index layout and mappings, refusals that become dead letters, the
spool while the server is unreachable. Against a real local server (the `elasticsearch_url` fixture)."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from elasticsearch import Elasticsearch

from correlator.model import Event, EventOrigin, event_id_for, flatten
from correlator.store import BackendUnavailableError, WriteResult
from correlator.store.documents import event_record, prepare_event
from correlator.store.elasticsearch import ElasticsearchStore, WriterSettings
from correlator.store.errors import VersionConflictError
from correlator.store.retention import RetentionPolicy
from correlator.store.spool import SpoolFullError
from tests.correlator.store.test_contract import T0, build_alert, build_event

DAY = 86_400_000


@pytest.fixture
def prefix() -> str:
    return f"socctl-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def open_es(elasticsearch_url: str, prefix: str) -> Iterator[Callable[..., ElasticsearchStore]]:
    opened: list[ElasticsearchStore] = []

    def factory(**options: Any) -> ElasticsearchStore:
        store = ElasticsearchStore(options.pop("url", elasticsearch_url), prefix=prefix, **options)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()
    ElasticsearchStore(elasticsearch_url, prefix=prefix).drop_all()


@pytest.fixture
def client(elasticsearch_url: str) -> Iterator[Elasticsearch]:
    with Elasticsearch(elasticsearch_url) as es:
        yield es


def flat_event(doc: dict[str, Any], *, ts: int = T0, raw: str | None = None) -> Event:
    text = raw if raw is not None else f"{ts} {sorted(flatten(doc).items())!r}"
    return Event(id=event_id_for(text, ts), timestamp_ms=ts, raw=text, ecs=doc, fields=flatten(doc),
                 origin=EventOrigin(path="/logs/agent.ndjson", offset=1, format="json"))


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_indices_are_per_collection_agency_and_day_behind_an_alias(
    open_es: Callable[..., ElasticsearchStore], client: Elasticsearch, prefix: str
) -> None:
    store = open_es(agency="Sở TT&TT")
    store.write_events([
        build_event("a", ts=T0),
        build_event("b", ts=T0 + DAY),
        build_event("c", ts=T0, extra={"organization": {"id": "UBND-Tinh"}}),
    ])
    assert store.indices() == [
        f"{prefix}-events-so-tt-tt-2023.11.14",
        f"{prefix}-events-so-tt-tt-2023.11.15",
        f"{prefix}-events-ubnd-tinh-2023.11.14",
    ]
    aliases = client.indices.get_alias(index=f"{prefix}-events-*")
    assert all(f"{prefix}-events" in body["aliases"] for body in aliases.values())
    assert store.count("events") == 3
    # Prepared in a detection worker: the same indices, the same catch-all text, no document parsed again.
    prepared = [build_event("d", ts=T0 + DAY, extra={"organization": {"id": "UBND-Tinh"}}), build_event("e", ts=T0)]
    assert store.write_prepared("events", [prepare_event(e) for e in prepared]).written == 2
    assert store.indices() == [
        f"{prefix}-events-so-tt-tt-2023.11.14",
        f"{prefix}-events-so-tt-tt-2023.11.15",
        f"{prefix}-events-ubnd-tinh-2023.11.14",
        f"{prefix}-events-ubnd-tinh-2023.11.15",
    ]
    stored = client.get(index=f"{prefix}-events-ubnd-tinh-2023.11.15", id=prepared[0].id)["_source"]
    assert stored == orjson.loads(event_record(prepared[0]).source)  # the catch-all text is not in _source
    assert store.count("events", '"d ubnd tinh"') == 1  # but searched


def test_mappings_follow_ecs(open_es: Callable[..., ElasticsearchStore], client: Elasticsearch, prefix: str) -> None:
    store = open_es()
    event = build_event("logon", extra={"source": {"ip": "10.1.2.3"}, "process": {"command_line": "cmd /c dir"},
                                        "winlog": {"event_data": {"LogonType": 3, "TargetUserName": "bob"}}})
    store.write_events([event])
    mapping = next(iter(client.indices.get_mapping(index=f"{prefix}-events").values()))["mappings"]
    props = mapping["properties"]
    assert props["@timestamp"]["type"] == "date"
    assert props["source"]["properties"]["ip"]["type"] == "ip"
    assert props["process"]["properties"]["command_line"]["type"] == "text"
    assert props["process"]["properties"]["command_line"]["fields"]["keyword"]["type"] == "keyword"
    assert props["event"]["properties"]["original"] == {"type": "keyword", "index": False, "doc_values": False}
    assert props["host"]["properties"]["name"]["type"] == "keyword"
    event_data = props["winlog"]["properties"]["event_data"]["properties"]
    assert event_data["LogonType"]["type"] == "keyword"  # a number in winlog.event_data is still a keyword
    assert event_data["TargetUserName"]["type"] == "keyword"
    assert store.count("events", "source.ip:10.1.2.3") == 1
    assert store.count("events", "source.ip:10.1.*") == 1
    assert store.count("events", 'process.command_line:"CMD /C DIR"') == 1
    assert store.count("events", "winlog.event_data.LogonType:3") == 1
    assert store.get("events", event.id) == store.search("events").hits[0]  # socctl_text is not in _source
    assert "socctl_text" not in store.search("events").hits[0]


def test_refused_documents_become_dead_letters(open_es: Callable[..., ElasticsearchStore]) -> None:
    store = open_es()
    number = flat_event({"user": {"id": 5}}, raw="first")
    conflict = flat_event({"user": {"id": {"nested": "object"}}}, raw="second")
    bad_ip = flat_event({"source": {"ip": "not-an-address"}}, raw="third")
    huge = flat_event({"message": "x" * (100 * 1024 * 1024)}, raw="x" * 1000)
    surrogate = flat_event({"message": "bad \udcff byte"}, raw="raw \udcff")
    assert store.write_events([number]) == WriteResult(written=1)
    result = store.write_events([conflict, bad_ip, huge, surrogate])
    assert result.written == 0
    reasons = dict(result.failed)
    assert set(reasons) == {conflict.id, bad_ip.id, huge.id, surrogate.id}
    assert "mapper_parsing_exception" in reasons[conflict.id] or "document_parsing_exception" in reasons[conflict.id]
    assert "not-an-address" in reasons[bad_ip.id]
    assert re.fullmatch(r"document is 104,8\d\d,\d{3} characters of JSON, over the store's limit of 16,777,216",
                        reasons[huge.id])
    assert reasons[surrogate.id] == "document is not valid JSON: str is not valid UTF-8: surrogates not allowed"
    letters = store.search("deadletter", limit=10).hits
    assert len(letters) == 4
    assert {letter["stage"] for letter in letters} == {"store"}
    by_id = {doc_id: next(d for d in letters if doc_id in d["reason"]) for doc_id in reasons}
    assert by_id[surrogate.id]["raw"] == "raw \\udcff"
    assert by_id[huge.id]["raw"] == "x" * 1000
    assert "refused by the store: Elasticsearch:" in by_id[conflict.id]["reason"]


def test_total_fields_limit_is_a_dead_letter(open_es: Callable[..., ElasticsearchStore]) -> None:
    store = open_es()
    wide = flat_event({"labels": {f"f{i}": "v" for i in range(2_500)}})
    result = store.write_events([wide])
    assert result.written == 0
    assert "Limit of total fields [2000] has been exceeded" in result.failed[0][1]
    assert store.count("deadletter", "stage:store") == 1


def test_unreachable_without_spool_raises(tmp_path: Path) -> None:
    store = ElasticsearchStore(closed_port_url(), request_timeout=2)
    with store, pytest.raises(BackendUnavailableError) as info:
        store.write_events([build_event("lost?")])
    assert "Elasticsearch is unavailable and this store has no spool: 1 of 1 documents not written" in str(info.value)


def test_spool_keeps_order_and_replays_when_the_server_is_back(
    open_es: Callable[..., ElasticsearchStore], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    events = [build_event(f"event {i}", ts=T0 + i) for i in range(50)]
    down = open_es(url=closed_port_url(), spool_dir=spool, request_timeout=2)
    assert down.write_events(events[:20]) == WriteResult(spooled=20)
    assert down.write_events(events[20:30]) == WriteResult(spooled=10)  # behind the first batch, not tried
    assert down.pending == 30
    down.close()

    up = open_es(spool_dir=spool)
    assert up.pending == 30
    assert up.write_events(events[30:]) == WriteResult(written=20)  # the spool drains first, then this batch
    assert up.pending == 0
    assert up.replayed == 30
    assert up.count("events") == 50
    assert up.write_events(events[:10]) == WriteResult(duplicates=10)


def test_full_spool_refuses_and_keeps_what_it_has(open_es: Callable[..., ElasticsearchStore], tmp_path: Path) -> None:
    down = open_es(url=closed_port_url(), spool_dir=tmp_path / "spool", spool_max_bytes=20_000, request_timeout=2,
                   settings=WriterSettings(down_backoff_s=(60.0, 60.0)))
    assert down.write_events([build_event(f"e{i}") for i in range(5)]).spooled == 5
    with pytest.raises(SpoolFullError):
        down.write_events([build_event(f"f{i}") for i in range(100)])
    assert down.pending == 5


# -- versioned collections, audit, replaced alerts


def case_document(version: int = 1, **fields: Any) -> dict[str, Any]:
    return {"id": "case-1", "version": version, "created_ms": T0, "updated_ms": T0, "title": "Powershell",
            "status": "new", "risk": {"score": 70, "severity": "high", "explanation": "x",
                                      "factors": [{"name": "f", "points": 70}]},
            "timeline": [{"id": "t1", "before": {}, "after": {"field_only_here": {"deep": 1}}}],
            "alerts": [{"id": "a1", "anything": {"goes": True}}], "tasks": [], "evidence": [], **fields}


def test_cases_are_one_index_with_an_explicit_mapping(
    open_es: Callable[..., ElasticsearchStore], client: Elasticsearch, prefix: str
) -> None:
    store = open_es()
    store.put("cases", case_document(), expected_version=None)
    store.put("cases", case_document(2, created_ms=T0 + 400 * DAY), expected_version=1)  # same index, any date
    assert store.indices() == [f"{prefix}-cases-v1"]
    aliases = client.indices.get_alias(index=f"{prefix}-cases-v1")
    assert set(aliases[f"{prefix}-cases-v1"]["aliases"]) == {f"{prefix}-cases"}
    props = client.indices.get_mapping(index=f"{prefix}-cases-v1")[f"{prefix}-cases-v1"]["mappings"]["properties"]
    assert props["status"]["type"] == "keyword"
    assert props["updated_ms"]["type"] == "long"
    assert props["risk"]["properties"]["score"]["type"] == "integer"
    assert props["risk"]["properties"]["factors"] == {"type": "object", "enabled": False}
    assert props["title"]["type"] == "text"
    assert props["title"]["fields"]["keyword"]["type"] == "keyword"
    for bulky in ("timeline", "alerts", "tasks", "evidence"):
        assert props[bulky] == {"type": "object", "enabled": False}, bulky
    assert "field_only_here" not in str(props)  # stored, not mapped
    assert store.get("cases", "case-1")["timeline"][0]["after"] == {"field_only_here": {"deep": 1}}  # type: ignore[index]
    assert store.count("cases", "timeline.id:t1") == 0  # not indexed
    assert store.apply_retention(RetentionPolicy(), T0 + 5_000 * DAY) == []  # not a daily index: never dropped
    assert store.count("cases") == 1


def test_audit_indices_are_daily_and_before_after_are_not_mapped(
    open_es: Callable[..., ElasticsearchStore], client: Elasticsearch, prefix: str
) -> None:
    store = open_es()
    entry = {"id": "e1", "at_ms": T0, "actor": "alice", "action": "assign", "subject": {"kind": "case", "id": "c"},
             "summary": "assigned", "before": {"x_only_before": 1}, "after": {"y_only_after": {"z": "w"}}, "seq": 2}
    assert store.write_audit([entry]) == WriteResult(written=1)
    assert store.indices() == [f"{prefix}-audit-default-2023.11.14"]
    props = client.indices.get_mapping(index=f"{prefix}-audit")[f"{prefix}-audit-default-2023.11.14"]["mappings"][
        "properties"]
    assert props["before"] == {"type": "object", "enabled": False}
    assert props["after"] == {"type": "object", "enabled": False}
    assert props["subject"]["properties"]["id"]["type"] == "keyword"
    assert props["at_ms"]["type"] == "long"


def test_put_checks_the_version_on_the_server(
    open_es: Callable[..., ElasticsearchStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write between the put's read of the stored version and its write makes the server refuse the write."""
    store, other = open_es(), open_es()
    store.put("cases", case_document(), expected_version=None)
    versioned = store._versioned
    read = versioned._stored

    def read_then_race(index: str, doc_id: str) -> dict[str, Any] | None:
        found = read(index, doc_id)
        monkeypatch.setattr(versioned, "_stored", read)  # only the first read races
        other.put("cases", case_document(2, assignee="bob"), expected_version=1)
        return found

    monkeypatch.setattr(versioned, "_stored", read_then_race)
    with pytest.raises(VersionConflictError) as info:
        store.put("cases", case_document(2, status="acknowledged"), expected_version=1)
    assert str(info.value) == "cases/case-1: version conflict: expected 1, stored 2"
    assert store.get("cases", "case-1")["assignee"] == "bob"  # type: ignore[index]


def test_put_is_never_spooled(tmp_path: Path) -> None:
    store = ElasticsearchStore(closed_port_url(), spool_dir=tmp_path / "spool", request_timeout=2)
    with store, pytest.raises(BackendUnavailableError) as info:
        store.put("cases", case_document(), expected_version=None)
    assert "put cases/case-1: Elasticsearch is unavailable" in str(info.value)
    assert store.pending == 0


def test_replaced_alerts_spool_and_replay_as_overwrites(
    open_es: Callable[..., ElasticsearchStore], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    event = build_event("powershell")
    up = open_es()
    first = build_alert(event)
    up.write_alerts([first])
    counted = build_alert(event)
    counted.extra["suppression"] = {"count": 3}
    down = open_es(url=closed_port_url(), spool_dir=spool, request_timeout=2)
    assert down.write_alerts([counted], replace=True) == WriteResult(spooled=1)
    down.close()
    again = open_es(spool_dir=spool)
    assert again.flush() == 0
    assert again.get("alerts", first.id)["suppression"] == {"count": 3}  # type: ignore[index]
    assert again.count("alerts") == 1


def test_a_deleted_cases_index_is_created_again_with_its_mapping(
    open_es: Callable[..., ElasticsearchStore], client: Elasticsearch, prefix: str
) -> None:
    store, admin = open_es(), open_es()
    store.put("cases", case_document(), expected_version=None)
    admin.delete_indices(admin.indices())  # a reset by another process
    store.put("cases", case_document(), expected_version=None)
    assert store.indices() == [f"{prefix}-cases-v1"]
    mapping = client.indices.get_mapping(index=f"{prefix}-cases")[f"{prefix}-cases-v1"]["mappings"]
    assert mapping["properties"]["timeline"] == {"type": "object", "enabled": False}
    assert store.count("cases") == 1
