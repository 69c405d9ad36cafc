from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from correlator.cli import scan

RULE = """
rule Hello : test
{
    meta:
        author = "tests"
        description = "says hello"
        severity = "low"
    strings:
        $a = "hello"
    condition:
        $a
}
"""
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-" + b"TEST-FILE!$H+H*"


@pytest.fixture
def run():
    app = typer.Typer()
    scan.register(app)

    @app.callback()
    def _root() -> None:
        """Make `scan` a subcommand, as in socctl."""

    runner = CliRunner()

    def _run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, ["scan", *args], env={"COLUMNS": "300"})

    return _run


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "hello.yar").write_text(RULE)
    return directory


def test_scan_writes_alert_lines(run, rules_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "one.txt").write_bytes(b"hello world")
    (data / "two.txt").write_bytes(b"nothing here")
    (data / "copy.txt").write_bytes(b"hello world")
    out = tmp_path / "alerts.jsonl"

    result = run("--no-default-rules", "--rules", str(rules_dir), "--alerts-out", str(out), str(data))

    assert result.exit_code == 0, result.output
    assert "YARA rules: 1 rules from 1 files, 0 files failed" in result.output
    assert "Scanned 3 files" in result.output
    assert "1 from cache" in result.output
    assert "2 alerts, 0 rejected" in result.output
    assert "hello:Hello" in result.output
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [line["file"]["path"] for line in lines] == [str(data / "copy.txt"), str(data / "one.txt")]
    for line in lines:
        assert line["rule"]["name"] == "Hello"
        assert line["rule"]["namespace"] == "hello"
        assert line["rule"]["level"] == "low"
        assert line["rule"]["kind"] == "yara"
        assert line["file"]["hash"]["sha256"] == hashlib.sha256(b"hello world").hexdigest()
        assert line["yara"]["matches"] == [{"pattern": "$a", "offset": 0, "length": 5}]
        assert line["event"]["kind"] == "alert"


def test_default_rules_are_loaded(run, tmp_path: Path) -> None:
    sample = tmp_path / "eicar.com"
    sample.write_bytes(EICAR)
    out = tmp_path / "alerts.jsonl"

    result = run("--alerts-out", str(out), str(sample))

    assert result.exit_code == 0, result.output
    [line] = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert line["rule"]["id"] == "eicar:EICAR_Test_File"
    assert line["rule"]["level"] == "informational"


def test_default_rules_dir_is_the_repo_rules() -> None:
    expected = Path(__file__).resolve().parents[2] / "rules" / "yara"
    assert scan.default_yara_rules_dir() == expected
    assert sorted(expected.glob("*.yar"))


def test_no_rules_is_a_usage_error(run, tmp_path: Path) -> None:
    result = run("--no-default-rules", str(tmp_path))
    assert result.exit_code == 2
    assert "no YARA rules: pass --rules DIR or drop --no-default-rules" in result.output


def test_only_broken_rules_is_a_usage_error(run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yar"
    bad.write_text("rule { condition: true }")

    result = run("--no-default-rules", "--rules", str(bad), str(tmp_path))

    assert result.exit_code == 2
    assert "0 rules from 0 files, 1 files failed" in result.output
    assert f"{bad}:1" in result.output
    assert "error[E001]: syntax error: expecting identifier, found `{`" in result.output
    assert "no YARA rules loaded from" in result.output


def test_failed_rule_files_and_rejected_paths_are_listed(run, rules_dir: Path, tmp_path: Path) -> None:
    for n in range(25):
        (rules_dir / f"bad{n:02d}.yar").write_text("rule {")
    missing = tmp_path / "missing.bin"

    result = run("--no-default-rules", "--rules", str(rules_dir), "--timeout", "5", str(missing))

    assert result.exit_code == 0, result.output
    assert "1 rules from 1 files, 25 files failed" in result.output
    assert "bad00.yar" in result.output
    assert "bad19.yar" in result.output
    assert "bad20.yar" not in result.output
    assert "... and 5 more" in result.output
    assert "Rejected" in result.output
    assert str(missing) in result.output
    assert "cannot read: No such file or directory" in result.output


def test_bad_timeout_is_a_usage_error(run, rules_dir: Path, tmp_path: Path) -> None:
    result = run("--rules", str(rules_dir), "--timeout", "0", str(tmp_path))
    assert result.exit_code == 2
