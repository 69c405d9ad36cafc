"""The province's own rules (rules/sigma/province, rules/sigma/correlation): each fires on a positive scenario and
stays quiet on its near misses, and the whole rules/sigma folder loads without failures.

A scenario is an NDJSON file under tests/data/rules, read with socctl's own readers; its events go through the
Sigma engine in event-time order, every base-rule alert becomes a `RuleMatch` for the correlation engine, and
`flush()` ends the input. Rules are named by their Sigma `name`. "Fires" counts every rule that matched, including
base rules and chain steps whose own alerts are withheld (`generate`); what socctl outputs is tested separately.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from collectors.files import read_path
from correlator.correlation import CorrelationEngine, CorrelationSet, RuleMatch, load_correlation_paths
from correlator.model import Alert, Event
from correlator.settings import default_placeholders_file
from correlator.sigma.compile import placeholder_values
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import load_rules
from correlator.sigma.sources import load_sources

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules" / "sigma"
OUR_FOLDERS = (RULES / "province", RULES / "correlation")
DATA = REPO / "tests" / "data" / "rules"
# The tests' own C2 list: the shipped rules/placeholders.yml holds whatever the threat feed gives.
C2_LIST = {"c2_domains": ["beacon-c2.example"], "c2_ips": ["192.0.2.66"]}

# --------------------------------------------------------------------------------------------------- scenarios

WIN_FAILURE, LNX_FAILURE, WEB_FAILURE = "province_win_logon_failure", "province_lnx_sshd_failure", \
    "province_web_login_failure"
WIN_SUCCESS, LNX_SUCCESS = "province_win_remote_logon_success", "province_lnx_sshd_success"
BRUTE_FORCE, SPRAYING = "province_brute_force", "province_password_spraying"
STEP, REMOTE_LOGON, BRUTE_SUCCESS = "province_brute_force_step", "province_remote_logon_success", \
    "province_brute_force_success"
WIN_ACCOUNT, LNX_ACCOUNT, ACCOUNT = "win_security_user_account_created", "province_lnx_account_created", \
    "province_account_created"
WIN_ADMIN, LNX_ADMIN, ADMIN = "province_win_admin_group_member_added", "province_lnx_admin_group_member_added", \
    "province_admin_group_member_added"
NEW_ADMIN = "province_new_admin_after_brute_force"
NETWORK_LOGON, ADMIN_SHARE, LATERAL = "province_win_network_logon", "province_win_admin_share_access", \
    "province_lateral_movement_many_hosts"
CLIENT_ERROR, SCAN_BURST = "province_web_client_error", "province_web_scan_burst"
SQLI, TRAVERSAL, WEBSHELL = "web_sql_injection_query", "web_path_traversal", "web_webshell_request"
DEFENDER_FOUND, DEFENDER_FAILED = "win_defender_malware_detected", "win_defender_malware_action_failed"
C2_DNS, C2_FLOW = "net_dns_c2_domain", "net_firewall_c2_ip"
C2_SYSMON_DNS, C2_SYSMON_CONN = "win_sysmon_dns_query_c2_domain", "win_sysmon_network_connection_c2_ip"


@dataclass(frozen=True)
class Scenario:
    file: str
    fires: frozenset[str]  # exactly these of our rules match (base rules, chain steps and correlations)
    near_miss_of: frozenset[str] = frozenset()  # rules this scenario almost triggers

    @property
    def id(self) -> str:
        return self.file.removesuffix(".ndjson")


def scenario(file: str, fires: Iterable[str] = (), near_miss_of: Iterable[str] = ()) -> Scenario:
    return Scenario(file, frozenset(fires), frozenset(near_miss_of))


SCENARIOS = [
    # Windows logon failures
    scenario("win_rdp_brute_force.ndjson", {WIN_FAILURE, STEP, BRUTE_FORCE},
             near_miss_of={SPRAYING, BRUTE_SUCCESS}),
    scenario("win_rdp_failures_below_threshold.ndjson", {WIN_FAILURE, STEP}, near_miss_of={BRUTE_FORCE}),
    scenario("win_rdp_failures_beyond_timespan.ndjson", {WIN_FAILURE, STEP}, near_miss_of={BRUTE_FORCE}),
    scenario("win_failures_local_and_machine_account.ndjson", near_miss_of={WIN_FAILURE}),
    scenario("win_password_spraying.ndjson", {WIN_FAILURE, STEP, SPRAYING}, near_miss_of={BRUTE_FORCE}),
    scenario("win_logons_not_remote.ndjson", near_miss_of={WIN_SUCCESS, REMOTE_LOGON, NETWORK_LOGON}),
    # sshd
    scenario("lnx_ssh_brute_force_then_success.ndjson",
             {LNX_FAILURE, STEP, LNX_SUCCESS, REMOTE_LOGON, BRUTE_SUCCESS}),
    scenario("lnx_ssh_success_from_other_address.ndjson", {LNX_FAILURE, STEP, LNX_SUCCESS, REMOTE_LOGON},
             near_miss_of={BRUTE_SUCCESS}),
    scenario("lnx_ssh_success_too_late.ndjson", {LNX_FAILURE, STEP, LNX_SUCCESS, REMOTE_LOGON},
             near_miss_of={BRUTE_SUCCESS}),
    scenario("lnx_ssh_few_failures_then_success.ndjson", {LNX_FAILURE, LNX_SUCCESS, REMOTE_LOGON},
             near_miss_of={STEP, BRUTE_SUCCESS}),
    scenario("lnx_ssh_spraying_too_few_accounts.ndjson", {LNX_FAILURE, STEP}, near_miss_of={SPRAYING}),
    scenario("lnx_auth_other_messages.ndjson", near_miss_of={LNX_FAILURE, LNX_SUCCESS}),
    # new administrator
    scenario("win_new_admin_after_brute_force.ndjson",
             {WIN_FAILURE, STEP, WIN_SUCCESS, REMOTE_LOGON, BRUTE_SUCCESS, WIN_ACCOUNT, ACCOUNT, WIN_ADMIN, ADMIN,
              NEW_ADMIN}),
    scenario("lnx_new_admin_after_brute_force.ndjson",
             {LNX_FAILURE, STEP, LNX_SUCCESS, REMOTE_LOGON, BRUTE_SUCCESS, LNX_ACCOUNT, ACCOUNT, LNX_ADMIN, ADMIN,
              NEW_ADMIN}),
    scenario("win_new_admin_without_brute_force.ndjson",
             {WIN_SUCCESS, REMOTE_LOGON, WIN_ACCOUNT, ACCOUNT, WIN_ADMIN, ADMIN}, near_miss_of={NEW_ADMIN}),
    scenario("win_account_changes_unprivileged.ndjson", near_miss_of={WIN_ACCOUNT, ACCOUNT, WIN_ADMIN, ADMIN}),
    scenario("lnx_account_changes_unprivileged.ndjson", near_miss_of={LNX_ACCOUNT, LNX_ADMIN}),
    # lateral movement
    scenario("win_lateral_movement_ten_hosts.ndjson",
             {NETWORK_LOGON, ADMIN_SHARE, LATERAL, WIN_SUCCESS, REMOTE_LOGON}),
    scenario("win_network_logons_nine_hosts.ndjson", {NETWORK_LOGON, WIN_SUCCESS, REMOTE_LOGON},
             near_miss_of={LATERAL}),
    scenario("win_shares_not_admin.ndjson", near_miss_of={ADMIN_SHARE}),
    # web portals
    scenario("web_login_brute_force.ndjson", {WEB_FAILURE, CLIENT_ERROR, STEP, BRUTE_FORCE},
             near_miss_of={SCAN_BURST, SPRAYING}),
    scenario("web_login_not_failures.ndjson", {CLIENT_ERROR}, near_miss_of={WEB_FAILURE}),
    scenario("web_sql_injection.ndjson", {SQLI}, near_miss_of={CLIENT_ERROR}),
    scenario("web_sql_words_in_searches.ndjson", near_miss_of={SQLI}),
    scenario("web_path_traversal.ndjson", {TRAVERSAL}),
    scenario("web_dots_not_traversal.ndjson", near_miss_of={TRAVERSAL}),
    scenario("web_webshell.ndjson", {WEBSHELL}),
    scenario("web_webshell_near_misses.ndjson", {CLIENT_ERROR}, near_miss_of={WEBSHELL}),
    # endpoint protection
    scenario("win_defender_malware.ndjson", {DEFENDER_FOUND}, near_miss_of={DEFENDER_FAILED}),
    scenario("win_defender_action_failed.ndjson", {DEFENDER_FAILED}, near_miss_of={DEFENDER_FOUND}),
    scenario("win_defender_other_events.ndjson", near_miss_of={DEFENDER_FOUND, DEFENDER_FAILED}),
    # command and control
    scenario("net_c2_contacts.ndjson", {C2_DNS, C2_FLOW, C2_SYSMON_DNS, C2_SYSMON_CONN}),
    scenario("net_c2_lookalikes.ndjson", near_miss_of={C2_DNS, C2_FLOW, C2_SYSMON_DNS, C2_SYSMON_CONN}),
]
# Scenarios built in the tests below (too many events for a readable file).
INLINE_POSITIVE = {CLIENT_ERROR, SCAN_BURST}
INLINE_NEAR_MISS = {SCAN_BURST}

# ----------------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class RuleDoc:
    path: Path
    doc: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.doc.get("name") or self.path.stem)

    @property
    def is_correlation(self) -> bool:
        return "correlation" in self.doc


def our_rules() -> list[RuleDoc]:
    """Every rule document in our folders (a file may hold several)."""
    out: list[RuleDoc] = []
    for folder in OUR_FOLDERS:
        for path in sorted(folder.glob("*.yml")):
            out.extend(RuleDoc(path, doc) for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc)
    return out


@dataclass(frozen=True)
class Rules:
    sigma: SigmaEngine
    correlations: CorrelationSet
    names: Mapping[str, str]  # rule id -> name, for our rules


@pytest.fixture(scope="module")
def rules() -> Rules:
    sources = load_sources()
    ruleset = load_rules([RULES], sources=sources, placeholders=C2_LIST)
    assert ruleset.errors == [], [str(e) for e in ruleset.errors]
    correlations = load_correlation_paths([RULES])
    assert correlations.errors == (), [str(e) for e in correlations.errors]
    names = {str(r.doc["id"]): r.name for r in our_rules()}
    return Rules(SigmaEngine(ruleset.rules, sources), correlations, names)


def read_events(path: Path) -> list[Event]:
    items = list(read_path(path))
    events = [item for item in items if isinstance(item, Event)]
    assert len(events) == len(items), f"{path.name}: {[i for i in items if not isinstance(i, Event)]}"
    return sorted(events, key=lambda e: e.timestamp_ms)


def detect(rules: Rules, events: list[Event], *, as_output: bool = False) -> list[Alert]:
    """Our rules' alerts for events given in event-time order: each event's Sigma alerts, each base match fed to
    the correlation engine as it comes, and `flush()` at the end.

    `as_output=False`: every match, withheld or not (the correlation engine emits every rule's alerts).
    `as_output=True`: what socctl outputs: base alerts of rules that emit their own, emitted correlation alerts."""
    correlations = rules.correlations if as_output else dataclasses.replace(rules.correlations,
                                                                            withheld=frozenset())
    engine = CorrelationEngine(correlations)
    out: list[Alert] = []
    for event in events:
        for alert in rules.sigma.match(event):
            if alert.rule.id in rules.names and (not as_output or correlations.emits_own_alerts(alert.rule.id)):
                out.append(alert)
            out.extend(engine.process(RuleMatch.from_event(alert.rule.id, event)))
    out.extend(engine.flush())
    return [a for a in out if a.rule.id in rules.names]


def fired(rules: Rules, alerts: Iterable[Alert]) -> set[str]:
    return {rules.names[a.rule.id] for a in alerts}


def by_name(rules: Rules, alerts: Iterable[Alert], name: str) -> list[Alert]:
    return [a for a in alerts if rules.names[a.rule.id] == name]


# ------------------------------------------------------------------------------------------- rules on scenarios


@pytest.mark.parametrize("case", SCENARIOS, ids=lambda s: s.id)
def test_scenario_fires_exactly_its_rules(rules: Rules, case: Scenario) -> None:
    assert fired(rules, detect(rules, read_events(DATA / case.file))) == case.fires
    assert not case.fires & case.near_miss_of


def test_every_rule_has_a_positive_and_a_near_miss_scenario() -> None:
    names = {r.name for r in our_rules()}
    positive: set[str] = set().union(*(s.fires for s in SCENARIOS), INLINE_POSITIVE)
    near_miss: set[str] = set().union(*(s.near_miss_of for s in SCENARIOS), INLINE_NEAR_MISS)
    assert names - positive == set(), "rules without a positive scenario"
    assert names - near_miss == set(), "rules without a near-miss scenario"
    assert (positive | near_miss) - names == set(), "scenarios name rules that do not exist"
    assert sorted(p.name for p in DATA.glob("*.ndjson")) == sorted(s.file for s in SCENARIOS)


def web_requests(tmp_path: Path, count: int, every_s: float, *, status: int = 404) -> list[Event]:
    """`count` requests from one scanner address, `every_s` seconds apart, written as NDJSON and read back."""
    start = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    lines = [orjson.dumps({
        "@timestamp": (start + timedelta(seconds=i * every_s)).isoformat(), "event.dataset": "nginx.access",
        "host.name": "portal01", "source.ip": "203.0.113.120", "http.request.method": "GET",
        "url.original": f"/backup-{i}.zip", "url.path": f"/backup-{i}.zip", "http.response.status_code": status,
        "user_agent.original": "Mozilla/5.0 (compatible; Nuclei)"}) for i in range(count)]
    path = tmp_path / "scan.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return read_events(path)


@pytest.mark.parametrize(("count", "every_s", "status", "expected"), [
    (50, 2, 404, {CLIENT_ERROR, SCAN_BURST}),
    (49, 2, 404, {CLIENT_ERROR}),  # one short
    (50, 2.5, 404, {CLIENT_ERROR}),  # 50 requests over 122.5 s: never 50 within 2 minutes
    (60, 1, 200, set()),  # a busy client, no errors
], ids=["50-in-98s", "49-in-96s", "50-in-122s", "60-answered-200"])
def test_web_scan_burst(rules: Rules, tmp_path: Path, count: int, every_s: float, status: int,
                        expected: set[str]) -> None:
    assert fired(rules, detect(rules, web_requests(tmp_path, count, every_s, status=status))) == expected


# ---------------------------------------------------------------------------------------------- what is output


WITHHELD = {WIN_FAILURE, LNX_FAILURE, WEB_FAILURE, WIN_SUCCESS, LNX_SUCCESS, STEP, REMOTE_LOGON, ACCOUNT, ADMIN,
            NETWORK_LOGON, ADMIN_SHARE, CLIENT_ERROR}


def test_generate_withholds_feeder_rules_and_chain_steps(rules: Rules) -> None:
    withheld = {name for rule_id, name in rules.names.items() if not rules.correlations.emits_own_alerts(rule_id)}
    assert withheld == WITHHELD


OUTPUT = [
    ("win_rdp_brute_force.ndjson", [BRUTE_FORCE]),
    ("web_login_brute_force.ndjson", [BRUTE_FORCE]),
    ("win_password_spraying.ndjson", [SPRAYING]),
    ("lnx_ssh_brute_force_then_success.ndjson", [BRUTE_SUCCESS]),
    ("win_new_admin_after_brute_force.ndjson", [BRUTE_SUCCESS, WIN_ACCOUNT, WIN_ADMIN, NEW_ADMIN]),
    ("lnx_new_admin_after_brute_force.ndjson", [BRUTE_SUCCESS, LNX_ACCOUNT, LNX_ADMIN, NEW_ADMIN]),
    ("win_new_admin_without_brute_force.ndjson", [WIN_ACCOUNT, WIN_ADMIN]),
    ("win_lateral_movement_ten_hosts.ndjson", [LATERAL]),
    ("win_defender_malware.ndjson", [DEFENDER_FOUND] * 3),
]


@pytest.mark.parametrize(("file", "output"), OUTPUT, ids=[f.removesuffix(".ndjson") for f, _ in OUTPUT])
def test_output_after_generate(rules: Rules, file: str, output: list[str]) -> None:
    alerts = detect(rules, read_events(DATA / file), as_output=True)
    assert sorted(rules.names[a.rule.id] for a in alerts) == sorted(output)


def test_no_event_is_output_twice(rules: Rules) -> None:
    """Each detection exists once in rules/sigma: no event of the samples or the scenarios gets two output alerts
    (from any rule there, ours or the older single-event rules)."""
    files = [*sorted(DATA.glob("*.ndjson")), *sorted((REPO / "samples").rglob("*.json"))]
    doubled: dict[str, list[str]] = {}
    for path in files:
        events = (item for item in read_path(path) if isinstance(item, Event))
        for index, event in enumerate(events):
            titles = sorted(a.rule.title for a in rules.sigma.match(event)
                            if rules.correlations.emits_own_alerts(a.rule.id))
            if len(titles) > 1:
                doubled[f"{path.name} event {index}"] = titles
    assert doubled == {}


def test_no_two_rules_share_a_detection() -> None:
    seen: dict[bytes, list[str]] = {}
    for path in sorted(RULES.rglob("*.yml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and "detection" in doc:
                key = orjson.dumps({"logsource": doc.get("logsource"), "detection": doc["detection"]},
                                   option=orjson.OPT_SORT_KEYS, default=str)
                seen.setdefault(key, []).append(f"{path.relative_to(RULES)}: {doc.get('title')}")
    assert [where for where in seen.values() if len(where) > 1] == []


def test_brute_force_alert_names_the_source_and_count(rules: Rules) -> None:
    events = read_events(DATA / "win_rdp_brute_force.ndjson")
    (alert,) = by_name(rules, detect(rules, events), BRUTE_FORCE)
    info = alert.extra["correlation"]
    assert (info["group"], info["value"], info["events_total"]) == ({"source.ip": "203.0.113.50"}, 10, 10)
    assert alert.timestamp_ms == events[-1].timestamp_ms
    assert alert.rule.level == "medium"


def test_spraying_counts_distinct_accounts_from_windows_ecs(rules: Rules) -> None:
    (alert,) = by_name(rules, detect(rules, read_events(DATA / "win_password_spraying.ndjson")), SPRAYING)
    assert alert.extra["correlation"]["group"] == {"source.ip": "203.0.113.80"}
    assert alert.extra["correlation"]["value"] == 5


@pytest.mark.parametrize(("file", "group"), [
    ("lnx_ssh_brute_force_then_success.ndjson", {"source.ip": "198.51.100.23", "host.name": "congdvc-web01"}),
    ("win_new_admin_after_brute_force.ndjson", {"source.ip": "203.0.113.50", "host.name": "srv-motcua01.tinh.gov.vn"}),
], ids=["sshd", "rdp"])
def test_brute_force_success_groups_windows_and_linux_fields_by_alias(rules: Rules, file: str,
                                                                      group: dict[str, str]) -> None:
    (alert,) = by_name(rules, detect(rules, read_events(DATA / file)), BRUTE_SUCCESS)
    assert alert.extra["correlation"]["group"] == group
    assert alert.rule.level == "high"


def test_new_admin_chain_lists_its_four_steps(rules: Rules) -> None:
    (alert,) = by_name(rules, detect(rules, read_events(DATA / "lnx_new_admin_after_brute_force.ndjson")),
                       NEW_ADMIN)
    info = alert.extra["correlation"]
    assert info["group"] == {"host.name": "congdvc-web01"}
    assert {rules.names[r] for r in info["rules"]} == {STEP, REMOTE_LOGON, ACCOUNT, ADMIN}
    assert info["events_total"] == 4  # one alert of each step, oldest first
    assert alert.rule.level == "critical"


def test_lateral_movement_counts_distinct_hosts_per_account(rules: Rules) -> None:
    (alert,) = by_name(rules, detect(rules, read_events(DATA / "win_lateral_movement_ten_hosts.ndjson")), LATERAL)
    assert alert.extra["correlation"]["group"] == {"user.name": "tranvanb"}
    assert alert.extra["correlation"]["value"] == 10


# ------------------------------------------------------------------------------------------------- rule files


def test_rules_folder_loads_without_failures() -> None:
    """Every file in rules/sigma, with the shipped placeholder values: Sigma rules and correlation rules."""
    placeholders_file = default_placeholders_file()
    assert placeholders_file is not None, "rules/placeholders.yml is missing: the |expand rules cannot load"
    placeholders = placeholder_values(yaml.safe_load(placeholders_file.read_text(encoding="utf-8")),
                                      str(placeholders_file))
    ruleset = load_rules([RULES], sources=load_sources(), placeholders=placeholders)
    correlations = load_correlation_paths([RULES])
    failures = [str(e) for e in ruleset.errors] + [str(e) for e in correlations.errors]
    assert failures == [], "\n".join(failures)
    ours = our_rules()
    loaded = {r.meta.id for r in ruleset.rules} | {r.id for r in correlations.rules}
    assert {str(r.doc["id"]) for r in ours} <= loaded
    assert ruleset.correlations == len(correlations.rules) == sum(r.is_correlation for r in ours)


def placeholders_in(texts: Iterable[str]) -> Iterator[str]:
    """Placeholder names in `|expand` values (elsewhere %xx is just percent-encoding)."""
    for text in texts:
        yield from re.findall(r"\|expand: '[^'%]*%(\w+)%[^']*'", text)


def test_placeholders_used_by_our_rules_have_default_values() -> None:
    placeholders_file = default_placeholders_file()
    assert placeholders_file is not None
    shipped = yaml.safe_load(placeholders_file.read_text(encoding="utf-8"))
    used = set(placeholders_in(p.read_text(encoding="utf-8") for folder in OUR_FOLDERS for p in folder.glob("*.yml")))
    assert used == set(C2_LIST)
    assert used <= set(shipped)
    assert all(shipped[name] for name in used)


ATTACK_TAG = re.compile(r"attack\.([a-z-]+|t\d{4}(\.\d{3})?)")


@pytest.mark.parametrize("rule", our_rules(), ids=lambda r: r.name)
def test_rule_metadata(rule: RuleDoc) -> None:
    doc = rule.doc
    assert str(uuid.UUID(str(doc["id"]))) == doc["id"]
    assert doc["author"] == "socctl"
    assert str(doc["date"]) == "2026-11-24"
    assert doc["title"]
    assert doc["description"]
    assert doc["falsepositives"]
    assert doc["level"] in {"informational", "low", "medium", "high", "critical"}
    assert all(ATTACK_TAG.fullmatch(tag) for tag in doc["tags"])
    assert any(re.fullmatch(r"attack\.t\d{4}(\.\d{3})?", tag) for tag in doc["tags"])
    if rule.path.parent.name == "correlation" or rule.is_correlation:
        assert doc.get("name"), "rules in correlation files are referenced by name"
    else:
        assert rule.path.stem == rule.name


def test_rule_ids_and_names_are_unique() -> None:
    ours = our_rules()
    ids = [r.doc["id"] for r in ours]
    names = [r.name for r in ours]
    assert len(set(ids)) == len(ids)
    assert len(set(names)) == len(names)
