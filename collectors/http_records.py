"""The records of one agent batch as `Event | Rejected`: an NDJSON body (one JSON object per line), a JSON array
of objects or a single (pretty-printed) JSON object, as agents post them: Winlogbeat / Elastic Agent ECS documents
(`winlog.*`), Fluent Bit's `http` output (json_lines or json; records with `date` or `@timestamp`), NXLog
`om_http` (flat Windows records: EventTime, Hostname, EventID, Channel, ...), or any other JSON.

Each record is judged on its own, the way `collectors.files` judges a file by its first record (`_classify`), and
made an event by `collectors.json_reader.normalise_record` (Windows shapes by `normalise_windows`, anything else
generically), except a record that only ships a raw line (Fluent Bit's `log`, Filebeat's `message`): that line is
parsed as its file's line would be (`collectors.embedded_lines`); a record whose dataset names a format its line
is not in stays the generic event, with the reason in `error.message` (as an ingest pipeline's grok failure).
Its id is the content hash of the record's own text. A record that cannot be read or normalised is a `Rejected`
with its line (in an array: its element number) and the reason. What the intake adds: the token's hints
(`agent.name`, `organization.id`), the arrival time for a record without one, and, for a generic record, a string
`log` (Fluent Bit's and Docker's line) as ECS `message` (`log` is an object in ECS).

Pure: the same body and source give the same items (ids, reasons, line numbers), at intake, where the counts
answer the agent, and when the journal hands the batch on, also after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

import orjson

from collectors.embedded_lines import embedded_event
from collectors.errors import CollectorError
from collectors.files import _classify
from collectors.json_reader import json_type, normalise_record
from correlator.model import Event, EventOrigin, Rejected

__all__ = ["BatchSource", "Layout", "Record", "batch_items", "record_item", "split_records"]

_UTF8_BOM: Final = b"\xef\xbb\xbf"

Layout = Literal["lines", "array", "document"]


@dataclass(frozen=True, slots=True)
class BatchSource:
    """Who sent a batch and when: the peer's address, the name of the agent's token (the events' `agent.name`
    when they have none), the token's organization (their `organization.id`), the arrival time (the time of a
    record that has none of its own) and the zone of shipped syslog lines' local times (None: UTC)."""

    peer: str
    agent: str
    organization: str | None = None
    received_ms: int = 0
    timezone: str | None = None

    @property
    def path(self) -> str:
        """The events' origin (`log.file.path`): ``http://<peer>/v1/events``."""
        host = f"[{self.peer}]" if ":" in self.peer else self.peer
        return f"http://{host}/v1/events"


class Record(NamedTuple):
    offset: int  # 1-based: the line of an NDJSON body, the element of an array
    raw: bytes  # the record's text (an array element re-serialised)


def split_records(body: bytes) -> tuple[Layout, list[Record]]:
    """The records of a body: a JSON array's elements, a whole-body JSON object, else its non-blank lines."""
    body = body.removeprefix(_UTF8_BOM)
    stripped = body.strip()
    if stripped[:1] in (b"[", b"{"):
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            value = None  # NDJSON (or broken): judged line by line
        if isinstance(value, list):
            return "array", [Record(number, orjson.dumps(item)) for number, item in enumerate(value, 1)]
        if isinstance(value, dict) and b"\n" in stripped:
            return "document", [Record(1, stripped)]
    records = []
    for number, line in enumerate(body.split(b"\n"), 1):
        data = line.strip()
        if data:
            records.append(Record(number, data))
    return "lines", records


def batch_items(body: bytes, source: BatchSource) -> list[Event | Rejected]:
    """Every record of a batch body as an `Event` or a `Rejected`, in order."""
    layout, records = split_records(body)
    unit = "element" if layout == "array" else "line"
    return [record_item(record, unit, source) for record in records]


