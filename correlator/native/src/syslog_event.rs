//! The common case of `correlator.live.intake.frame_to_event`, natively: an RFC 3164 line with `<PRI>`, a BSD
//! timestamp read in UTC, a hostname and a `tag[pid]:`, to the flat ECS fields `collectors.syslog_file.to_event`
//! gives it (`SyslogMessage.to_fields` and, for an auth message, `linux_auth.auth_fields` in the order
//! `linux_auth.to_fields` lays them out), with its epoch milliseconds and event id.
//!
//! Only what this module knows to read exactly as Python does is read here: printable ASCII lines (Python's and
//! Rust's `\s`, `\d` and `\w` then agree), one space between the header's parts, a hostname without `[`, `]` or
//! `:`, and of the auth messages sshd's logins, invalid users and closed connections, PAM sessions, sudo and
//! useradd's new users; other auth programs' messages without a handler get the base auth fields, as in Python.
//! Anything else (RFC 5424, another zone, IPv6 addresses, a firewall line, a pattern not ported, a value out of
//! range) returns None and Python reads the line, so the fields never depend on which reader read it
//! (tests/collectors/test_syslog_native.py compares both on every line they have).

use std::cell::RefCell;
use std::rc::Rc;

use ahash::AHashMap;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use sha2::{Digest, Sha256};

use crate::layouts::{cached, layout, Cache, Layout};
use crate::strings::py_key;
use crate::syslog_auth::{auth_fields, is_auth_message, Value};
use crate::syslog_document::{stored_document, Leaf};
use crate::syslog_header::{digits, header, iso, FACILITY_NAMES, SEVERITY_NAMES};

// ------------------------------------------------------------------------------------------------ layout

