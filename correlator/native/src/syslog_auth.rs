//! The auth part of `syslog_event`: `collectors/linux_auth.py`'s `auth_fields` for the messages ported (sshd's
//! logins, invalid users and closed connections, PAM sessions, sudo, useradd's new users; programs without a
//! handler get the base fields), over printable ASCII; None for any other auth message (Python reads it).

use std::sync::OnceLock;

use regex::bytes::{Captures, Regex};

use crate::syslog_header::{digits, Header};

const SSHD_PROGRAMS: [&str; 3] = ["sshd", "sshd-session", "sshd-auth"];
const ACCOUNT_PROGRAMS: [&str; 13] = [
    "useradd", "usermod", "userdel", "groupadd", "groupmod", "groupdel", "passwd", "chpasswd",
    "gpasswd", "chage", "newusers", "adduser", "deluser",
];
const OTHER_AUTH_PROGRAMS: [&str; 10] = [
    "sudo",
    "su",
    "login",
    "systemd-logind",
    "polkitd",
    "pkexec",
    "unix_chkpwd",
    "chfn",
    "chsh",
    "newgrp",
];
/// A field's value, borrowing its text from the line (or a constant).
#[derive(Clone)]
pub enum Value<'a> {
    Str(&'a str),
    Int(i64),
    List(Vec<&'a str>),
}

/// Flat fields in insertion order; setting a name again keeps its place, as a dict does. Names are compared
/// by address first: they are the constants of this module.
#[derive(Default)]
pub struct Fields<'a>(pub Vec<(&'static str, Value<'a>)>);

impl<'a> Fields<'a> {
    fn set(&mut self, name: &'static str, value: Value<'a>) {
        match self.0.iter_mut().find(|(n, _)| same(n, name)) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
    fn str(&mut self, name: &'static str, value: &'a str) {
        self.set(name, Value::Str(value));
    }
    fn list(&mut self, name: &'static str, values: &[&'a str]) {
        self.set(name, Value::List(values.to_vec()));
    }
    /// `_set`: only a non-empty value.
    fn some(&mut self, name: &'static str, value: Option<&'a str>) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.str(name, v);
        }
    }
    pub fn get(&self, name: &str) -> Option<&Value<'a>> {
        self.0.iter().find(|(n, _)| same(n, name)).map(|(_, v)| v)
    }
    fn get_str(&self, name: &str) -> Option<&'a str> {
        match self.get(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }
}

fn same(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

// ------------------------------------------------------------------------------------------------ auth

struct Patterns {
    ssh_login: Regex,
    ssh_invalid: Regex,
    ssh_closed: Regex,
    sudo: Regex,
    pam: Regex,
    pam_session: Regex,
    new_user: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        // The patterns of collectors/linux_auth.py, matched whole as `fullmatch` does, over ASCII (`(?-u)`: the
        // lines read here are printable ASCII, where these classes are Python's).
        let full = |p: &str| Regex::new(&format!("(?-u)^(?:{p})$")).expect("a valid pattern");
        Patterns {
            ssh_login: full(
                r"(?P<event>Accepted|Failed) (?P<method>\S+) for (?:invalid user )?(?P<user>.*?) from (?P<ip>\S+) port (?P<port>\d+)(?: ssh2)?(?:: (?P<signature>.+))?",
            ),
            ssh_invalid: full(r"Invalid user (?P<user>.*?) from (?P<ip>\S+)(?: port (?P<port>\d+))?"),
            ssh_closed: full(
                r"(?P<event>Connection closed|Connection reset|Disconnected) (?:by|from)(?: (?:invalid|authenticating) user (?P<user_a>.*?)| user (?P<user_b>.*?))? (?P<ip>\S+?)(?: port (?P<port>\d+))?(?: \[preauth\])?",
            ),
            sudo: full(r"(?P<user>\S+) : (?:(?P<error>[^;=]+?) ; )?(?P<rest>(?:TTY|PWD|USER|COMMAND)=.*)"),
            pam: full(r"(?P<module>pam_\w+)\((?P<service>[^:()]+):(?P<kind>\w+)\): (?P<body>.*)"),
            pam_session: full(
                r"session (?P<state>opened|closed) for user (?P<for>[^\s(]+)(?:\(uid=(?P<for_uid>\d+)\))?(?: by (?P<by>[^\s(]*)(?:\(uid=(?P<by_uid>\d+)\))?)?",
            ),
            new_user: full(
                r"new user: name=(?P<user>[^,]*), UID=(?P<uid>\d+), GID=(?P<gid>\d+)(?:, home=(?P<home>[^,]*))?(?:, shell=(?P<shell>[^,]*))?(?:, from=.*)?",
            ),
        }
    })
}

