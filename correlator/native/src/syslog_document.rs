//! The stored form of a syslog event the native reader read (`syslog_event`): the JSON document
//! `correlator.store.documents.prepare_event` would write for it and its free text, made from the flat fields
//! the reader gives Python, so a detection worker need not build the nested ECS document, serialise it and walk
//! it again.
//!
//! The document is `Event.to_document()` of the event: the fields nested by their dotted names in the order they
//! come (`correlator.model.nest`: a name's object takes the place of its first field), `@timestamp` set again,
//! `event.id` and `event.original` added to `event`, `log.file.path` to `log`; serialised as `orjson.dumps`
//! does (no spaces, keys in order, `"` `\` and control characters escaped, everything else as UTF-8). The free
//! text is `document_text` of it: its string and number values in document order, one per line, without
//! `event.original`. A name that would nest under another's value gives None (Python builds it).
//!
//! The shape depends only on the field names, and a reader gives few layouts (one per kind of message): each
//! layout is planned once (`Plan`: the document's fixed text between the values, and the order of the values in
//! the free text) and kept per thread, so an event only writes its values into the plan.

use std::cell::RefCell;
use std::fmt::Write;
use std::rc::Rc;

use ahash::AHashMap;

use crate::layouts::{cached, layout, Cache, Layout};

pub enum Leaf<'a> {
    Str(&'a str),
    Int(i64),
    List(&'a [&'a str]),
}

/// The names the document adds to the fields, in this order (`Event.to_document`).
const ADDED: [&str; 4] = ["@timestamp", "event.id", "event.original", "log.file.path"];

struct Node {
    key: &'static str,
    value: Slot,
}

enum Slot {
    Leaf(usize), // the value's index
    Object(Vec<Node>),
}

/// Set the value of index `value` at the dotted path whose first part is `first` and whose other parts `rest`
/// holds, as dict assignment does (an existing leaf keeps its place, takes the new value); None when a part is
/// a leaf already or the last part an object.
fn set(
    nodes: &mut Vec<Node>,
    first: &'static str,
    rest: &mut std::str::Split<'static, char>,
    value: usize,
) -> Option<()> {
    let next = rest.next();
    let index = match nodes.iter().position(|n| n.key == first) {
        Some(i) => i,
        None => {
            let slot = match next {
                None => Slot::Leaf(value),
                Some(_) => Slot::Object(Vec::new()),
            };
            nodes.push(Node {
                key: first,
                value: slot,
            });
            nodes.len() - 1
        }
    };
    match (&mut nodes[index].value, next) {
        (Slot::Leaf(leaf), None) => {
            *leaf = value;
            Some(())
        }
        (Slot::Object(children), Some(part)) => set(children, part, rest, value),
        _ => None,
    }
}

enum Op {
    Text(String), // fixed JSON: braces, commas, keys
    Value(usize),
}

/// A layout's document: `ops` write the JSON, `text` lists the values of the free text in order.
struct Plan {
    ops: Vec<Op>,
    text: Vec<usize>,
}

fn compile(nodes: &[Node], event: bool, fixed: &mut String, plan: &mut Plan) {
    fixed.push('{');
    for (i, node) in nodes.iter().enumerate() {
        if i > 0 {
            fixed.push(',');
        }
        escaped(node.key, fixed);
        fixed.push(':');
        match &node.value {
            Slot::Object(children) => compile(children, false, fixed, plan),
            Slot::Leaf(index) => {
                plan.ops.push(Op::Text(std::mem::take(fixed)));
                plan.ops.push(Op::Value(*index));
                // `event`: these are the top-level event object's: its `original` is not free text
                if !(event && node.key == "original") {
                    plan.text.push(*index);
                }
            }
        }
    }
    fixed.push('}');
}

