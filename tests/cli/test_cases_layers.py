"""`socctl cases l4-draft` and `socctl cases l3-report` over the replayed scenario of tests/cli/conftest.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.cli.conftest import ONE_STOP_SHOP, Inputs, Socctl

pytestmark = pytest.mark.usefixtures("replayed")


def test_l4_draft_of_a_serious_candidate(socctl: Socctl, socctl_json: Callable[..., Any], ids: dict[str, str],
                                         inputs: Inputs) -> None:
    case_id = ids[ONE_STOP_SHOP]
    assert socctl("cases", "assess", case_id, "--cannot-contain", "--reason", "no backups").exit_code == 0
    draft = socctl_json("cases", "l4-draft", case_id, "--assets", str(inputs.assets), "--reporter", "SOC tỉnh")
    assert draft["case_id"] == case_id
    assert draft["reporter"] == "SOC tỉnh"
    assert draft["agency"] == "vp-ubnd"
    assert draft["serious_status"] == "candidate"
    assert [s["id"] for s in draft["systems"]] == ["motcua"]
    assert draft["systems"][0]["security_level"] == 4
    assert draft["alert_count"] >= 1
    assert ONE_STOP_SHOP in draft["hosts"]
    again = socctl_json("cases", "l4-draft", case_id, "--assets", str(inputs.assets), "--reporter", "SOC tỉnh")
    assert again["id"] == draft["id"]  # same case version: same draft id
    text = socctl("cases", "l4-draft", case_id)
    assert text.exit_code == 0, text.output
    assert f"for case {case_id}" in text.stdout


def test_l3_report_lists_every_case_of_the_period(socctl: Socctl, socctl_json: Callable[..., Any],
                                                  ids: dict[str, str]) -> None:
    report = socctl_json("cases", "l3-report", "--since", "2000-01-01T00:00:00Z")
    assert {item["case_id"] for item in report["items"]} == set(ids.values())
    assert report["complete"] is True
    case_id = ids[ONE_STOP_SHOP]
    assert socctl("cases", "escalate", case_id, "L3", "--reason", "needs an independent look").exit_code == 0
    report = socctl_json("cases", "l3-report", "--since", "2000-01-01T00:00:00Z")
    (item,) = [i for i in report["items"] if i["case_id"] == case_id]
    assert item["escalations"] >= 1
    assert item["layer"] == "L3"
    empty = socctl_json("cases", "l3-report", "--since", "1h", "--until", "30m")
    assert empty["items"] == []


def test_l4_draft_of_an_unknown_case(socctl: Socctl) -> None:
    result = socctl("cases", "l4-draft", "case-nope")
    assert result.exit_code == 1
    assert "no case 'case-nope'" in result.output
