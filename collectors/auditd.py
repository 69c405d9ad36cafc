"""Linux audit logs (/var/log/audit/audit.log) to ECS `Event`s: the records of one audit event assembled into one
`Event`; `read_file` reads a log file offline, `parse_record` and `assemble` are the pure parts.

    type=SYSCALL msg=audit(1732064400.123:4567): arch=c000003e syscall=59 success=yes ... comm="ls" key="exec"
    type=EXECVE msg=audit(1732064400.123:4567): argc=2 a0="ls" a1=2F746D70
    type=EOE msg=audit(1732064400.123:4567):

Accepted records: the raw format (with `node=` when auditd names nodes), log_format=ENRICHED (translated fields
such as `UID="root"` after a `\\x1d`) and `ausearch -i` output (interpreted values, `----` separators; its local
time is taken as UTC and its unquoted values are never hex-decoded). Values the kernel hex-encodes (`exe`, `comm`,
`name`, `cwd`, `proctitle`, EXECVE arguments, multiple `key`s joined by `\\x01`, ...) are decoded; PROCTITLE's NULs
become spaces; long EXECVE arguments (`a1[0]`, `a1[1]`, ...) are joined. A user-space message
(`msg='op=... acct="alice" res=success'`) gives its fields as the record's own.

An `Event` holds:
- the fields SigmaHQ's linux/auditd rules read, by their audit names: `type` (the record types), `key`, `exe`,
  `comm`, `syscall`/`SYSCALL` (the name: enriched, interpreted or from the x86_64 table), `a0`..`aN` (EXECVE's
  arguments; SYSCALL's registers only when there is no EXECVE), `name`/`nametype` (PATH items), `cwd`,
  `proctitle`, ... A name carried by several records with different values has the list of them.
- `auditd.log.*`: the fields of the main record (SYSCALL, else the first one) with `record_type` and `sequence`
  (Filebeat's auditd module), and ECS: `process.*`, `user.*` (as in Filebeat `user.id` is the uid and `acct` is
  `user.name`, else a USER_LOGIN's translated `id`; for account changes `acct` is `user.target.name` or
  `group.name`), `user.audit.id` (auid, unless unset), `event.action` (Auditbeat's verbs: executed, logged-in,
  ...), `event.outcome`, `event.category`/`type`, `file.path` (PATH names, made absolute with `cwd`), `tags` (the
  keys), `source.ip` (addr=), `host.name` (node=).

Assembly: records are grouped by their `msg=audit(TIME:SERIAL)` id. An event is complete at its EOE record, or at
once for a user-space message (it has no EOE). Events come out in the order of their first record; an event still
open after `lookahead` further records (its EOE lost, records interleaved or a kernel record without EOE) is
emitted as it stands, and so is every open event at the end of the file. A record arriving after its event was
emitted starts a new event with the same serial (a lone EOE is dropped). Event id: a hash of the event's record
lines (the serial and time make them unique), so a re-read gives the same ids under any path.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from collectors.errors import CollectorError
from correlator.model import Event, EventOrigin, Rejected, event_id_for, ms_to_iso, nest

__all__ = ["DEFAULT_LOOKAHEAD", "FORMAT", "AuditAssembler", "AuditRecord", "AuditRecordParseError", "assemble",
           "assemble_lines", "parse_record", "read_file", "sniff", "syscall_name"]

FORMAT = "auditd"
DEFAULT_LOOKAHEAD = 64  # records read after an open event's last record before it is emitted incomplete

_HEADER = re.compile(
    r"(?:node=(?P<node>\S+) )?type=(?P<type>\S+) msg=audit\("
    r"(?:(?P<sec>\d+)\.(?P<frac>\d+)|(?P<date>\d{1,2}/\d{1,2}/\d{2,4}) (?P<clock>\d{1,2}:\d{2}:\d{2})"
    r"(?:\.(?P<ifrac>\d+))?):(?P<serial>\d+)\)\s?:\s?")
_TOKEN = re.compile(r"""([^\s="']+)=(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s"']\S*|(?=\s|$)))"""
                    r"""|(?P<word>[^\s"'][^\s=]*(?=\s|$))""")
_SPACE = re.compile(r"\s*")
_HEX = re.compile(r"(?:[0-9A-F]{2})+")
_ARG = re.compile(r"a(\d+)")
_ARG_CHUNK = re.compile(r"a(\d+)\[(\d+)\]")
_SKIPPED_LINE = re.compile(r"----|time->")  # ausearch separators
_SNIFF = re.compile(rb"(?:node=\S+ )?type=\S+ msg=audit\(")
_NULL = frozenset({"", "?", "(null)", "(none)", "unset"})
_UNSET_ID = "4294967295"
_ENCODED = frozenset({
    "acct", "cmd", "comm", "cwd", "data", "dir", "exe", "file", "grp", "key", "name", "new_group", "ocomm", "path",
    "proctitle", "root_dir", "vm", "watch"})
_ARCHES = {"c000003e": "x86_64", "40000003": "i386", "c00000b7": "aarch64", "40000028": "arm",
           "c0000015": "ppc64le", "80000016": "s390x", "c00000f3": "riscv64"}
_X86_64_SYSCALLS = (  # numbers 0-334, then from 424 (asm/unistd_64.h)
    "read write open close stat fstat lstat poll lseek mmap mprotect munmap brk rt_sigaction rt_sigprocmask "
    "rt_sigreturn ioctl pread64 pwrite64 readv writev access pipe select sched_yield mremap msync mincore "
    "madvise shmget shmat shmctl dup dup2 pause nanosleep getitimer alarm setitimer getpid sendfile socket "
    "connect accept sendto recvfrom sendmsg recvmsg shutdown bind listen getsockname getpeername socketpair "
    "setsockopt getsockopt clone fork vfork execve exit wait4 kill uname semget semop semctl shmdt msgget msgsnd "
    "msgrcv msgctl fcntl flock fsync fdatasync truncate ftruncate getdents getcwd chdir fchdir rename mkdir "
    "rmdir creat link unlink symlink readlink chmod fchmod chown fchown lchown umask gettimeofday getrlimit "
    "getrusage sysinfo times ptrace getuid syslog getgid setuid setgid geteuid getegid setpgid getppid getpgrp "
    "setsid setreuid setregid getgroups setgroups setresuid getresuid setresgid getresgid getpgid setfsuid "
    "setfsgid getsid capget capset rt_sigpending rt_sigtimedwait rt_sigqueueinfo rt_sigsuspend sigaltstack utime "
    "mknod uselib personality ustat statfs fstatfs sysfs getpriority setpriority sched_setparam sched_getparam "
    "sched_setscheduler sched_getscheduler sched_get_priority_max sched_get_priority_min sched_rr_get_interval "
    "mlock munlock mlockall munlockall vhangup modify_ldt pivot_root _sysctl prctl arch_prctl adjtimex setrlimit "
    "chroot sync acct settimeofday mount umount2 swapon swapoff reboot sethostname setdomainname iopl ioperm "
    "create_module init_module delete_module get_kernel_syms query_module quotactl nfsservctl getpmsg putpmsg "
    "afs_syscall tuxcall security gettid readahead setxattr lsetxattr fsetxattr getxattr lgetxattr fgetxattr "
    "listxattr llistxattr flistxattr removexattr lremovexattr fremovexattr tkill time futex sched_setaffinity "
    "sched_getaffinity set_thread_area io_setup io_destroy io_getevents io_submit io_cancel get_thread_area "
    "lookup_dcookie epoll_create epoll_ctl_old epoll_wait_old remap_file_pages getdents64 set_tid_address "
    "restart_syscall semtimedop fadvise64 timer_create timer_settime timer_gettime timer_getoverrun timer_delete "
    "clock_settime clock_gettime clock_getres clock_nanosleep exit_group epoll_wait epoll_ctl tgkill utimes "
    "vserver mbind set_mempolicy get_mempolicy mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify "
    "mq_getsetattr kexec_load waitid add_key request_key keyctl ioprio_set ioprio_get inotify_init "
    "inotify_add_watch inotify_rm_watch migrate_pages openat mkdirat mknodat fchownat futimesat newfstatat "
    "unlinkat renameat linkat symlinkat readlinkat fchmodat faccessat pselect6 ppoll unshare set_robust_list "
    "get_robust_list splice tee sync_file_range vmsplice move_pages utimensat epoll_pwait signalfd "
    "timerfd_create eventfd fallocate timerfd_settime timerfd_gettime accept4 signalfd4 eventfd2 epoll_create1 "
    "dup3 pipe2 inotify_init1 preadv pwritev rt_tgsigqueueinfo perf_event_open recvmmsg fanotify_init "
    "fanotify_mark prlimit64 name_to_handle_at open_by_handle_at clock_adjtime syncfs sendmmsg setns getcpu "
    "process_vm_readv process_vm_writev kcmp finit_module sched_setattr sched_getattr renameat2 seccomp "
    "getrandom memfd_create kexec_file_load bpf execveat userfaultfd membarrier mlock2 copy_file_range preadv2 "
    "pwritev2 pkey_mprotect pkey_alloc pkey_free statx io_pgetevents rseq",
    "pidfd_send_signal io_uring_setup io_uring_enter io_uring_register open_tree move_mount fsopen fsconfig "
    "fsmount fspick pidfd_open clone3 close_range openat2 pidfd_getfd faccessat2 process_madvise epoll_pwait2 "
    "mount_setattr quotactl_fd landlock_create_ruleset landlock_add_rule landlock_restrict_self memfd_secret "
    "process_mrelease futex_waitv set_mempolicy_home_node",
)
# Record type -> (event.action, event.category, event.type), Auditbeat's verbs.
_ACTIONS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "USER_AUTH": ("authenticated", ("authentication",), ("info",)),
    "USER_ACCT": ("was-authorized", ("authentication",), ("info",)),
    "USER_LOGIN": ("logged-in", ("authentication", "session"), ("start",)),
    "USER_LOGOUT": ("logged-out", ("authentication", "session"), ("end",)),
    "USER_START": ("started-session", ("session",), ("start",)),
    "USER_END": ("ended-session", ("session",), ("end",)),
    "CRED_ACQ": ("acquired-credentials", ("authentication",), ("info",)),
    "CRED_REFR": ("refreshed-credentials", ("authentication",), ("info",)),
    "CRED_DISP": ("disposed-credentials", ("authentication",), ("info",)),
    "USER_CHAUTHTOK": ("changed-password", ("iam",), ("user", "change")),
    "USER_MGMT": ("modified-user-account", ("iam",), ("user", "change")),
    "ADD_USER": ("added-user-account", ("iam",), ("user", "creation")),
    "DEL_USER": ("deleted-user-account", ("iam",), ("user", "deletion")),
    "ADD_GROUP": ("added-group-account", ("iam",), ("group", "creation")),
    "DEL_GROUP": ("deleted-group-account", ("iam",), ("group", "deletion")),
    "GRP_MGMT": ("modified-group-account", ("iam",), ("group", "change")),
    "USER_CMD": ("ran-command", ("process",), ("start",)),
    "SERVICE_START": ("started-service", ("process",), ("start",)),
    "SERVICE_STOP": ("stopped-service", ("process",), ("end",)),
    "LOGIN": ("changed-login-id-to", ("authentication",), ("info",)),
    "CONFIG_CHANGE": ("changed-audit-configuration", ("configuration",), ("change",)),
}
_EXEC_SYSCALLS = frozenset({"execve", "execveat"})
_USER_IDS = (("uid", "UID", "user"), ("euid", "EUID", "user.effective"), ("suid", "SUID", "user.saved"),
             ("fsuid", "FSUID", "user.filesystem"), ("gid", "GID", "user.group"),
             ("egid", "EGID", "user.effective.group"))