def record_item(record: Record, unit: str, source: BatchSource) -> Event | Rejected:
    """One record as an `Event` (with the source's hints) or a `Rejected` naming its `unit` ("line", "element")."""
    number, data = record
    origin = EventOrigin(path=source.path, offset=number, format="json")
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected(f"{unit} {number} is not UTF-8: {exc.reason} at column {exc.start + 1}", origin,
                        data.decode("utf-8", "replace"))
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return Rejected(f"invalid JSON on {unit} {number}, column {exc.colno}: {exc.msg}", origin, raw)
    if not isinstance(value, dict):
        return Rejected(f"{unit} {number}: expected a JSON object, got {json_type(value)}", origin, raw)
    origin = EventOrigin(path=origin.path, offset=number, format=_classify(value))
    shipped = (embedded_event(value, raw, origin, source.received_ms, tz=source.timezone)
               if origin.format == "json" else None)
    try:
        event = shipped if isinstance(shipped, Event) else normalise_record(value, raw, origin)
    except CollectorError as exc:
        return Rejected(exc.reason, origin, raw, stage="normalise")
    if isinstance(shipped, Rejected):  # kept as the record it is, the reason its line was not read on it
        event = _with_error(event, shipped.reason)
    if event.timestamp_ms == 0 and source.received_ms:
        event.timestamp_ms = source.received_ms
    return _with_hints(event, source)




def _with_hints(event: Event, source: BatchSource) -> Event:
    """The event with the token's hints: `agent.name` when the record has none, `organization.id` from the
    token always (the credential, not the payload, says which organization sent it). A deferred ECS document
    stays deferred."""
    agent, organization = source.agent, source.organization
    if not event.ecs_deferred:
        _message_from_log(event.ecs, event.fields)
        _apply_hints(event.ecs, event.fields, agent, organization)
        return event

    def build_ecs() -> tuple[dict[str, Any], dict[str, Any]]:
        doc, fields = event.ecs, dict(event.fields)
        _apply_hints(doc, fields, agent, organization)
        return doc, fields

    native = event.native
    if organization is not None and "organization.id" in native:
        native = {**native, "organization.id": organization}
    computer = native.get("Computer")  # the Windows readers' host.name, known without building the document
    return Event(event.id, event.timestamp_ms, event.raw, fields=native, origin=event.origin, ecs_factory=build_ecs,
                 host_name=computer if isinstance(computer, str) else None)


def _with_error(event: Event, reason: str) -> Event:
    """The event with `error.message` (as an Elastic ingest pipeline leaves a line its grok did not match)."""
    if not event.ecs_deferred:
        error = event.ecs.setdefault("error", {})
        if isinstance(error, dict):
            error["message"] = event.fields["error.message"] = reason
        return event

    def build_ecs() -> tuple[dict[str, Any], dict[str, Any]]:
        doc, fields = event.ecs, dict(event.fields)
        error = doc.setdefault("error", {})
        if isinstance(error, dict):
            error["message"] = fields["error.message"] = reason
        return doc, fields

    return Event(event.id, event.timestamp_ms, event.raw, fields=event.native, origin=event.origin,
                 ecs_factory=build_ecs, host_name=event.host_name)


def _message_from_log(doc: dict[str, Any], fields: dict[str, Any]) -> None:
    """Fluent Bit's (and Docker's) `log` key holds the line itself; in ECS `log` is an object (`log.level`, ...)
    and the line is `message`. The record's own `log` stays in the native fields."""
    line = doc.get("log")
    if isinstance(line, str):
        del doc["log"]
        doc.setdefault("message", line)
        fields.setdefault("message", doc["message"])


def _apply_hints(doc: dict[str, Any], fields: dict[str, Any], agent: str, organization: str | None) -> None:
    agent_doc = doc.setdefault("agent", {})
    if isinstance(agent_doc, dict) and agent_doc.get("name") is None and fields.get("agent.name") is None:
        agent_doc["name"] = fields["agent.name"] = agent
    if organization is not None:
        org_doc = doc.get("organization")
        if not isinstance(org_doc, dict):
            org_doc = doc["organization"] = {}
        org_doc["id"] = fields["organization.id"] = organization