/// What reading an auth message gave: its fields (None: the message is not read here).
type Found<'a> = Option<Fields<'a>>;

/// `linux_auth.is_auth_message`: an auth program, the auth or authpriv facility, or a PAM module's message.
pub fn is_auth_message(head: &Header<'_>) -> bool {
    let program = head.appname;
    SSHD_PROGRAMS.contains(&program)
        || ACCOUNT_PROGRAMS.contains(&program)
        || OTHER_AUTH_PROGRAMS.contains(&program)
        || head.facility == 4
        || head.facility == 10
        || head.message.starts_with("pam_")
}

pub fn auth_fields<'a>(head: &Header<'a>) -> Option<Fields<'a>> {
    let text = head.message;
    if text.starts_with("message repeated ") || text.starts_with("PAM ") {
        return None;
    }
    let mut fields = Fields::default();
    fields.str("event.module", "system");
    fields.str("event.dataset", "system.auth");
    fields.str("event.kind", "event");
    let program = head.appname;
    let found: Found<'a> = if text.starts_with("pam_") {
        let pam = patterns().pam.captures(text.as_bytes())?;
        pam_session(group(&pam, "body")?)
    } else if SSHD_PROGRAMS.contains(&program) {
        sshd(text)
    } else if program == "sudo" {
        Some(sudo(text).unwrap_or_default())
    } else if program == "useradd" {
        new_user(text)
    } else if program == "su" || ACCOUNT_PROGRAMS.contains(&program) {
        None // handlers not ported
    } else {
        Some(Fields::default()) // no handler: the base fields
    };
    for (name, value) in found?.0 {
        fields.set(name, value);
    }
    add_related(&mut fields);
    Some(fields)
}

fn group<'t>(caps: &Captures<'t>, name: &str) -> Option<&'t str> {
    caps.name(name)
        .and_then(|m| std::str::from_utf8(m.as_bytes()).ok())
}

/// `_address`: `source.ip` for an IPv4 address (canonical as written), `source.domain` for a name; an IPv6
/// address (its canonical form is Python's to give) is not read here.
fn address<'a>(fields: &mut Fields<'a>, address: &'a str, port: Option<&'a str>) -> Option<()> {
    if address.contains(':') {
        return None;
    }
    if is_ipv4(address) {
        fields.str("source.ip", address);
    } else {
        fields.str("source.domain", address);
    }
    if let Some(port) = port {
        fields.set("source.port", Value::Int(digits(port.as_bytes())?));
    }
    Some(())
}

/// What `ipaddress.ip_address` accepts as IPv4 (four decimal octets, no leading zeros), which it writes back
/// unchanged.
fn is_ipv4(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|c| c.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
                && p.parse::<u16>().is_ok_and(|v| v <= 255)
        })
}

fn ssh<'a>(
    event: &'a str,
    ip: &'a str,
    port: Option<&'a str>,
    user: Option<&'a str>,
) -> Option<Fields<'a>> {
    let mut fields = Fields::default();
    fields.str("system.auth.ssh.event", event);
    address(&mut fields, ip, port)?;
    fields.some("user.name", user);
    Some(fields)
}

fn sshd(text: &str) -> Found<'_> {
    let p = patterns();
    if let Some(c) = p.ssh_login.captures(text.as_bytes()) {
        let event = group(&c, "event")?;
        let accepted = event == "Accepted";
        let mut fields = ssh(
            event,
            group(&c, "ip")?,
            group(&c, "port"),
            group(&c, "user"),
        )?;
        fields.str("system.auth.ssh.method", group(&c, "method")?);
        let category: &[&str] = if accepted {
            &["authentication", "session"]
        } else {
            &["authentication"]
        };
        fields.list("event.category", category);
        fields.list("event.type", &["info"]);
        fields.str("event.action", "ssh_login");
        fields.str(
            "event.outcome",
            if accepted { "success" } else { "failure" },
        );
        fields.some("system.auth.ssh.signature", group(&c, "signature"));
        return Some(fields);
    }
    if let Some(c) = p.ssh_invalid.captures(text.as_bytes()) {
        let mut fields = ssh(
            "Invalid",
            group(&c, "ip")?,
            group(&c, "port"),
            group(&c, "user"),
        )?;
        fields.list("event.category", &["authentication"]);
        fields.list("event.type", &["info"]);
        fields.str("event.action", "ssh_login");
        fields.str("event.outcome", "failure");
        return Some(fields);
    }
    if let Some(c) = p.ssh_closed.captures(text.as_bytes()) {
        let user = group(&c, "user_a").or_else(|| group(&c, "user_b"));
        let mut fields = ssh(
            group(&c, "event")?,
            group(&c, "ip")?,
            group(&c, "port"),
            user,
        )?;
        fields.list("event.category", &["network"]);
        fields.list("event.type", &["connection", "end"]);
        fields.str("event.action", "ssh_disconnect");
        return Some(fields);
    }
    None // the other sshd messages: Python
}