class AuditRecordParseError(CollectorError):
    """A line that is not an audit record (`type=... msg=audit(TIME:SERIAL): ...`) or has a broken field."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One record line, parsed: its fields decoded (a value is a str, `key` a list when there are several)."""

    type: str
    timestamp_ms: int
    serial: int
    line: str
    fields: dict[str, Any] = field(default_factory=dict)
    enriched: dict[str, str] = field(default_factory=dict)  # ENRICHED translations after \x1d (UID="root")
    node: str | None = None
    message: str | None = None  # a user-space message's msg='...' text
    interpreted: bool = False  # ausearch -i: values are already translated

    @property
    def event_key(self) -> tuple[int, int]:
        return self.timestamp_ms, self.serial


def parse_record(line: str, origin: EventOrigin) -> AuditRecord:
    """One audit log line to an `AuditRecord`; `AuditRecordParseError` names what is wrong."""
    head = _HEADER.match(line)
    if head is None:
        raise AuditRecordParseError.at(origin, f"expected 'type=... msg=audit(TIME:SERIAL):', got {_excerpt(line)!r}")
    interpreted = head["date"] is not None
    try:
        if interpreted:
            month, day, year = (int(part) for part in head["date"].split("/"))
            moment = datetime.strptime(head["clock"], "%H:%M:%S").replace(
                year=year + 2000 if year < 100 else year, month=month, day=day, tzinfo=UTC)
            ms = int(moment.timestamp()) * 1000 + int((head["ifrac"] or "0").ljust(3, "0")[:3])
        else:
            ms = int(head["sec"]) * 1000 + int(head["frac"].ljust(3, "0")[:3])
    except ValueError as exc:
        raise AuditRecordParseError.at(origin, f"unreadable time in {head[0].strip()!r}: {exc}") from exc
    record_type = head["type"]
    end = line.find("\x1d")
    end = len(line) if end == -1 else end
    if interpreted and record_type == "PROCTITLE":
        fields: dict[str, Any] = {"proctitle": line[head.end():end].strip().removeprefix("proctitle=")}
    else:
        fields = _fields(line, head.end(), end, record_type, origin, decode=not interpreted)
    message = fields.pop("msg", None)
    if isinstance(message, tuple):  # a user-space message: its fields are the record's own
        message, inner = message
        fields.update(inner)
    return AuditRecord(type=record_type, timestamp_ms=ms, serial=int(head["serial"]), line=line,
                       fields=fields, node=head["node"], message=message, interpreted=interpreted,
                       enriched={k: v for k, v in _fields(line, end + 1, len(line), "", origin, decode=False).items()
                                 if isinstance(v, str)})