/// The order `flat_fields(nest(...))` gives names inserted in this order; None when one nests under another.
fn nest_order(names: &[&'static str]) -> Option<Vec<&'static str>> {
    struct Node {
        key: &'static str,
        leaf: Option<&'static str>,
        children: Vec<Node>,
    }
    fn insert(nodes: &mut Vec<Node>, parts: &[&'static str], name: &'static str) -> Option<()> {
        let index = match nodes.iter().position(|n| n.key == parts[0]) {
            Some(i) => i,
            None => {
                nodes.push(Node {
                    key: parts[0],
                    leaf: None,
                    children: Vec::new(),
                });
                nodes.len() - 1
            }
        };
        let node = &mut nodes[index];
        if parts.len() == 1 {
            if !node.children.is_empty() {
                return None;
            }
            node.leaf = Some(name);
            return Some(());
        }
        if node.leaf.is_some() {
            return None;
        }
        insert(&mut node.children, &parts[1..], name)
    }
    fn walk(nodes: &[Node], out: &mut Vec<&'static str>) {
        for node in nodes {
            match node.leaf {
                Some(name) => out.push(name),
                None => walk(&node.children, out),
            }
        }
    }
    let mut roots = Vec::new();
    for name in names {
        let parts: Vec<&'static str> = name.split('.').collect();
        insert(&mut roots, &parts, name)?;
    }
    let mut out = Vec::new();
    walk(&roots, &mut out);
    Some(out)
}

/// What `syslog_event` gives Python: `(timestamp_ms, fields, event id, document JSON, free text)`.
type Event<'py> = (i64, Bound<'py, PyDict>, String, String, String);

const SYSLOG_TOP: [&str; 6] = ["@timestamp", "event", "message", "log", "host", "process"];

type Order = Option<Rc<Vec<&'static str>>>;

thread_local! {
    static ORDERS: Cache<Layout, Order> = RefCell::new(AHashMap::new());
}

/// `nest_order` of `names`, worked out once per layout.
fn cached_nest_order(names: &[&'static str]) -> Order {
    cached(&ORDERS, layout(names), || nest_order(names).map(Rc::new))
}

// ------------------------------------------------------------------------------------------------ entry

fn leaf<'v>(value: &'v Value<'_>) -> Leaf<'v> {
    match value {
        Value::Str(s) => Leaf::Str(s),
        Value::Int(i) => Leaf::Int(*i),
        Value::List(items) => Leaf::List(items),
    }
}

fn put<'py>(
    py: Python<'py>,
    dict: &Bound<'py, PyDict>,
    name: &str,
    value: &Leaf<'_>,
) -> PyResult<()> {
    let key = py_key(py, name);
    match value {
        Leaf::Str(s) => dict.set_item(key, *s),
        Leaf::Int(i) => dict.set_item(key, *i),
        Leaf::List(items) => dict.set_item(key, PyList::new(py, *items)?),
    }
}

/// The event id of a record with SHA-256 `digest` at `timestamp_ms`, as `correlator.model.timed_id`: the time
/// clamped to 0 ..= 16**12 - 1 in 12 lowercase hex digits, then the digest's first 10 bytes in hex.
fn timed_id(timestamp_ms: i64, digest: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    const TIME_MAX: i64 = (1 << 48) - 1;
    let mut out = format!("{:012x}", timestamp_ms.clamp(0, TIME_MAX));
    for &b in &digest[..10] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// `(timestamp_ms, fields, event id, document, free text)` of a syslog frame's text received at `received_ms`
/// from `peer`, read in UTC, its document with `log.file.path` `path` (`syslog_document`), the id hashing
/// `repeat` when not 0 (`correlator.live.intake.frame_key`); None when Python is to read it (see the module doc).
#[pyfunction]
#[pyo3(signature = (raw, received_ms, peer, path=None, repeat=0))]
pub fn syslog_event<'py>(
    py: Python<'py>,
    raw: &Bound<'py, PyString>,
    received_ms: i64,
    peer: &Bound<'py, PyString>,
    path: Option<&str>,
    repeat: u64,
) -> PyResult<Option<Event<'py>>> {
    let (Ok(text), Ok(peer_text)) = (raw.to_str(), peer.to_str()) else {
        return Ok(None);
    };
    let Some(head) = header(text, received_ms).filter(|h| h.timestamp_ms >= 0) else {
        return Ok(None);
    };
    let auth = if is_auth_message(&head) {
        match auth_fields(&head) {
            Some(fields) => Some(fields),
            None => return Ok(None),
        }
    } else {
        // not auth: a firewall line is Python's (collectors/firewall.py)
        let m = head.message;
        if head.appname == "filterlog"
            || head.appname.starts_with('%')
            || m.starts_with('%')
            || m.starts_with(": %")
            || m.contains("IN=")
        {
            return Ok(None);
        }
        None
    };
    let pid = head
        .procid
        .filter(|p| p.bytes().all(|c| c.is_ascii_digit()));
    let pid = match pid {
        Some(p) => Some(match digits(p.as_bytes()) {
            Some(v) => v,
            None => return Ok(None),
        }),
        None => None,
    };
    let timestamp = iso(head.timestamp_ms);
    let mut flat: Vec<(&'static str, Leaf<'_>)> = vec![("@timestamp", Leaf::Str(&timestamp))];
    let mut others: Vec<&'static str> = Vec::new();
    match &auth {
        Some(fields) => {
            for (name, value) in &fields.0 {
                if name.starts_with("event.") {
                    flat.push((name, leaf(value)));
                } else if SYSLOG_TOP.contains(&name.split('.').next().unwrap_or(name)) {
                    return Ok(None); // `_layout` would flatten it the long way
                } else {
                    others.push(name);
                }
            }
        }
        None => {
            flat.push(("event.module", Leaf::Str("system")));
            flat.push(("event.dataset", Leaf::Str("system.syslog")));
        }
    }
    flat.push(("message", Leaf::Str(head.message)));
    flat.push(("log.syslog.facility.code", Leaf::Int(head.facility as i64)));
    flat.push((
        "log.syslog.facility.name",
        Leaf::Str(FACILITY_NAMES[head.facility]),
    ));
    flat.push(("log.syslog.severity.code", Leaf::Int(head.severity as i64)));
    flat.push((
        "log.syslog.severity.name",
        Leaf::Str(SEVERITY_NAMES[head.severity]),
    ));
    flat.push((
        "log.syslog.priority",
        Leaf::Int((head.facility * 8 + head.severity) as i64),
    ));
    flat.push(("log.syslog.hostname", Leaf::Str(head.hostname)));
    flat.push(("log.syslog.appname", Leaf::Str(head.appname)));
    if let Some(procid) = head.procid {
        flat.push(("log.syslog.procid", Leaf::Str(procid)));
    }
    flat.push(("log.source.address", Leaf::Str(peer_text)));
    flat.push(("host.hostname", Leaf::Str(head.hostname)));
    flat.push(("host.name", Leaf::Str(head.hostname)));
    flat.push(("process.name", Leaf::Str(head.appname)));
    if let Some(pid) = pid {
        flat.push(("process.pid", Leaf::Int(pid)));
    }
    if let Some(fields) = &auth {
        let Some(order) = cached_nest_order(&others) else {
            return Ok(None);
        };
        for &name in order.iter() {
            if let Some(value) = fields.get(name) {
                flat.push((name, leaf(value)));
            }
        }
    }
    let mut hasher = Sha256::new();
    hasher.update(peer_text.as_bytes());
    hasher.update([0u8]);
    hasher.update(text.as_bytes());
    if repeat > 0 {
        hasher.update(format!("\n#{repeat}").as_bytes()); // the n-th identical frame (`frame_key`)
    }
    let digest = hasher.finalize();
    let id = timed_id(head.timestamp_ms, &digest);
    let Some((document, free_text)) = stored_document(&flat, &timestamp, &id, text, path) else {
        return Ok(None);
    };
    let dict = PyDict::new(py);
    for (name, value) in &flat {
        put(py, &dict, name, value)?;
    }
    Ok(Some((head.timestamp_ms, dict, id, document, free_text)))
}
