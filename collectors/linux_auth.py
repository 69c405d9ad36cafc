"""Linux auth/secure messages (sshd, sudo, su, PAM, useradd and friends) to ECS, the way Filebeat's system/auth
module maps them: event.module `system`, event.dataset `system.auth`, event.category/type/action/outcome, and the
fields the message names (`source.ip`, `user.name`, `system.auth.ssh.method`, `system.auth.sudo.command`, ...).

    doc = to_ecs(parse_syslog(line, received_ms=now_ms))

A message is an auth message when its program is one that logs to auth.log/secure (`AUTH_PROGRAMS`), its
facility is auth or authpriv, or it is a PAM module's message (`pam_unix(cron:session): ...`). Auth messages
whose text no pattern knows still get `system.auth`; every other message stays `system.syslog`. `message` is
always the text as logged; rsyslog's `message repeated N times: [ ... ]` is read for its inner message.

For account changes `user.name` is the account changed (`new user: name=X` -> X), as Filebeat does; whoever
made the change (gpasswd's `by root`) is only in `related.user`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

from collectors.generic import flat_fields
from collectors.syslog_parse import SyslogMessage
from correlator.model import EcsFactory, nest

__all__ = ["ACCOUNT_PROGRAMS", "AUTH_PROGRAMS", "SSHD_PROGRAMS", "auth_fields", "canonical_ip",
           "deferred_nested_factory", "ecs_document", "ecs_factory", "is_auth_message", "nested_factory", "to_ecs",
           "to_fields"]

# OpenSSH 9.8 moved authentication into sshd-session (and 10.0 into sshd-auth); both log under their own name.
SSHD_PROGRAMS = frozenset({"sshd", "sshd-session", "sshd-auth"})
ACCOUNT_PROGRAMS = frozenset({
    "useradd", "usermod", "userdel", "groupadd", "groupmod", "groupdel", "passwd", "chpasswd", "gpasswd", "chage",
    "newusers", "adduser", "deluser",
})
AUTH_PROGRAMS = SSHD_PROGRAMS | ACCOUNT_PROGRAMS | frozenset({
    "sudo", "su", "login", "systemd-logind", "polkitd", "pkexec", "unix_chkpwd", "chfn", "chsh", "newgrp",
})
_AUTH_FACILITIES = frozenset({4, 10})  # auth, authpriv

Fields = dict[str, Any]  # flat: dotted ECS names

# ------------------------------------------------------------------------------------------------------ sshd
_SSH_LOGIN = re.compile(
    r"(?P<event>Accepted|Failed) (?P<method>\S+) for (?:invalid user )?(?P<user>.*?) from (?P<ip>\S+)"
    r" port (?P<port>\d+)(?: ssh2)?(?:: (?P<signature>.+))?"
)
_SSH_INVALID = re.compile(r"Invalid user (?P<user>.*?) from (?P<ip>\S+)(?: port (?P<port>\d+))?")
_SSH_CLOSED = re.compile(
    r"(?P<event>Connection closed|Connection reset|Disconnected) (?:by|from)"
    r"(?: (?:invalid|authenticating) user (?P<user_a>.*?)| user (?P<user_b>.*?))?"
    r" (?P<ip>\S+?)(?: port (?P<port>\d+))?(?: \[preauth\])?"
)
_SSH_RECEIVED_DISCONNECT = re.compile(
    r"Received disconnect from (?P<ip>\S+?)(?: port (?P<port>\d+))?:\d+: .*"
)
_SSH_DROPPED = re.compile(r"Did not receive identification string from (?P<ip>\S+?)(?: port (?P<port>\d+))?")

# ------------------------------------------------------------------------------------------------- sudo, su
_SUDO = re.compile(r"(?P<user>\S+) : (?:(?P<error>[^;=]+?) ; )?(?P<rest>(?:TTY|PWD|USER|COMMAND)=.*)")
_SU = re.compile(r"(?P<result>Successful|FAILED) su for (?P<target>\S+) by (?P<user>\S+)")
_SU_SHORT = re.compile(r"(?P<result>[+-]) (?P<tty>\S+) (?P<user>[^:\s]+):(?P<target>\S+)")
_SU_QUOTED = re.compile(r"'su (?P<target>\S+)' (?P<result>succeeded|failed) for (?P<user>\S+) on (?P<tty>\S+)")

# ------------------------------------------------------------------------------------------------------ PAM
_PAM = re.compile(r"(?P<module>pam_\w+)\((?P<service>[^:()]+):(?P<kind>\w+)\): (?P<body>.*)")
_PAM_SESSION = re.compile(
    r"session (?P<state>opened|closed) for user (?P<for>[^\s(]+)(?:\(uid=(?P<for_uid>\d+)\))?"
    r"(?: by (?P<by>[^\s(]*)(?:\(uid=(?P<by_uid>\d+)\))?)?"
)
_PAM_FAILURE = re.compile(r"(?:authentication failure|PAM \d+ more authentication failures?); (?P<pairs>.*)")
_PAIR = re.compile(r"(\w+)=(\S*)")
_PASSWORD_CHANGED = re.compile(r"password changed for (?P<user>\S+)")

# ------------------------------------------------------------------------------------------ account changes
_NEW_USER = re.compile(
    r"new user: name=(?P<user>[^,]*), UID=(?P<uid>\d+), GID=(?P<gid>\d+)"
    r"(?:, home=(?P<home>[^,]*))?(?:, shell=(?P<shell>[^,]*))?(?:, from=.*)?"
)
_NEW_GROUP = re.compile(r"new group: name=(?P<group>[^,]*), GID=(?P<gid>\d+)")
_GROUP_MEMBER = re.compile(r"(?P<verb>add|delete) '(?P<user>[^']*)' (?:to|from) (?:shadow )?group '(?P<group>[^']*)'")
_GPASSWD_MEMBER = re.compile(
    r"user (?P<user>\S+) (?P<verb>added|removed) by (?P<actor>\S+) (?:to|from) group (?P<group>\S+)"
)
_DELETE_USER = re.compile(r"delete user '(?P<user>[^']*)'")
_DELETE_GROUP = re.compile(
    r"(?:removed group '(?P<group_a>[^']*)' owned by '(?P<user>[^']*)'|group '(?P<group_b>[^']*)' removed.*)"
)
_PASSWORD_CHANGED_BY = re.compile(r"password for '(?P<user>[^']*)' changed by '(?P<actor>[^']*)'")
_CHANGE_USER = re.compile(r"(?:change|lock|unlock) user '(?P<user>[^']*)'.*")
_REPEATED = re.compile(r"message repeated \d+ times: \[ ?(?P<inner>.*?) ?\]")


def is_auth_message(message: SyslogMessage) -> bool:
    """Whether the message belongs in system.auth: an auth program, the auth/authpriv facility or PAM."""
    return (
        message.appname in AUTH_PROGRAMS
        or message.facility in _AUTH_FACILITIES
        or message.message.startswith("pam_")
    )


def to_ecs(message: SyslogMessage) -> dict[str, Any]:
    """The nested ECS document: `SyslogMessage.to_ecs()`, with event.dataset `system.auth` and the auth fields
    for an auth message."""
    return ecs_document(message, auth_fields(message))


def ecs_document(message: SyslogMessage, auth: Fields | None) -> dict[str, Any]:
    """`to_ecs(message)` from the message's `auth_fields`, for a caller that has them already."""
    doc = message.to_ecs()
    if auth is not None:
        for name, value in auth.items():
            _put(doc, name, value)
    return doc