def _fields(line: str, start: int, end: int, record_type: str, origin: EventOrigin, *,
            decode: bool) -> dict[str, Any]:
    """The `key=value` fields of `line[start:end]`."""
    if start >= end:
        return {}
    out: dict[str, Any] = {}
    chunks: dict[int, dict[int, str]] = {}
    last_key: str | None = None
    pos = _SPACE.match(line, start, end).end()  # type: ignore[union-attr]
    while pos < end:
        token = _TOKEN.match(line, pos, end)
        if token is None:
            raise AuditRecordParseError.at(origin, f"unterminated quote or stray character at column "
                                                   f"{pos + 1}: {_excerpt(line[pos:end])!r}")
        pos = _SPACE.match(line, token.end(), end).end()  # type: ignore[union-attr]
        key = token[1]
        if key is None:  # a bare word: `op=adding user` goes on, AVC's `avc: denied { read } for` is dropped
            if last_key == "op":
                out["op"] += " " + token["word"]
            continue
        last_key = key if token["bare"] is not None else None
        value: Any = token["dq"] if token["dq"] is not None else token["sq"]
        if key == "msg" and value is not None and "=" in value:
            group = "dq" if token["dq"] is not None else "sq"
            inner = _fields(line, token.start(group), token.end(group), record_type, origin, decode=decode)
            out["msg"] = (value, inner)
            continue
        if value is None:
            value = token["bare"]
            if decode and (key in _ENCODED or (record_type == "EXECVE" and _is_argument(key))):
                value = _decode(key, value)
        chunk = _ARG_CHUNK.fullmatch(key) if record_type == "EXECVE" else None
        if chunk:
            chunks.setdefault(int(chunk[1]), {})[int(chunk[2])] = value
        else:
            out[key] = value
    for arg, parts in sorted(chunks.items()):
        out[f"a{arg}"] = "".join(parts[i] for i in sorted(parts))
    return out