/// The plan of `names` (the fields', then `ADDED`, the last one only `with_path`); None when they do not nest.
fn make_plan(names: &[&'static str], with_path: bool) -> Option<Plan> {
    let added = if with_path { &ADDED[..] } else { &ADDED[..3] };
    let mut roots = Vec::new();
    for (index, name) in names.iter().chain(added.iter()).enumerate() {
        let mut parts = name.split('.');
        let first = parts.next()?;
        set(&mut roots, first, &mut parts, index)?;
    }
    let mut plan = Plan {
        ops: Vec::new(),
        text: Vec::new(),
    };
    let mut fixed = String::new();
    fixed.push('{');
    for (i, node) in roots.iter().enumerate() {
        if i > 0 {
            fixed.push(',');
        }
        escaped(node.key, &mut fixed);
        fixed.push(':');
        match &node.value {
            Slot::Object(children) => compile(children, node.key == "event", &mut fixed, &mut plan),
            Slot::Leaf(index) => {
                plan.ops.push(Op::Text(std::mem::take(&mut fixed)));
                plan.ops.push(Op::Value(*index));
                plan.text.push(*index);
            }
        }
    }
    fixed.push('}');
    plan.ops.push(Op::Text(fixed));
    plan.ops
        .retain(|op| !matches!(op, Op::Text(t) if t.is_empty()));
    Some(plan)
}

thread_local! {
    static PLANS: Cache<(Layout, bool), Option<Rc<Plan>>> = RefCell::new(AHashMap::new());
}

/// The plan of a layout, made on its first event.
fn plan(names: &[&'static str], with_path: bool) -> Option<Rc<Plan>> {
    cached(&PLANS, (layout(names), with_path), || {
        make_plan(names, with_path).map(Rc::new)
    })
}

/// `text` as a JSON string, escaped as orjson does: `"`, `\` and control characters, the rest as it is.
fn escaped(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.push_str(&text[start..i]); // `i` is an ASCII byte: a character boundary
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

fn json_value(value: &Leaf<'_>, out: &mut String) {
    match value {
        Leaf::Str(s) => escaped(s, out),
        Leaf::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Leaf::List(items) => {
            out.push('[');
            for (j, item) in items.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                escaped(item, out);
            }
            out.push(']');
        }
    }
}

/// `value` as the next line(s) of the free text `out`, which has `lines` lines so far.
fn text_value(value: &Leaf<'_>, out: &mut String, lines: &mut usize) {
    let mut line = |out: &mut String| {
        if *lines > 0 {
            out.push('\n');
        }
        *lines += 1;
    };
    match value {
        Leaf::Str(s) => {
            line(out);
            out.push_str(s);
        }
        Leaf::Int(n) => {
            line(out);
            let _ = write!(out, "{n}");
        }
        Leaf::List(items) => {
            for item in items.iter() {
                line(out);
                out.push_str(item);
            }
        }
    }
}

/// `(document JSON, free text)` of the event with flat `fields` (in order, `@timestamp` among them), id `id`,
/// raw record `raw` and `log.file.path` `path`; None when the fields do not nest.
pub fn stored_document(
    fields: &[(&'static str, Leaf<'_>)],
    timestamp: &str,
    id: &str,
    raw: &str,
    path: Option<&str>,
) -> Option<(String, String)> {
    let names: Vec<&'static str> = fields.iter().map(|(name, _)| *name).collect();
    let plan = plan(&names, path.is_some())?;
    let added = [timestamp, id, raw, path.unwrap_or("")].map(Leaf::Str);
    let value = |index: usize| match fields.get(index) {
        Some((_, value)) => value,
        None => &added[index - fields.len()],
    };
    let mut source = String::with_capacity(raw.len() * 4 + 256);
    for op in &plan.ops {
        match op {
            Op::Text(fixed) => source.push_str(fixed),
            Op::Value(index) => json_value(value(*index), &mut source),
        }
    }
    let mut free = String::with_capacity(source.len());
    let mut lines = 0;
    for index in &plan.text {
        text_value(value(*index), &mut free, &mut lines);
    }
    Some((source, free))
}
