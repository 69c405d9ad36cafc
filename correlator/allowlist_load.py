"""An allowlist kept in version control: a YAML file of entries (the keys of `AllowlistEntry.to_dict`; times as
epoch milliseconds or ISO 8601)::

    entries:
      - rule: "*"                          # a rule id, or "*" for every rule
        field: source.ip
        operator: cidr                     # equals (default) | wildcard | cidr | in
        value: 10.20.0.0/16
        author: nguyen.van.a
        reason: internal vulnerability scanner (ticket SOC-1234)
        created_ms: 2026-01-01T00:00:00Z   # optional (default 0)
        expires_ms: 2026-04-01T00:00:00Z   # optional (default never)

Loading is collect-all: each bad entry becomes an `AllowlistFileError` (file, line, ``entries[i].key``, reason) in
`Allowlist.errors` and the good ones load; a second pass rejects a repeated id (the later entry, naming the line of
the first). `strict` raises the first error instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from correlator.allowlist import Allowlist
from correlator.allowlist_entry import AllowlistEntry, AllowlistEntryError, AllowlistError
from correlator.located_yaml import Located, LocatedError, load_located_yaml

__all__ = ["AllowlistFileError", "load_allowlist_file", "parse_allowlist_yaml"]


class AllowlistFileError(LocatedError, AllowlistError):
    """An allowlist file or entry that could not be read: ``file:line: entries[i].key: reason``."""


def load_allowlist_file(path: str | Path, *, strict: bool = False) -> Allowlist:
    """Read an allowlist YAML file (collect-all; see the module doc). Every call reads the file again."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as exc:
        error = AllowlistFileError(f"cannot read: {exc.strerror or exc}", source=source)
    except UnicodeDecodeError as exc:
        error = AllowlistFileError(f"not UTF-8 (byte {exc.start})", source=source)
    else:
        return parse_allowlist_yaml(text, source=source, strict=strict)
    if strict:
        raise error
    return Allowlist(errors=(error,), source=source)


def parse_allowlist_yaml(text: str, *, source: str = "<allowlist>", strict: bool = False) -> Allowlist:
    try:
        items = _entry_items(load_located_yaml(text, source, AllowlistFileError), source)
    except AllowlistFileError as exc:
        if strict:
            raise
        return Allowlist(errors=(exc,), source=source)
    entries: list[AllowlistEntry] = []
    errors: list[AllowlistFileError] = []
    first_line: dict[str, int] = {}
    for index, item in enumerate(items):
        where = f"entries[{index}]"
        if not isinstance(item, Located):
            errors.append(AllowlistFileError(f"must be a mapping, not {item!r}", source=source, key=where))
            continue
        try:
            entry = AllowlistEntry.from_dict(item)
        except AllowlistEntryError as exc:
            errors.append(AllowlistFileError(exc.reason, source=source, line=item.line_of(exc.key),
                                             key=f"{where}.{exc.key}"))
            continue
        # second pass, against the entries before it
        line = item.line_of("id") if "id" in item else item.line
        if entry.id in first_line:
            errors.append(AllowlistFileError(f"duplicate entry id {entry.id!r} (first at line {first_line[entry.id]})",
                                             source=source, line=line, key=f"{where}.id"))
            continue
        first_line[entry.id] = line
        entries.append(entry)
    if strict and errors:
        raise errors[0]
    return Allowlist(tuple(entries), tuple(errors), source)


def _entry_items(doc: Any, source: str) -> list[Any]:
    if doc is None:
        return []
    if not isinstance(doc, Located):
        raise AllowlistFileError("an allowlist file must be a mapping with 'entries'", source=source, line=1)
    for key in doc:
        if key != "entries":
            raise AllowlistFileError("unknown key (expected entries)", source=source, line=doc.line_of(key),
                                     key=str(key))
    items = doc.get("entries")
    if items is None:
        return []
    if not isinstance(items, list):
        raise AllowlistFileError("must be a list of entries", source=source, line=doc.line_of("entries"),
                                 key="entries")
    return items

