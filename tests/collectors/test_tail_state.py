"""The tail registry and the pure decisions made from it: resume, rotation, drain, reconcile; atomic, corrupt."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from collectors.tail_state import (
    FINGERPRINT_BYTES,
    Change,
    DroppedEntry,
    FileIdentity,
    Fingerprint,
    Registry,
    RegistryError,
    Resume,
    TailEntry,
    drain_finished,
    file_change,
    reconcile,
    resume_position,
)

HEAD = b"Nov 20 08:00:01 web01 sshd[1]: Accepted publickey for alice\n" * 30


def test_fingerprint_matches_the_same_file_as_it_grows_not_another() -> None:
    small = Fingerprint.of(HEAD[:100])
    assert small.length == 100
    assert small.matches(HEAD[:FINGERPRINT_BYTES])
    assert not small.matches(HEAD[:99])  # shorter than when it was taken: truncated or another file
    assert not small.matches(b"X" + HEAD[1:FINGERPRINT_BYTES])
    assert Fingerprint.of(HEAD).length == FINGERPRINT_BYTES


@pytest.mark.parametrize(("entry", "head", "size", "expected"), [
    (None, HEAD, 5000, Resume(0, 0)),
    (TailEntry("a", 600, 10, False, Fingerprint.of(HEAD)), HEAD, 5000, Resume(600, 10)),
    (TailEntry("a", 600, 10, True, Fingerprint.of(HEAD)), HEAD, 600, Resume(600, 10, skipping=True)),
    (TailEntry("a", 600, 10, False, Fingerprint.of(HEAD)), b"other" + HEAD, 5000,
     Resume(0, 0, restart_reason="its inode holds another file now (the first bytes differ)")),
    (TailEntry("a", 600, 10, False, Fingerprint.of(HEAD[:500])), HEAD[:500], 500,
     Resume(0, 0, restart_reason="it was truncated (500 bytes, 600 read before)")),
], ids=["unknown", "known", "known-mid-cut-line", "inode-reused", "truncated-while-stopped"])
def test_resume_position(entry: TailEntry | None, head: bytes, size: int, expected: Resume) -> None:
    assert resume_position(entry, head, size) == expected


@pytest.mark.parametrize(("read", "size", "head_matches", "expected"), [
    (100, 100, True, Change.SAME),
    (100, 180, True, Change.GROWN),
    (100, 40, True, Change.TRUNCATED),
    (100, 0, True, Change.TRUNCATED),
    (100, 400, False, Change.REWRITTEN),
], ids=["same", "grown", "copytruncate", "emptied", "truncated-and-regrown"])
def test_file_change(read: int, size: int, head_matches: bool, expected: Change) -> None:
    assert file_change(read, size, head_matches) is expected


@pytest.mark.parametrize(("at_end", "quiet", "wait", "expected"), [
    (True, 5.0, 5.0, True),
    (True, 4.9, 5.0, False),
    (False, 60.0, 5.0, False),
    (True, 0.0, 0.0, True),
], ids=["quiet-long-enough", "written-lately", "not-read-to-its-end", "no-wait"])
def test_drain_finished(at_end: bool, quiet: float, wait: float, expected: bool) -> None:
    assert drain_finished(at_end, quiet, wait) is expected


def test_reconcile_leaves_other_tailers_entries_alone() -> None:
    entries = {"1:10": TailEntry("/var/log/auth.log"), "1:11": TailEntry("/var/log/nginx/access.log"),
               "1:12": TailEntry("/var/log/syslog")}
    merged = reconcile(entries, {"1:10", "1:99"}, lambda path: path.startswith("/var/log/") and "nginx" not in path)
    assert merged.present == {"1:10"}
    assert merged.missing == {"1:12"}


def test_identity_keys_round_trip() -> None:
    identity = FileIdentity(2049, 131074)
    assert FileIdentity.from_key(identity.key) == identity
    with pytest.raises(ValueError, match="not a device:inode key: 'x:1'"):
        FileIdentity.from_key("x:1")


def test_registry_round_trips_and_is_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "state" / "tail.json"
    registry = Registry(path, tail={"1:2": TailEntry("/var/log/auth.log", 812, 9, True, Fingerprint.of(HEAD))},
                        dropped={"1:3": DroppedEntry("/drop/a.evtx", "/drop", "ab" * 32, 4096, 17)})
    registry.save()
    assert sorted(p.name for p in path.parent.iterdir()) == ["tail.json"]  # no temp file left
    loaded = Registry.load(path)
    assert loaded == registry
    assert orjson.loads(path.read_bytes())["version"] == 1


def test_a_missing_registry_is_empty(tmp_path: Path) -> None:
    assert Registry.load(tmp_path / "none.json") == Registry(tmp_path / "none.json")


@pytest.mark.parametrize("content", [
    b"{\"version\": 1, \"tail\": {\"1:2\": {\"path\": \"/a\", \"offs",
    b"[1, 2]",
    b"{\"version\": 7}",
    b"{\"version\": 1, \"tail\": {\"1:2\": {\"path\": \"/a\", \"offset\": \"12\", \"line\": 1, "
    b"\"fingerprint\": {\"length\": 0, \"sha256\": \"\"}}}}",
    b"{\"version\": 1, \"tail\": {\"inode\": {}}}",
], ids=["cut-short", "not-an-object", "other-version", "offset-not-a-number", "bad-key"])
def test_a_corrupt_registry_starts_over_with_a_warning(tmp_path: Path, content: bytes,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tail.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="collectors.tail_state"):
        registry = Registry.load(path)
    assert (registry.tail, registry.dropped, registry.path) == ({}, {}, path)
    assert "starting over: every file is read from its start" in caplog.text
    assert (tmp_path / "tail.json.corrupt").read_bytes() == content
    registry.save()
    assert Registry.load(path) == registry


def test_from_dict_names_what_is_wrong() -> None:
    with pytest.raises(RegistryError, match=r"^<registry>: not a version 1 tail registry \(version 2\)$"):
        Registry.from_dict({"version": 2})