fn pam_session(body: &str) -> Found<'_> {
    let c = patterns().pam_session.captures(body.as_bytes())?; // failures and password changes: Python
    let opened = group(&c, "state")? == "opened";
    let mut fields = Fields::default();
    fields.list("event.category", &["session"]);
    fields.list("event.type", &[if opened { "start" } else { "end" }]);
    fields.str(
        "event.action",
        if opened {
            "session_opened"
        } else {
            "session_closed"
        },
    );
    fields.str("event.outcome", "success");
    let by = group(&c, "by").filter(|b| !b.is_empty());
    if let Some(by) = by {
        fields.str("user.name", by);
        fields.some("user.id", group(&c, "by_uid"));
        fields.str("user.effective.name", group(&c, "for")?);
        fields.some("user.effective.id", group(&c, "for_uid"));
    } else {
        fields.str("user.name", group(&c, "for")?);
        fields.some("user.id", group(&c, "for_uid"));
    }
    Some(fields)
}

fn sudo(text: &str) -> Found<'_> {
    let c = patterns().sudo.captures(text.as_bytes())?;
    let rest = group(&c, "rest")?;
    let (mut head, mut command, sep) = match rest.split_once(" ; COMMAND=") {
        Some((h, cmd)) => (h, cmd, true),
        None => (rest, "", false),
    };
    let bare = rest.starts_with("COMMAND=");
    if !sep && bare {
        head = "";
        command = &rest["COMMAND=".len()..];
    }
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for part in head.split(" ; ").filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => pairs.push((key, value)),
        }
    }
    let pair = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let mut fields = Fields::default();
    fields.str("user.name", group(&c, "user")?);
    fields.list("event.category", &["process"]);
    fields.str("event.action", "sudo");
    for (key, name) in [
        ("TTY", "system.auth.sudo.tty"),
        ("PWD", "system.auth.sudo.pwd"),
        ("USER", "system.auth.sudo.user"),
    ] {
        if let Some(value) = pair(key) {
            fields.str(name, value);
        }
    }
    if sep || bare {
        fields.str("system.auth.sudo.command", command);
    }
    if let Some(user) = pair("USER") {
        fields.str("user.effective.name", user);
    }
    match group(&c, "error") {
        Some(error) => {
            fields.str("system.auth.sudo.error", error);
            fields.list("event.type", &["info"]);
            fields.str("event.outcome", "failure");
        }
        None => {
            fields.list("event.type", &["start"]);
            fields.str("event.outcome", "success");
        }
    }
    Some(fields)
}

fn new_user(text: &str) -> Found<'_> {
    let c = patterns().new_user.captures(text.as_bytes())?; // the other account messages: Python
    let mut fields = Fields::default();
    fields.list("event.category", &["iam"]);
    fields.list("event.type", &["user", "creation"]);
    fields.str("event.action", "user_created");
    fields.str("event.outcome", "success");
    fields.some("user.name", group(&c, "user"));
    fields.str("user.id", group(&c, "uid")?);
    fields.str("group.id", group(&c, "gid")?);
    fields.some("system.auth.useradd.home", group(&c, "home"));
    fields.some("system.auth.useradd.shell", group(&c, "shell"));
    Some(fields)
}

/// `_add_related`.
fn add_related(fields: &mut Fields<'_>) {
    let mut users: Vec<&str> = Vec::new();
    let mut candidates: Vec<&str> = Vec::new();
    candidates.extend(fields.get_str("user.name"));
    candidates.extend(fields.get_str("user.effective.name"));
    if let Some(Value::List(related)) = fields.get("related.user") {
        candidates.extend(related.iter().copied());
    }
    for user in candidates {
        if !user.is_empty() && !users.contains(&user) {
            users.push(user);
        }
    }
    if !users.is_empty() {
        fields.set("related.user", Value::List(users));
    }
    if let Some(ip) = fields.get_str("source.ip") {
        fields.set("related.ip", Value::List(vec![ip]));
    }
}
