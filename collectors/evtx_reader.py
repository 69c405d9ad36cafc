"""EVTX files to `Event | Rejected` with the `evtx` (Rust) parser.

A record's raw text is the JSON the parser renders for it, so its event id is stable across runs. A
corrupt chunk or record becomes a `Rejected` naming the last good EventRecordID, and reading goes on with
the next chunk; a file the parser cannot open at all (not EVTX, unreadable) becomes one `Rejected`.

Two sources give the same events: the native reader (correlator/native: the same parser crate, records taken
apart into the values `normalise_windows` builds, without the JSON round trip through Python), and the `evtx`
package with `normalise_windows`, used when the native extension is absent or disabled (SOCCTL_NATIVE=0). The
native reader hands records of unusual shape back as parsed JSON, which take the package's path from there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import evtx
import orjson

from collectors.errors import CollectorError
from collectors.windows import evtx_event, normalise_windows
from correlator.accel import native_available
from correlator.model import Event, EventOrigin, Rejected

__all__ = ["MAX_CONSECUTIVE_ERRORS", "QuietRecords", "read_evtx"]

# A parser that fails this many times in a row without yielding a record is treated as dead for that file.
MAX_CONSECUTIVE_ERRORS = 64


def _system_record_id(record: Any) -> int | None:
    try:
        value = record["Event"]["System"]["EventRecordID"]
    except (KeyError, TypeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _package_records(where: str, threads: int) -> Iterator[Any]:
    return evtx.PyEvtxParser(where, number_of_threads=threads, indent=False).records_json()


@dataclass
class QuietRecords:
    """Records the native reader may leave unbuilt, and how many it did. `route(channel, event_id)` gives the
    native prefilter of the Sigma rules of that Windows event source when an event in which it finds no literal
    cannot raise an alert (see `SigmaEngine.quiet_prefilter`), else None. Such records are counted in `count`,
    not yielded: for a replay that keeps neither events nor their lines, nothing else reads them. The others
    carry what that prefilter found in them (`Event.prefiltered`), so the engine does not search them again."""

    route: Callable[[str, int], object | None]
    count: int = 0


def _native_records(where: str, quiet: QuietRecords | None = None) -> Iterator[Any]:
    from correlator._native import EvtxRecords

    return EvtxRecords(where, quiet.route) if quiet is not None else EvtxRecords(where)


def read_evtx(path: Path, *, threads: int = 1, native: bool | None = None,
              quiet: QuietRecords | None = None) -> Iterator[Event | Rejected]:
    """Every record of an EVTX file as an `Event`, or a `Rejected` for what cannot be read or normalised.

    `threads` is the package parser's worker count (1 keeps a reader on one core; 0 lets the parser decide;
    the native reader uses one). `native` chooses the reader (default: native when available). `quiet`: the
    native reader counts records no rule can match there instead of yielding them (see `QuietRecords`)."""
    where = str(path)
    native = native_available() if native is None else native
    try:
        records = _native_records(where, quiet) if native else _package_records(where, threads)
    except (OSError, RuntimeError, ValueError) as exc:
        yield Rejected(f"not a readable EVTX file: {exc}", EventOrigin(path=where, format="evtx"))
        return
    last_good: int | None = None
    failures = 0
    while True:
        try:
            item = next(records)
        except StopIteration:
            return
        except RuntimeError as exc:  # the parser's error for a corrupt chunk or record; it can go on after it
            failures += 1
            after = _after(last_good)
            yield Rejected(f"corrupt EVTX data {after}: {exc}", EventOrigin(path=where, format="evtx"))
            if failures >= MAX_CONSECUTIVE_ERRORS:
                yield Rejected(f"gave up on the rest of the file {after}: {failures} errors in a row",
                               EventOrigin(path=where, format="evtx"))
                return
            continue
        except OSError as exc:  # the file went away or cannot be read any more: nothing further to get
            origin = EventOrigin(path=where, format="evtx")
            yield Rejected(f"reading stopped {_after(last_good)}: {exc}", origin)
            return
        failures = 0
        if native:
            if item.__class__ is int:  # a quiet record: only its record id
                assert quiet is not None
                quiet.count += 1
                last_good = item
                continue
            raw, digest, counter, record, parts, prefiltered = item
            if parts is not None:  # normalised natively
                fields, user_count, extra_count, data_count, timestamp_ms = parts
                last_good = counter
                origin = EventOrigin(path=where, record_id=counter, format="evtx")
                yield evtx_event(fields, user_count, extra_count, data_count, timestamp_ms, raw, digest, origin,
                                 prefiltered)
                continue
        elif type(item) is not dict or not isinstance(item.get("data"), str):
            yield Rejected(f"parser returned an unexpected item: {type(item).__name__}",
                           EventOrigin(path=where, format="evtx"))
            continue
        else:
            raw, counter, record = item["data"], item.get("event_record_id"), None
        if record is None:
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                origin = EventOrigin(path=where, record_id=counter, format="evtx")
                yield Rejected(f"parser rendered invalid JSON: {exc}", origin, raw)
                continue
        record_id = _system_record_id(record)
        if record_id is None:
            record_id = counter
        last_good = record_id
        origin = EventOrigin(path=where, record_id=record_id, format="evtx")
        if not isinstance(record, dict):
            yield Rejected("parser rendered a record that is not a JSON object", origin, raw)
            continue
        try:
            yield normalise_windows(record, raw, origin)
        except CollectorError as exc:
            yield Rejected(exc.reason, origin, raw, stage="normalise")


def _after(last_good: int | None) -> str:
    return f"after EventRecordID {last_good}" if last_good is not None else "before the first record"
