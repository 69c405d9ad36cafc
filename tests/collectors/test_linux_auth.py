"""Linux auth/secure messages to ECS as Filebeat's system/auth module maps them: every pattern with its exact
fields, the split between system.auth and system.syslog, and the shape the province's Linux rules expect."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.generic import flat_fields
from collectors.linux_auth import auth_fields, is_auth_message, to_ecs
from collectors.syslog_parse import parse_syslog

RECEIVED = 1_795_000_000_000  # 2026-11-18T11:06:40Z
RULE_DATA = Path(__file__).resolve().parents[1] / "data" / "rules"
BASE = {"event.module": "system", "event.dataset": "system.auth", "event.kind": "event"}
SSH_LOGIN_FAILURE = {"event.category": ["authentication"], "event.type": ["info"], "event.action": "ssh_login",
                     "event.outcome": "failure"}
SSH_END = {"event.category": ["network"], "event.type": ["connection", "end"], "event.action": "ssh_disconnect"}


def fields_of(tag: str, text: str) -> dict[str, Any] | None:
    line = f"Nov 18 09:15:02 congdvc-web01 {tag}: {text}"
    return auth_fields(parse_syslog(line, received_ms=RECEIVED))


def source(ip: str, port: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"source.ip": ip, "related.ip": [ip]}
    if port is not None:
        out["source.port"] = port
    return out


CASES = [
    # ------------------------------------------------------------------------------------------------- sshd
    pytest.param(
        "sshd[2211]", "Accepted password for deploy from 10.20.0.8 port 40100 ssh2",
        {"system.auth.ssh.event": "Accepted", "system.auth.ssh.method": "password", "user.name": "deploy",
         **source("10.20.0.8", 40100), "event.category": ["authentication", "session"], "event.type": ["info"],
         "event.action": "ssh_login", "event.outcome": "success", "related.user": ["deploy"]},
        id="sshd-accepted-password"),
    pytest.param(
        "sshd[2211]", "Accepted publickey for deploy from 10.20.0.8 port 40100 ssh2: ED25519 SHA256:Qz5m0b+7vXg",
        {"system.auth.ssh.event": "Accepted", "system.auth.ssh.method": "publickey", "user.name": "deploy",
         "system.auth.ssh.signature": "ED25519 SHA256:Qz5m0b+7vXg", **source("10.20.0.8", 40100),
         "event.category": ["authentication", "session"], "event.type": ["info"], "event.action": "ssh_login",
         "event.outcome": "success", "related.user": ["deploy"]},
        id="sshd-accepted-publickey"),
    pytest.param(
        "sshd-session[2211]", "Accepted keyboard-interactive/pam for nguyenvana from 2001:db8::15 port 51000 ssh2",
        {"system.auth.ssh.event": "Accepted", "system.auth.ssh.method": "keyboard-interactive/pam",
         "user.name": "nguyenvana", **source("2001:db8::15", 51000), "event.category": ["authentication", "session"],
         "event.type": ["info"], "event.action": "ssh_login", "event.outcome": "success",
         "related.user": ["nguyenvana"]},
        id="sshd-session-accepted-keyboard-interactive"),
    pytest.param(
        "sshd[2211]", "Failed password for root from 198.51.100.23 port 40022 ssh2",
        {"system.auth.ssh.event": "Failed", "system.auth.ssh.method": "password", "user.name": "root",
         **source("198.51.100.23", 40022), **SSH_LOGIN_FAILURE, "related.user": ["root"]},
        id="sshd-failed-password"),
    pytest.param(
        "sshd[2211]", "Failed password for invalid user oracle from 198.51.100.23 port 40022 ssh2",
        {"system.auth.ssh.event": "Failed", "system.auth.ssh.method": "password", "user.name": "oracle",
         **source("198.51.100.23", 40022), **SSH_LOGIN_FAILURE, "related.user": ["oracle"]},
        id="sshd-failed-invalid-user"),
    pytest.param(
        "sshd[2211]", "Failed none for invalid user  from 198.51.100.23 port 40022 ssh2",
        {"system.auth.ssh.event": "Failed", "system.auth.ssh.method": "none", **source("198.51.100.23", 40022),
         **SSH_LOGIN_FAILURE},
        id="sshd-failed-empty-user"),
    pytest.param(
        "sshd[2211]", "Invalid user admin test from 198.51.100.23 port 40022",
        {"system.auth.ssh.event": "Invalid", "user.name": "admin test", **source("198.51.100.23", 40022),
         **SSH_LOGIN_FAILURE, "related.user": ["admin test"]},
        id="sshd-invalid-user-with-space"),
    pytest.param(
        "sshd[2211]", "Connection closed by 198.51.100.23 port 40022 [preauth]",
        {"system.auth.ssh.event": "Connection closed", **source("198.51.100.23", 40022), **SSH_END},
        id="sshd-connection-closed"),
    pytest.param(
        "sshd[2211]", "Connection closed by invalid user admin 198.51.100.23 port 40022 [preauth]",
        {"system.auth.ssh.event": "Connection closed", "user.name": "admin", **source("198.51.100.23", 40022),
         **SSH_END, "related.user": ["admin"]},
        id="sshd-connection-closed-invalid-user"),
    pytest.param(
        "sshd[2211]", "Connection closed by authenticating user root 198.51.100.23 port 40022 [preauth]",
        {"system.auth.ssh.event": "Connection closed", "user.name": "root", **source("198.51.100.23", 40022),
         **SSH_END, "related.user": ["root"]},
        id="sshd-connection-closed-authenticating-user"),
    pytest.param(
        "sshd[2211]", "Disconnected from user deploy 10.20.0.8 port 40100",
        {"system.auth.ssh.event": "Disconnected", "user.name": "deploy", **source("10.20.0.8", 40100), **SSH_END,
         "related.user": ["deploy"]},
        id="sshd-disconnected-user"),
    pytest.param(
        "sshd[2211]", "Disconnected from invalid user oracle 198.51.100.23 port 40022 [preauth]",
        {"system.auth.ssh.event": "Disconnected", "user.name": "oracle", **source("198.51.100.23", 40022),
         **SSH_END, "related.user": ["oracle"]},
        id="sshd-disconnected-invalid-user"),
    pytest.param(
        "sshd[2211]", "Received disconnect from 198.51.100.23 port 40022:11: Bye Bye [preauth]",
        {"system.auth.ssh.event": "Received disconnect", **source("198.51.100.23", 40022), **SSH_END},
        id="sshd-received-disconnect"),
    pytest.param(
        "sshd[2211]", "Did not receive identification string from 203.0.113.50 port 61000",
        {"system.auth.ssh.dropped_ip": "203.0.113.50", **source("203.0.113.50", 61000),
         "event.category": ["network"], "event.type": ["connection", "end"], "event.action": "ssh_dropped_connection"},
        id="sshd-dropped"),
    pytest.param(
        "sshd[2211]", "Failed password for root from scanner.example port 40022 ssh2",
        {"system.auth.ssh.event": "Failed", "system.auth.ssh.method": "password", "user.name": "root",
         "source.domain": "scanner.example", "source.port": 40022, **SSH_LOGIN_FAILURE, "related.user": ["root"]},
        id="sshd-host-name-is-source-domain"),
    pytest.param(
        "sshd[2211]", "message repeated 3 times: [ Failed password for root from 198.51.100.23 port 40022 ssh2]",
        {"system.auth.ssh.event": "Failed", "system.auth.ssh.method": "password", "user.name": "root",
         **source("198.51.100.23", 40022), **SSH_LOGIN_FAILURE, "related.user": ["root"]},
        id="sshd-message-repeated"),
    pytest.param("sshd[2211]", "Server listening on 0.0.0.0 port 22.", {}, id="sshd-other-message"),
    # ------------------------------------------------------------------------------------------------- sudo
    pytest.param(
        "sudo", "  nguyenvana : TTY=pts/0 ; PWD=/home/nguyenvana ; USER=root ; COMMAND=/usr/bin/tail -n 5 /a ; b",
        {"user.name": "nguyenvana", "user.effective.name": "root", "system.auth.sudo.tty": "pts/0",
         "system.auth.sudo.pwd": "/home/nguyenvana", "system.auth.sudo.user": "root",
         "system.auth.sudo.command": "/usr/bin/tail -n 5 /a ; b", "event.category": ["process"],
         "event.type": ["start"], "event.action": "sudo", "event.outcome": "success",
         "related.user": ["nguyenvana", "root"]},
        id="sudo-command"),
    pytest.param(
        "sudo", "deploy : TTY=pts/1 ; PWD=/srv ; USER=postgres ; ENV=PGDATA=/x ; COMMAND=/usr/bin/psql",
        {"user.name": "deploy", "user.effective.name": "postgres", "system.auth.sudo.tty": "pts/1",
         "system.auth.sudo.pwd": "/srv", "system.auth.sudo.user": "postgres",
         "system.auth.sudo.command": "/usr/bin/psql", "event.category": ["process"], "event.type": ["start"],
         "event.action": "sudo", "event.outcome": "success", "related.user": ["deploy", "postgres"]},
        id="sudo-with-env"),
    pytest.param(
        "sudo", "ketoan1 : command not allowed ; TTY=pts/2 ; PWD=/home/ketoan1 ; USER=root ; COMMAND=/bin/bash",
        {"user.name": "ketoan1", "user.effective.name": "root", "system.auth.sudo.tty": "pts/2",
         "system.auth.sudo.pwd": "/home/ketoan1", "system.auth.sudo.user": "root",
         "system.auth.sudo.command": "/bin/bash", "system.auth.sudo.error": "command not allowed",
         "event.category": ["process"], "event.type": ["info"], "event.action": "sudo", "event.outcome": "failure",
         "related.user": ["ketoan1", "root"]},
        id="sudo-command-not-allowed"),
    pytest.param(
        "sudo", "ketoan1 : 3 incorrect password attempts ; TTY=pts/2 ; PWD=/home/ketoan1 ; USER=root ; "
        "COMMAND=/usr/bin/id",
        {"user.name": "ketoan1", "user.effective.name": "root", "system.auth.sudo.tty": "pts/2",
         "system.auth.sudo.pwd": "/home/ketoan1", "system.auth.sudo.user": "root",
         "system.auth.sudo.command": "/usr/bin/id", "system.auth.sudo.error": "3 incorrect password attempts",
         "event.category": ["process"], "event.type": ["info"], "event.action": "sudo", "event.outcome": "failure",
         "related.user": ["ketoan1", "root"]},
        id="sudo-incorrect-password-attempts"),
    pytest.param(
        "sudo", "pam_unix(sudo:auth): authentication failure; logname=deploy uid=1001 euid=0 tty=/dev/pts/0 "
        "ruser=deploy rhost=  user=deploy",
        {"user.name": "deploy", "event.category": ["authentication"], "event.type": ["info"],
         "event.action": "pam_authentication_failure", "event.outcome": "failure", "related.user": ["deploy"]},
        id="sudo-pam-authentication-failure"),
    pytest.param(
        "sudo", "pam_unix(sudo:session): session opened for user root(uid=0) by deploy(uid=1001)",
        {"user.name": "deploy", "user.id": "1001", "user.effective.name": "root", "user.effective.id": "0",
         "event.category": ["session"], "event.type": ["start"], "event.action": "session_opened",
         "event.outcome": "success", "related.user": ["deploy", "root"]},
        id="sudo-pam-session-opened"),
    # --------------------------------------------------------------------------------------------------- su
    pytest.param(
        "su[3100]", "Successful su for root by nguyenvana",
        {"user.name": "nguyenvana", "user.effective.name": "root", "event.category": ["authentication"],
         "event.type": ["info"], "event.action": "su", "event.outcome": "success",
         "related.user": ["nguyenvana", "root"]},
        id="su-successful"),
    pytest.param(
        "su[3100]", "FAILED su for root by ketoan1",
        {"user.name": "ketoan1", "user.effective.name": "root", "event.category": ["authentication"],
         "event.type": ["info"], "event.action": "su", "event.outcome": "failure",
         "related.user": ["ketoan1", "root"]},
        id="su-failed"),
    pytest.param(
        "su[3100]", "- pts/3 ketoan1:root",
        {"user.name": "ketoan1", "user.effective.name": "root", "event.category": ["authentication"],
         "event.type": ["info"], "event.action": "su", "event.outcome": "failure",
         "related.user": ["ketoan1", "root"]},
        id="su-short-failed"),
    pytest.param(
        "su", "'su root' failed for lonvick on /dev/pts/8",
        {"user.name": "lonvick", "user.effective.name": "root", "event.category": ["authentication"],
         "event.type": ["info"], "event.action": "su", "event.outcome": "failure",
         "related.user": ["lonvick", "root"]},
        id="su-rfc3164-example"),
    pytest.param(
        "su[3100]", "pam_unix(su:session): session opened for user root by nguyenvana(uid=1000)",
        {"user.name": "nguyenvana", "user.id": "1000", "user.effective.name": "root",
         "event.category": ["session"], "event.type": ["start"], "event.action": "session_opened",
         "event.outcome": "success", "related.user": ["nguyenvana", "root"]},
        id="su-pam-session-opened"),
    pytest.param(
        "su[3100]", "pam_unix(su:session): session closed for user root",
        {"user.name": "root", "event.category": ["session"], "event.type": ["end"],
         "event.action": "session_closed", "event.outcome": "success", "related.user": ["root"]},
        id="su-pam-session-closed"),
    # -------------------------------------------------------------------------------------------------- PAM
    pytest.param(
        "sshd[2211]", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
        "rhost=198.51.100.23  user=root",
        {"user.name": "root", **source("198.51.100.23"), "event.category": ["authentication"],
         "event.type": ["info"], "event.action": "pam_authentication_failure", "event.outcome": "failure",
         "related.user": ["root"]},
        id="pam-sshd-authentication-failure"),
    pytest.param(
        "sshd[2211]", "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= "
        "rhost=198.51.100.23  user=root",
        {"user.name": "root", **source("198.51.100.23"), "event.category": ["authentication"],
         "event.type": ["info"], "event.action": "pam_authentication_failure", "event.outcome": "failure",
         "related.user": ["root"]},
        id="pam-more-authentication-failures"),
    pytest.param(
        "sshd[2211]", "pam_unix(sshd:session): session opened for user deploy(uid=1001) by (uid=0)",
        {"user.name": "deploy", "user.id": "1001", "event.category": ["session"], "event.type": ["start"],
         "event.action": "session_opened", "event.outcome": "success", "related.user": ["deploy"]},
        id="pam-sshd-session-opened"),
    pytest.param(
        "CRON[812]", "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
        {"user.name": "root", "user.id": "0", "event.category": ["session"], "event.type": ["start"],
         "event.action": "session_opened", "event.outcome": "success", "related.user": ["root"]},
        id="pam-cron-is-auth"),
    pytest.param("sshd[2211]", "pam_unix(sshd:auth): check pass; user unknown", {}, id="pam-other-message"),
    # ------------------------------------------------------------------------------------------ accounts
    pytest.param(
        "useradd[5120]", "new user: name=sysbackup, UID=1005, GID=1005, home=/home/sysbackup, shell=/bin/bash, "
        "from=/dev/pts/1",
        {"user.name": "sysbackup", "user.id": "1005", "group.id": "1005",
         "system.auth.useradd.home": "/home/sysbackup", "system.auth.useradd.shell": "/bin/bash",
         "event.category": ["iam"], "event.type": ["user", "creation"], "event.action": "user_created",
         "event.outcome": "success", "related.user": ["sysbackup"]},
        id="useradd-new-user"),
    pytest.param(
        "groupadd[5119]", "new group: name=ketoan, GID=1006",
        {"group.name": "ketoan", "group.id": "1006", "event.category": ["iam"], "event.type": ["group", "creation"],
         "event.action": "group_created", "event.outcome": "success"},
        id="groupadd-new-group"),
    pytest.param(
        "usermod[5130]", "add 'sysbackup' to group 'sudo'",
        {"user.name": "sysbackup", "group.name": "sudo", "event.category": ["iam"], "event.type": ["group", "change"],
         "event.action": "user_added_to_group", "event.outcome": "success", "related.user": ["sysbackup"]},
        id="usermod-add-to-group"),
    pytest.param(
        "usermod[5130]", "add 'sysbackup' to shadow group 'sudo'",
        {"user.name": "sysbackup", "group.name": "sudo", "event.category": ["iam"], "event.type": ["group", "change"],
         "event.action": "user_added_to_group", "event.outcome": "success", "related.user": ["sysbackup"]},
        id="usermod-add-to-shadow-group"),
    pytest.param(
        "usermod[5130]", "delete 'tamthoi' from group 'docker'",
        {"user.name": "tamthoi", "group.name": "docker", "event.category": ["iam"], "event.type": ["group", "change"],
         "event.action": "user_removed_from_group", "event.outcome": "success", "related.user": ["tamthoi"]},
        id="usermod-delete-from-group"),
    pytest.param(
        "gpasswd[5140]", "user nguyenvana added by root to group wheel",
        {"user.name": "nguyenvana", "group.name": "wheel", "event.category": ["iam"], "event.type": ["group", "change"],
         "event.action": "user_added_to_group", "event.outcome": "success", "related.user": ["nguyenvana", "root"]},
        id="gpasswd-added"),
    pytest.param(
        "userdel[5150]", "delete user 'tamthoi'",
        {"user.name": "tamthoi", "event.category": ["iam"], "event.type": ["user", "deletion"],
         "event.action": "user_deleted", "event.outcome": "success", "related.user": ["tamthoi"]},
        id="userdel-delete-user"),
    pytest.param(
        "userdel[5150]", "removed group 'tamthoi' owned by 'tamthoi'",
        {"group.name": "tamthoi", "event.category": ["iam"], "event.type": ["group", "deletion"],
         "event.action": "group_deleted", "event.outcome": "success"},
        id="userdel-removed-group"),
    pytest.param(
        "passwd[5160]", "pam_unix(passwd:chauthtok): password changed for nguyenvana",
        {"user.name": "nguyenvana", "event.category": ["iam"], "event.type": ["user", "change"],
         "event.action": "password_changed", "event.outcome": "success", "related.user": ["nguyenvana"]},
        id="passwd-password-changed"),
    pytest.param(
        "chpasswd[5161]", "pam_unix(chpasswd:chauthtok): password changed for deploy",
        {"user.name": "deploy", "event.category": ["iam"], "event.type": ["user", "change"],
         "event.action": "password_changed", "event.outcome": "success", "related.user": ["deploy"]},
        id="chpasswd-password-changed"),
    pytest.param(
        "passwd[5160]", "password for 'deploy' changed by 'root'",
        {"user.name": "deploy", "event.category": ["iam"], "event.type": ["user", "change"],
         "event.action": "password_changed", "event.outcome": "success", "related.user": ["deploy", "root"]},
        id="passwd-changed-by"),
    pytest.param(
        "usermod[5130]", "lock user 'tamthoi' password",
        {"user.name": "tamthoi", "event.category": ["iam"], "event.type": ["user", "change"],
         "event.action": "user_changed", "event.outcome": "success", "related.user": ["tamthoi"]},
        id="usermod-lock"),
    pytest.param(
        "useradd[5120]", "failed adding user 'sysbackup', data deleted",
        {"event.category": ["iam"], "event.type": ["user", "creation"], "event.outcome": "failure"},
        id="useradd-other-message-failure"),
    pytest.param(
        "groupdel[5121]", "cannot remove the primary group of user 'x'",
        {"event.category": ["iam"], "event.type": ["group", "deletion"], "event.outcome": "success"},
        id="groupdel-other-message"),
]


@pytest.mark.parametrize(("tag", "text", "expected"), CASES)
def test_auth_patterns(tag: str, text: str, expected: dict[str, Any]) -> None:
    assert fields_of(tag, text) == {**BASE, **expected}


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("Nov 18 09:15:02 congdvc-web01 kernel: [UFW BLOCK] IN=eth0 SRC=203.0.113.5", id="kernel"),
        pytest.param("Nov 18 09:15:02 congdvc-web01 nginx[90]: Accepted password for root from 1.2.3.4 port 1 ssh2",
                     id="auth-words-from-another-program"),
        pytest.param("<30>Nov 18 09:15:02 congdvc-web01 systemd[1]: Started Session 3.", id="daemon-facility"),
    ],
)
def test_other_programs_stay_syslog(line: str) -> None:
    message = parse_syslog(line, received_ms=RECEIVED)
    assert not is_auth_message(message)
    assert auth_fields(message) is None
    assert to_ecs(message) == message.to_ecs()
    assert to_ecs(message)["event"]["dataset"] == "system.syslog"


def test_auth_facility_makes_an_auth_message() -> None:
    message = parse_syslog("<86>Nov 18 09:15:02 congdvc-web01 vsftpd[77]: FAIL LOGIN: Client \"198.51.100.4\"",
                           received_ms=RECEIVED)
    assert is_auth_message(message)
    assert auth_fields(message) == BASE


def test_to_ecs_is_the_syslog_document_with_auth_fields() -> None:
    line = "<38>Nov 18 09:15:02 congdvc-web01 sshd[2211]: Failed password for root from 198.51.100.23 port 40022 ssh2"
    assert to_ecs(parse_syslog(line, received_ms=RECEIVED)) == {
        "@timestamp": "2026-11-18T09:15:02.000Z",
        "event": {"module": "system", "dataset": "system.auth", "kind": "event", "category": ["authentication"],
                  "type": ["info"], "action": "ssh_login", "outcome": "failure"},
        "message": "Failed password for root from 198.51.100.23 port 40022 ssh2",
        "log": {"syslog": {"facility": {"code": 4, "name": "auth"}, "severity": {"code": 6, "name": "Informational"},
                           "priority": 38, "hostname": "congdvc-web01", "appname": "sshd", "procid": "2211"}},
        "host": {"hostname": "congdvc-web01", "name": "congdvc-web01"},
        "process": {"name": "sshd", "pid": 2211},
        "system": {"auth": {"ssh": {"event": "Failed", "method": "password"}}},
        "source": {"ip": "198.51.100.23", "port": 40022},
        "user": {"name": "root"},
        "related": {"user": ["root"], "ip": ["198.51.100.23"]},
    }


def test_message_is_kept_verbatim() -> None:
    text = "message repeated 2 times: [ Failed password for root from 198.51.100.23 port 40022 ssh2]"
    message = parse_syslog(f"Nov 18 09:15:02 h sshd[1]: {text}", received_ms=RECEIVED)
    assert to_ecs(message)["message"] == text


def scenario_records() -> list[Any]:
    out = []
    for path in sorted(RULE_DATA.glob("lnx_*.ndjson")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                out.append(pytest.param(orjson.loads(line), id=f"{path.stem}:{number}"))
    return out


@pytest.mark.parametrize("record", scenario_records())
def test_lines_give_the_fields_of_the_rule_scenarios(record: dict[str, Any]) -> None:
    """The province rule scenarios (tests/data/rules/lnx_*.ndjson) hold ECS records as Filebeat would write them;
    the same messages as auth.log lines must give at least the same fields and values."""
    moment = datetime.fromisoformat(record["@timestamp"])  # 2026-11-20T01:00:00.000Z
    line = f"{moment:%b %e %H:%M:%S} {record['host.name']} {record['process.name']}[4242]: {record['message']}"
    fields = flat_fields(to_ecs(parse_syslog(line, received_ms=RECEIVED, year_hint=moment.year)))
    assert {key: fields.get(key) for key in record} == record