def to_fields(message: SyslogMessage, auth: Fields | None) -> Fields:
    """`to_ecs(message)` as flat dotted fields (what rules read), in the order flattening it gives, without
    building the document; `auth` is the message's `auth_fields`."""
    if auth is None:
        return message.to_fields()
    layout = _layout(tuple(auth))
    if layout is None:  # auth names that reach into the syslog part of the document: flatten it the long way
        return flat_fields(ecs_document(message, auth))
    event_names, other_names = layout
    fields = message.to_fields({name: auth[name] for name in event_names})
    fields.update({name: auth[name] for name in other_names})
    return fields


def ecs_factory(message: SyslogMessage, auth: Fields | None, fields: Fields) -> EcsFactory:
    """The deferred document of an `Event` whose fields are `to_fields(message, auth)`: nested from the fields
    by a function compiled once per field layout, or the long way for structured data (an element without
    parameters, a parameter name with a dot: the flat fields do not tell its shape)."""
    if not message.structured_data:
        factory = nested_factory(fields)
        if factory is not None:
            return factory
    return lambda: (ecs_document(message, auth), {})


def nested_factory(fields: Fields) -> EcsFactory | None:
    """The deferred document of flat `fields` that nest without loss (no name under another's value), by the
    function compiled for their layout; None when they do not."""
    nester = _nester(tuple(fields))
    if nester is None:
        return None
    values = tuple(fields.values())
    return lambda: (nester(values), {})