def _excerpt(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _is_argument(key: str) -> bool:
    return _ARG.fullmatch(key) is not None or _ARG_CHUNK.fullmatch(key) is not None


def _decode(key: str, value: str) -> Any:
    """A hex-encoded value as text (only values the kernel would otherwise have quoted are hex)."""
    if not _HEX.fullmatch(value):
        return value
    text = bytes.fromhex(value).decode("utf-8", "backslashreplace")
    if key == "proctitle":
        return text.rstrip("\x00").replace("\x00", " ")
    if key == "key" and "\x01" in text:
        return text.split("\x01")
    return text


@cache
def _syscall_table() -> tuple[str, ...]:
    low, high = (part.split() for part in _X86_64_SYSCALLS)
    return (*low, *[""] * (424 - len(low)), *high)


def syscall_name(arch: str, number: str) -> str | None:
    """The name of a syscall number on an audit arch (`c000003e`/`x86_64` only); None when unknown."""
    if arch.lower() not in ("c000003e", "x86_64") or not number.isdigit():
        return None
    table = _syscall_table()
    return (table[int(number)] or None) if int(number) < len(table) else None


def assemble(records: Sequence[AuditRecord], origin: EventOrigin) -> Event:
    """The records of one audit event (in file order) as one `Event`."""
    if not records:
        raise ValueError("an audit event needs at least one record")
    body = [r for r in records if r.type != "EOE"] or list(records)
    main = next((r for r in body if r.type == "SYSCALL"), body[0])
    ordered = [main, *(r for r in body if r is not main)]
    native = _native(ordered)
    flat = _ecs(main, ordered, native)
    raw = "\n".join(r.line for r in records)
    return Event(id=event_id_for(raw, main.timestamp_ms), timestamp_ms=main.timestamp_ms, raw=raw, ecs=nest(flat),
                 fields={**flat, **native}, origin=origin, host_name=main.node)


def _add(out: dict[str, Any], key: str, value: Any) -> None:
    old = out.get(key)
    if old is None:
        out[key] = value
        return
    values = old if isinstance(old, list) else [old]
    for item in value if isinstance(value, list) else [value]:
        if item not in values:
            values = [*values, item]
    out[key] = values if len(values) > 1 else values[0]


def _native(records: Sequence[AuditRecord]) -> dict[str, Any]:
    """The audit field names rules read: every record's fields, EXECVE's arguments over SYSCALL's registers."""
    has_execve = any(r.type == "EXECVE" for r in records)
    out: dict[str, Any] = {}
    for record in records:
        _add(out, "type", record.type)
        skip_args = has_execve and record.type == "SYSCALL"
        for key, value in (*record.fields.items(), *record.enriched.items()):
            if not (skip_args and _ARG.fullmatch(key)):
                _add(out, key, value)
    syscall = out.get("syscall")
    if "SYSCALL" not in out and isinstance(syscall, str):
        name = syscall if not syscall.isdigit() else syscall_name(str(out.get("arch", "")), syscall)
        if name:
            out["SYSCALL"] = name
    return out


def _first(records: Sequence[AuditRecord], key: str) -> str | None:
    for record in records:
        value = record.fields.get(key)
        if isinstance(value, str) and value not in _NULL:
            return value
    return None


def _name_of(record: AuditRecord, key: str, enriched: str) -> str | None:
    """The translated name of an id field: ENRICHED (`UID="root"`) or an interpreted value."""
    name = record.enriched.get(enriched)
    value = record.fields.get(key)
    if name is None and record.interpreted and isinstance(value, str) and not value.isdigit():
        name = value
    return name if name not in _NULL else None


def _ecs(main: AuditRecord, records: Sequence[AuditRecord], native: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {
        "@timestamp": ms_to_iso(main.timestamp_ms), "event.kind": "event", "event.module": "auditd",
        "event.dataset": "auditd.log", "event.sequence": main.serial,
        "auditd.log.record_type": main.type, "auditd.log.sequence": main.serial,
    }
    for key, value in (*main.fields.items(), *main.enriched.items()):
        flat[f"auditd.log.{key}"] = value
    if main.node:
        flat["host.name"] = main.node
    logged_arch = str(main.fields.get("arch", ""))
    arch = main.enriched.get("ARCH") or _ARCHES.get(logged_arch) or (main.interpreted and logged_arch)
    if arch:
        flat["host.architecture"] = arch
    if main.message is not None:
        flat["message"] = main.message
    _event(flat, main, native)
    _process(flat, records, native)
    _user(flat, main)
    addr, hostname = main.fields.get("addr"), main.fields.get("hostname")
    if isinstance(addr, str) and addr not in _NULL:
        flat["source.address"] = addr
        with contextlib.suppress(ValueError):
            flat["source.ip"] = str(ipaddress.ip_address(addr.strip("[]")))
    if isinstance(hostname, str) and hostname not in _NULL and hostname != addr:
        flat["source.domain"] = hostname
    cwd = _first(records, "cwd")
    paths = [name if name.startswith("/") or not cwd else f"{cwd.rstrip('/')}/{name}"
             for r in records if r.type == "PATH" and (name := _first([r], "name"))]
    if paths:
        flat["file.path"] = paths[0] if len(paths) == 1 else paths
    keys = main.fields.get("key")
    tags = [k for k in (keys if isinstance(keys, list) else [keys]) if isinstance(k, str) and k not in _NULL]
    if tags:
        flat["tags"] = tags
    return flat


def _event(flat: dict[str, Any], main: AuditRecord, native: dict[str, Any]) -> None:
    syscall = native.get("SYSCALL") if main.type == "SYSCALL" else None
    action: str
    categories: tuple[str, ...]
    types: tuple[str, ...]
    if syscall in _EXEC_SYSCALLS:
        action, categories, types = "executed", ("process",), ("start",)
    elif main.type == "SYSCALL":
        action, categories, types = str(syscall or "syscall"), (), ()
    else:
        action, categories, types = _ACTIONS.get(main.type, (main.type.lower(), (), ()))
    flat["event.action"] = action
    if categories:
        flat["event.category"] = list(categories)
        flat["event.type"] = list(types)
    result = main.fields.get("success", main.fields.get("res"))
    if isinstance(result, str) and result.lower() in ("yes", "success", "1"):
        flat["event.outcome"] = "success"
    elif isinstance(result, str) and result.lower() in ("no", "failed", "failure", "0"):
        flat["event.outcome"] = "failure"


def _process(flat: dict[str, Any], records: Sequence[AuditRecord], native: dict[str, Any]) -> None:
    for key, targets in (("pid", ("process.pid",)), ("ppid", ("process.ppid", "process.parent.pid")),
                         ("exit", ("process.exit_code",))):
        value = _first(records[:1], key)
        if value is not None and value.lstrip("-").isdigit():
            flat.update(dict.fromkeys(targets, int(value)))
    for key, target in (("exe", "process.executable"), ("comm", "process.name"),
                        ("cwd", "process.working_directory"), ("proctitle", "process.title")):
        value = _first(records, key)
        if value is not None:
            flat[target] = value
    execve = next((r for r in records if r.type == "EXECVE"), None)
    if execve is not None:
        argc = execve.fields.get("argc")
        count = int(argc) if isinstance(argc, str) and argc.isdigit() else len(
            [k for k in execve.fields if _ARG.fullmatch(k)])
        args = [str(execve.fields.get(f"a{i}", "")) for i in range(count)]
        flat.update({"process.args": args, "process.args_count": len(args), "process.command_line": " ".join(args)})
    elif (command := _first(records, "cmd") or native.get("proctitle")) and isinstance(command, str):
        flat["process.command_line"] = command
        flat["process.args"] = command.split()
        flat["process.args_count"] = len(flat["process.args"])


def _user(flat: dict[str, Any], main: AuditRecord) -> None:
    for key, enriched, prefix in _USER_IDS:
        value, name = main.fields.get(key), _name_of(main, key, enriched)
        if isinstance(value, str) and value.isdigit():
            flat[f"{prefix}.id"] = value
        if name:
            flat[f"{prefix}.name"] = name
    auid, auid_name = main.fields.get("auid"), _name_of(main, "auid", "AUID")
    if isinstance(auid, str) and auid.isdigit() and auid != _UNSET_ID:
        flat["user.audit.id"] = auid
    if auid_name:
        flat["user.audit.name"] = auid_name
    terminal = _first([main], "terminal") or _first([main], "tty")
    if terminal:
        flat["user.terminal"] = terminal
    acct, target_id = _first([main], "acct"), _first([main], "id")
    categories = _ACTIONS.get(main.type, ("", (), ()))
    if "group" in categories[2]:
        prefix = "group"
    elif "iam" in categories[1]:
        prefix = "user.target"
    else:
        prefix = "user"
    if prefix == "user" and not acct and main.message is not None:
        acct = _name_of(main, "id", "ID")  # USER_LOGIN names its user by id=
    if acct:
        flat[f"{prefix}.name"] = acct
    if prefix != "user" and target_id and target_id.isdigit():
        flat[f"{prefix}.id"] = target_id


def assemble_lines(lines: Iterable[tuple[int, str]], where: str | None = None, *,
                   lookahead: int = DEFAULT_LOOKAHEAD) -> Iterator[Event | Rejected]:
    """Numbered audit log lines to `Event`s (records grouped as the module doc says) and `Rejected` lines."""
    assembler = AuditAssembler(where, lookahead=lookahead)
    for number, line in lines:
        yield from assembler.add(number, line)
    yield from assembler.flush()


class AuditAssembler:
    """The records of a growing audit log in, its events out as each completes: `assemble_lines` one line at a
    time, for a tailed log. `add` gives the events a line completes (and the line itself when it is not a record),
    `expire` the events whose last record is older than `idle` seconds (a kernel event without EOE on a quiet
    host; auparse's end_of_event_timeout), `flush` every event still open. `held` is where the oldest open event
    starts: a tailer must not count the lines from there as accepted, since their event is not out yet."""

    def __init__(self, where: str | None = None, *, lookahead: int = DEFAULT_LOOKAHEAD) -> None:
        if lookahead < 1:
            raise ValueError(f"lookahead must be at least 1, got {lookahead}")
        self.where = where
        self.lookahead = lookahead
        self._pending: dict[tuple[int, int], _Pending] = {}
        self._count = 0

    @property
    def held(self) -> tuple[int, int | None] | None:
        """(line number, byte offset given to `add`) of the first record of the oldest open event."""
        for entry in self._pending.values():
            return entry.first_line, entry.first_offset
        return None

    def add(self, number: int, line: str, *, offset: int | None = None, now: float = 0.0) -> list[Event | Rejected]:
        """Line `number` (starting at byte `offset`, read at monotonic time `now`)."""
        text = line.rstrip("\r\n")
        if not text.strip() or _SKIPPED_LINE.match(text):
            return []
        origin = EventOrigin(path=self.where, offset=number, format=FORMAT)
        try:
            record = parse_record(text, origin)
        except AuditRecordParseError as exc:
            return [Rejected(f"line {number}: {exc.reason}", origin, text)]
        self._count += 1
        entry = self._pending.get(record.event_key)
        if entry is None:
            entry = self._pending[record.event_key] = _Pending(first_line=number, first_offset=offset)
        entry.records.append(record)
        entry.last_seen = self._count
        entry.last_time = now
        entry.complete = entry.complete or record.type == "EOE" or record.message is not None
        return self._ready(lambda head: head.complete or head.last_seen + self.lookahead <= self._count)

    def expire(self, now: float, idle: float) -> list[Event | Rejected]:
        """The open events at the head whose last record came `idle` seconds or more before `now`."""
        return self._ready(lambda head: head.complete or now - head.last_time >= idle)

    def flush(self) -> list[Event | Rejected]:
        """Every open event, as it stands (the end of the file)."""
        return self._ready(lambda _head: True)

    def _ready(self, done: Callable[[_Pending], bool]) -> list[Event | Rejected]:
        out: list[Event | Rejected] = []
        pending = self._pending
        while pending:
            key, head = next(iter(pending.items()))
            if not done(head):
                break
            del pending[key]
            if not head.only_eoe:
                out.append(head.event(self.where))
        return out


@dataclass(slots=True)
class _Pending:
    first_line: int
    first_offset: int | None = None
    records: list[AuditRecord] = field(default_factory=list)
    last_seen: int = 0
    last_time: float = 0.0
    complete: bool = False

    @property
    def only_eoe(self) -> bool:
        """A lone EOE whose event was already emitted: nothing to say."""
        return all(r.type == "EOE" for r in self.records)

    def event(self, where: str | None) -> Event:
        main = self.records[0]
        return assemble(self.records, EventOrigin(path=where, offset=self.first_line, record_id=main.serial,
                                                  format=FORMAT))


def sniff(head: bytes) -> bool:
    """Whether a file's first bytes look like an audit log: its first non-blank line (after ausearch's `----`
    separators) starts like an audit record."""
    for data in head.removeprefix(b"\xef\xbb\xbf").split(b"\n", 20)[:20]:
        line = data.strip()
        if line and not line.startswith((b"----", b"time->")):
            return _SNIFF.match(line) is not None
    return False


def read_file(path: Path, *, lookahead: int = DEFAULT_LOOKAHEAD) -> Iterator[Event | Rejected]:
    """Every audit event of a log file as an `Event`, or a `Rejected` ("line N: reason") for a bad line."""
    if lookahead < 1:
        raise ValueError(f"lookahead must be at least 1, got {lookahead}")
    return _read(Path(path), lookahead)


def _read(path: Path, lookahead: int) -> Iterator[Event | Rejected]:
    where = str(path)
    try:
        with path.open("rb") as handle:
            numbered = ((n, data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "backslashreplace"))
                        for n, data in enumerate(handle, 1))
            yield from assemble_lines(numbered, where, lookahead=lookahead)
    except OSError as exc:
        yield Rejected(f"cannot read file: {exc.strerror or exc}", EventOrigin(path=where, format=FORMAT))
