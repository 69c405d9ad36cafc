"""`socctl playbooks check|list`: collect-all validation with file and line, and the listing."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from correlator.cli import app

GOOD = """
id: pb-test
title: Test playbook
title_vi: Kịch bản thử
incident_type: malware
match: {tags: [attack.execution]}
steps:
  - {id: triage, title: Look at it, layer: L2, due: 30m, evidence: [the alert]}
"""


def test_shipped_playbooks_check_clean() -> None:
    result = CliRunner().invoke(app, ["playbooks", "check", "--json"])
    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.stdout)
    assert doc["failed"] == []
    assert doc["loaded"] == 7


def test_a_bad_playbook_is_reported_with_file_and_line_and_the_others_load(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "bad.yaml").write_text(GOOD.replace("pb-test", "pb-bad").replace("incident_type: malware",
                                                                                  "incident_type: malwar"),
                                       encoding="utf-8")
    result = CliRunner().invoke(app, ["playbooks", "check", str(tmp_path), "--json"])
    assert result.exit_code == 1
    doc = orjson.loads(result.stdout)
    assert doc["loaded"] == 1
    (failure,) = doc["failed"]
    assert failure["path"] == str(tmp_path / "bad.yaml")
    assert failure["line"] == 5
    assert failure["key"] == "incident_type"
    text = CliRunner().invoke(app, ["playbooks", "check", str(tmp_path)])
    assert f"{tmp_path / 'bad.yaml'}:5" in text.output
    assert "playbooks loaded: 1, failed: 1" in text.output


def test_list_shows_steps_and_layers() -> None:
    result = CliRunner().invoke(app, ["playbooks", "list", "--json"])
    assert result.exit_code == 0
    books = {b["id"]: b for b in orjson.loads(result.stdout)}
    assert books["pb-botnet-connection"]["incident_type"] == "botnet"
    assert {step["layer"] for book in books.values() for step in book["steps"]} >= {"L1", "L2"}