def deferred_nested_factory(fields: Fields) -> EcsFactory:
    """`nested_factory` for fields known to nest without loss (the native reader's: it refuses a layout that would
    not, `syslog_event.rs`), its work done only when the document is built: most events are stored from the
    reader's own document and never build it (3.7 us per event saved in a detection worker). The fields are read
    when the document is built (nothing writes into an event's own fields); a layout that did not nest after all
    is nested the general way."""

    def build() -> tuple[dict[str, Any], dict[str, Any]]:
        nester = _nester(tuple(fields))
        return (nester(tuple(fields.values())) if nester is not None else nest(fields)), {}

    return build


def auth_fields(message: SyslogMessage) -> Fields | None:
    """The flat ECS fields an auth message adds (event.dataset `system.auth`, categorisation, users, address);
    None for a message that is not an auth message."""
    if not is_auth_message(message):
        return None
    text = message.message
    repeated = _REPEATED.fullmatch(text) if text.startswith("message repeated ") else None
    if repeated is not None:
        text = repeated.group("inner")
    program = message.appname or ""
    fields: Fields = {"event.module": "system", "event.dataset": "system.auth", "event.kind": "event"}
    found = _recognise(program, text)
    if found is None and program in ACCOUNT_PROGRAMS:
        found = _account_fallback(program, text)
    if found:
        fields.update(found)
    _add_related(fields)
    return fields


def _recognise(program: str, text: str) -> Fields | None:
    pam = _PAM.fullmatch(text) if text.startswith("pam_") else None
    if pam is not None:
        return _pam(pam.group("body"))
    if text.startswith("PAM "):  # sshd's `PAM 2 more authentication failures; ...`
        return _pam(text)
    handler = _HANDLERS.get(program)
    return handler(text) if handler is not None else None


# ------------------------------------------------------------------------------------------------ handlers


