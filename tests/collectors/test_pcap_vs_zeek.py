"""Cross-check of the network sensor against a peer: the Zeek logs OTRF published with the same capture
(lsass_campaign: Metasploit dumping LSASS memory, a Windows host 192.168.1.41 in a lab network).

Zeek saw less than the capture holds: it drops packets whose checksum is wrong by default, and the capturing
host's own outgoing packets carry the placeholder checksums of checksum offload. So Zeek's conn.log often has
only the responder's side (history "^d", state SHR), its http.log has responses without requests (method "-"),
and its dns.log answers without queries. What Zeek did see must be in what we read, field for field; where
Zeek oriented a connection from the responder (it never saw the originator), the pair of endpoints is compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from collectors.pcap import read_file
from correlator.model import Event

pytestmark = pytest.mark.corpus

CAPTURE = ("otrf/lsass_campaign/metasploit_logonpasswords_lsass_memory_dump_pcapng/"
           "metasploit_logonpasswords_lsass_memory_dump.pcapng")
ZEEK_LOGS = "otrf/lsass_campaign/metasploit_logonpasswords_lsass_memory_dump_zeek_logs"


def zeek_log(path: Path) -> list[dict[str, str]]:
    """Rows of a Zeek TSV log as {field: text} ("-" unset, "(empty)" empty); read here, not by our Zeek reader,
    so the comparison does not check a reader against itself."""
    fields: list[str] = []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#fields\t"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            rows.append(dict(zip(fields, line.split("\t"), strict=True)))
    return rows


def get(event: Event, dotted: str) -> Any:
    node: Any = event.ecs
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def endpoints(a: str, a_port: Any, b: str, b_port: Any) -> frozenset[tuple[str, str]]:
    return frozenset({(a, str(a_port)), (b, str(b_port))})


@pytest.fixture(scope="module")
def ours(shared_path: Any) -> dict[str, list[Event]]:
    by_dataset: dict[str, list[Event]] = {}
    for item in read_file(shared_path(CAPTURE)):
        assert isinstance(item, Event), f"the capture should read without rejects: {item}"
        by_dataset.setdefault(get(item, "event.dataset"), []).append(item)
    return by_dataset


@pytest.fixture(scope="module")
def zeek(shared_path: Any) -> Path:
    return shared_path(ZEEK_LOGS)


def test_every_zeek_connection_is_one_of_our_flows(ours: dict[str, list[Event]], zeek: Path) -> None:
    flows = ours["network.flow"]
    ported = {(get(e, "network.transport"), endpoints(get(e, "source.ip"), get(e, "source.port"),
                                                       get(e, "destination.ip"), get(e, "destination.port")))
              for e in flows}
    icmp = {(get(e, "network.transport"), frozenset({get(e, "source.ip"), get(e, "destination.ip")})) for e in flows}
    conns = zeek_log(zeek / "conn.log")
    assert len(conns) > 100
    missing = []
    for row in conns:
        if row["proto"] == "icmp":  # Zeek puts ICMP type/code where ports go; ours has no ports
            transport = "ipv6-icmp" if ":" in row["id.orig_h"] else "icmp"
            found = (transport, frozenset({row["id.orig_h"], row["id.resp_h"]})) in icmp
        else:
            found = (row["proto"], endpoints(row["id.orig_h"], row["id.orig_p"], row["id.resp_h"],
                                             row["id.resp_p"])) in ported
        if not found:
            missing.append(row)
    assert not missing, f"{len(missing)} Zeek connections we have no flow for: {missing[:5]}"
    # Where Zeek saw packets of both sides, the orientation (who started) agrees too. Where it saw one side
    # only (an NTP or LDAP answer whose request it dropped), it took the answering server for the originator.
    oriented = {(get(e, "source.ip"), str(get(e, "source.port")), get(e, "destination.ip"),
                 str(get(e, "destination.port"))) for e in flows}
    both_sides = [r for r in conns if r["proto"] != "icmp" and r["orig_pkts"] != "0" and r["resp_pkts"] != "0"]
    assert len(both_sides) >= 5
    disagree = [r for r in both_sides if (r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"])
                not in oriented]
    assert not disagree, disagree[:5]


def test_zeek_http_responses_match_ours(ours: dict[str, list[Event]], zeek: Path) -> None:
    http = {(get(e, "source.ip"), str(get(e, "source.port")), get(e, "destination.ip"),
             str(get(e, "destination.port"))): e for e in ours["network.http"]}
    rows = zeek_log(zeek / "http.log")
    assert rows
    for row in rows:
        event = http.get((row["id.orig_h"], row["id.orig_p"], row["id.resp_h"], row["id.resp_p"]))
        assert event is not None, f"no HTTP event of ours for Zeek's {row}"
        assert get(event, "http.response.status_code") == int(row["status_code"])
        assert get(event, "http.response.body.bytes") == int(row["response_body_len"])
        # Zeek never saw these requests (bad checksums); we did: the payload download is named.
        assert get(event, "http.request.method") == "GET"
    assert {get(e, "url.path") for e in http.values()} >= {"/winx64_payload.exe"}


def test_zeek_dns_queries_are_ours(ours: dict[str, list[Event]], zeek: Path) -> None:
    queries = {(get(e, "source.ip"), str(get(e, "source.port")), get(e, "destination.ip"),
                str(get(e, "destination.port")), get(e, "dns.id"), get(e, "dns.question.name").lower())
               for e in ours["network.dns"] if get(e, "dns.type") == "query"}
    transactions = {(get(e, "source.ip"), str(get(e, "source.port")), get(e, "dns.id"))
                    for e in ours["network.dns"] if get(e, "dns.type") == "query"}
    rows = zeek_log(zeek / "dns.log")
    named = [r for r in rows if r["query"] != "-"]  # Zeek lower-cases names; we keep them as sent
    assert named
    for row in named:
        key = (row["id.orig_h"], row["id.orig_p"], row["id.resp_h"], row["id.resp_p"], row["trans_id"], row["query"])
        assert key in queries, f"Zeek's DNS query {key} is not among ours"
    # Answers whose query Zeek dropped: we have the query itself.
    for row in rows:
        if row["query"] == "-" and row["id.orig_h"] == "192.168.1.41":
            assert (row["id.orig_h"], row["id.orig_p"], row["trans_id"]) in transactions, row


def test_zeek_tls_sessions_match_ours(ours: dict[str, list[Event]], zeek: Path) -> None:
    tls = {(get(e, "source.ip"), str(get(e, "source.port")), get(e, "destination.ip"),
            str(get(e, "destination.port"))): e for e in ours["network.tls"]}
    rows = zeek_log(zeek / "ssl.log")
    assert rows
    assert {(r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"]) for r in rows} == set(tls)
    for row in rows:
        event = tls[(row["id.orig_h"], row["id.orig_p"], row["id.resp_h"], row["id.resp_p"])]
        assert "TLSv" + get(event, "tls.version").replace(".", "") == row["version"]
        assert get(event, "tls.client.server_name") == (None if row["server_name"] == "-" else row["server_name"])