def _sshd(text: str) -> Fields | None:
    login = _SSH_LOGIN.fullmatch(text)
    if login is not None:
        accepted = login.group("event") == "Accepted"
        fields = _ssh(login.group("event"), login.group("ip"), login.group("port"), login.group("user"))
        fields.update({
            "system.auth.ssh.method": login.group("method"),
            "event.category": ["authentication", "session"] if accepted else ["authentication"],
            "event.type": ["info"],
            "event.action": "ssh_login",
            "event.outcome": "success" if accepted else "failure",
        })
        if login.group("signature"):
            fields["system.auth.ssh.signature"] = login.group("signature")
        return fields
    invalid = _SSH_INVALID.fullmatch(text)
    if invalid is not None:
        fields = _ssh("Invalid", invalid.group("ip"), invalid.group("port"), invalid.group("user"))
        fields.update({"event.category": ["authentication"], "event.type": ["info"], "event.action": "ssh_login",
                       "event.outcome": "failure"})
        return fields
    closed = _SSH_CLOSED.fullmatch(text)
    if closed is not None:
        user = closed.group("user_a") if closed.group("user_a") is not None else closed.group("user_b")
        fields = _ssh(closed.group("event"), closed.group("ip"), closed.group("port"), user)
        fields.update({"event.category": ["network"], "event.type": ["connection", "end"],
                       "event.action": "ssh_disconnect"})
        return fields
    received = _SSH_RECEIVED_DISCONNECT.fullmatch(text)
    if received is not None:
        fields = _ssh("Received disconnect", received.group("ip"), received.group("port"), None)
        fields.update({"event.category": ["network"], "event.type": ["connection", "end"],
                       "event.action": "ssh_disconnect"})
        return fields
    dropped = _SSH_DROPPED.fullmatch(text)
    if dropped is not None:
        fields = _address(dropped.group("ip"), dropped.group("port"))
        fields.update({"system.auth.ssh.dropped_ip": dropped.group("ip"), "event.category": ["network"],
                       "event.type": ["connection", "end"], "event.action": "ssh_dropped_connection"})
        return fields
    return None


def _ssh(event: str, ip: str, port: str | None, user: str | None) -> Fields:
    fields: Fields = {"system.auth.ssh.event": event}
    fields.update(_address(ip, port))
    if user:
        fields["user.name"] = user
    return fields


def _address(address: str, port: str | None = None) -> Fields:
    """`source.ip` for an IP address, `source.domain` for a name (as Filebeat does with IPORHOST)."""
    fields: Fields = {}
    ip = canonical_ip(address)
    if ip is not None:
        fields["source.ip"] = ip
    else:
        fields["source.domain"] = address
    if port is not None:
        fields["source.port"] = int(port)
    return fields


@lru_cache(maxsize=8_192)
def canonical_ip(address: str) -> str | None:
    """The address in its canonical form, None when it is no IP address (attackers come back: cached)."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _sudo(text: str) -> Fields | None:
    match = _SUDO.fullmatch(text)
    if match is None:
        return None
    rest = match.group("rest")
    head, sep, command = rest.partition(" ; COMMAND=")  # the command may itself hold " ; "
    if not sep and rest.startswith("COMMAND="):
        head, command = "", rest.removeprefix("COMMAND=")
    pairs = dict(part.partition("=")[::2] for part in head.split(" ; ") if part)
    fields: Fields = {"user.name": match.group("user"), "event.category": ["process"], "event.action": "sudo"}
    for key, name in (("TTY", "tty"), ("PWD", "pwd"), ("USER", "user")):
        if key in pairs:
            fields[f"system.auth.sudo.{name}"] = pairs[key]
    if sep or rest.startswith("COMMAND="):
        fields["system.auth.sudo.command"] = command
    if "USER" in pairs:
        fields["user.effective.name"] = pairs["USER"]
    error = match.group("error")
    if error is not None:
        fields.update({"system.auth.sudo.error": error, "event.type": ["info"], "event.outcome": "failure"})
    else:
        fields.update({"event.type": ["start"], "event.outcome": "success"})
    return fields


def _su(text: str) -> Fields | None:
    for pattern in (_SU, _SU_SHORT, _SU_QUOTED):
        match = pattern.fullmatch(text)
        if match is not None:
            success = match.group("result") in ("Successful", "+", "succeeded")
            fields: Fields = {
                "user.name": match.group("user"),
                "user.effective.name": match.group("target"),
                "event.category": ["authentication"],
                "event.type": ["info"],
                "event.action": "su",
                "event.outcome": "success" if success else "failure",
            }
            return fields
    return None


def _pam(body: str) -> Fields | None:
    session = _PAM_SESSION.fullmatch(body)
    if session is not None:
        opened = session.group("state") == "opened"
        fields: Fields = {"event.category": ["session"], "event.type": ["start" if opened else "end"],
                          "event.action": "session_opened" if opened else "session_closed",
                          "event.outcome": "success"}
        if session.group("by"):  # `for user root by alice(uid=1000)`: alice became root
            fields["user.name"] = session.group("by")
            _set(fields, "user.id", session.group("by_uid"))
            fields["user.effective.name"] = session.group("for")
            _set(fields, "user.effective.id", session.group("for_uid"))
        else:
            fields["user.name"] = session.group("for")
            _set(fields, "user.id", session.group("for_uid"))
        return fields
    failure = _PAM_FAILURE.fullmatch(body)
    if failure is not None:
        pairs = dict(_PAIR.findall(failure.group("pairs")))
        fields = {"event.category": ["authentication"], "event.type": ["info"],
                  "event.action": "pam_authentication_failure", "event.outcome": "failure"}
        user = pairs.get("user") or pairs.get("ruser") or pairs.get("logname")
        if user:
            fields["user.name"] = user
        if pairs.get("rhost"):
            fields.update(_address(pairs["rhost"]))
        return fields
    changed = _PASSWORD_CHANGED.fullmatch(body)
    if changed is not None:
        return _iam(["user", "change"], "password_changed", user=changed.group("user"))
    return None


def _account(text: str) -> Fields | None:
    new_user = _NEW_USER.fullmatch(text)
    if new_user is not None:
        fields = _iam(["user", "creation"], "user_created", user=new_user.group("user"))
        fields.update({"user.id": new_user.group("uid"), "group.id": new_user.group("gid")})
        _set(fields, "system.auth.useradd.home", new_user.group("home"))
        _set(fields, "system.auth.useradd.shell", new_user.group("shell"))
        return fields
    new_group = _NEW_GROUP.fullmatch(text)
    if new_group is not None:
        fields = _iam(["group", "creation"], "group_created", group=new_group.group("group"))
        fields["group.id"] = new_group.group("gid")
        return fields
    member = _GROUP_MEMBER.fullmatch(text) or _GPASSWD_MEMBER.fullmatch(text)
    if member is not None:
        added = member.group("verb") in ("add", "added")
        fields = _iam(["group", "change"], "user_added_to_group" if added else "user_removed_from_group",
                      user=member.group("user"), group=member.group("group"))
        if "actor" in member.re.groupindex:
            fields["related.user"] = [member.group("actor")]
        return fields
    deleted = _DELETE_USER.fullmatch(text)
    if deleted is not None:
        return _iam(["user", "deletion"], "user_deleted", user=deleted.group("user"))
    group_deleted = _DELETE_GROUP.fullmatch(text)
    if group_deleted is not None:
        return _iam(["group", "deletion"], "group_deleted",
                    group=group_deleted.group("group_a") or group_deleted.group("group_b"))
    password = _PASSWORD_CHANGED_BY.fullmatch(text)
    if password is not None:
        fields = _iam(["user", "change"], "password_changed", user=password.group("user"))
        fields["related.user"] = [password.group("actor")]
        return fields
    changed = _PASSWORD_CHANGED.fullmatch(text)
    if changed is not None:
        return _iam(["user", "change"], "password_changed", user=changed.group("user"))
    change = _CHANGE_USER.fullmatch(text)
    if change is not None:
        return _iam(["user", "change"], "user_changed", user=change.group("user"))
    return None


def _iam(types: list[str], action: str, *, user: str | None = None, group: str | None = None) -> Fields:
    fields: Fields = {"event.category": ["iam"], "event.type": types, "event.action": action,
                      "event.outcome": "success"}
    _set(fields, "user.name", user)
    _set(fields, "group.name", group)
    return fields


def _account_fallback(program: str, text: str) -> Fields:
    """Filebeat's rule for account programs' other messages: iam, the type from the program, and failure when the
    message says "fail"."""
    kind = "group" if program.startswith("group") or program == "gpasswd" else "user"
    if program in ("useradd", "groupadd", "adduser", "newusers"):
        change = "creation"
    elif program in ("userdel", "groupdel", "deluser"):
        change = "deletion"
    else:
        change = "change"
    return {"event.category": ["iam"], "event.type": [kind, change],
            "event.outcome": "failure" if "fail" in text.lower() else "success"}


_HANDLERS: dict[str, Callable[[str], Fields | None]] = {
    **dict.fromkeys(SSHD_PROGRAMS, _sshd),
    "sudo": _sudo,
    "su": _su,
    **dict.fromkeys(ACCOUNT_PROGRAMS, _account),
}

# --------------------------------------------------------------------------------------------------- helpers


def _set(fields: Fields, name: str, value: str | None) -> None:
    if value:
        fields[name] = value


def _add_related(fields: Fields) -> None:
    users: list[str] = []
    for value in (fields.get("user.name"), fields.get("user.effective.name"), *fields.get("related.user", ())):
        if value and value not in users:
            users.append(value)
    if users:
        fields["related.user"] = users
    if "source.ip" in fields:
        fields["related.ip"] = [fields["source.ip"]]


_SYSLOG_TOP: Final = frozenset({"@timestamp", "event", "message", "log", "host", "process"})  # `SyslogMessage.to_ecs`
_LAYOUTS_LIMIT: Final = 1_024


@lru_cache(maxsize=_LAYOUTS_LIMIT)
def _layout(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """Where the auth fields `names` land among the syslog fields once `to_ecs` has nested them: the `event.*`
    names in their order under `event` (which they give whole: event.module and event.dataset are among them),
    and the others in theirs after `process`. None when one of them replaces or nests under another syslog
    object than `event`, or event.module or event.dataset is missing."""
    if "event.module" not in names or "event.dataset" not in names:
        return None
    if any(name.partition(".")[0] in _SYSLOG_TOP and not name.startswith("event.") for name in names):
        return None
    event = [name for name in names if name.startswith("event.")]
    other = [name for name in names if not name.startswith("event.")]
    skeleton = dict.fromkeys(("event.module", "event.dataset", *event), 0)
    return tuple(flat_fields(nest(skeleton))), tuple(flat_fields(nest(dict.fromkeys(other, 0))))


@lru_cache(maxsize=_LAYOUTS_LIMIT)
def _nester(names: tuple[str, ...]) -> Callable[[tuple[Any, ...]], dict[str, Any]] | None:
    """A function that nests the values of flat fields named `names` (in that order) as `nest` would, compiled
    to one dict display; None when nesting them loses or moves a name (`a` and `a.b`)."""
    positions = dict(zip(names, range(len(names)), strict=True))
    tree = nest(positions)
    if list(flat_fields(tree).items()) != list(positions.items()):
        return None
    nester: Callable[[tuple[Any, ...]], dict[str, Any]] = eval(  # noqa: S307 -- keys are repr() literals
        f"lambda v: {_display(tree)}", {"__builtins__": {}})
    return nester


def _display(node: dict[str, Any]) -> str:
    """Python source of a dict display of `node`, its leaves (positions) read from `v`."""
    items = (f"{key!r}: {_display(value) if isinstance(value, dict) else f'v[{value}]'}" for key, value in node.items())
    return "{" + ", ".join(items) + "}"


@lru_cache(maxsize=256)
def _path(dotted: str) -> tuple[tuple[str, ...], str]:
    *parents, leaf = dotted.split(".")
    return tuple(parents), leaf


def _put(doc: dict[str, Any], dotted: str, value: Any) -> None:
    parents, leaf = _path(dotted)
    node = doc
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value
