//! An event's field values as one case-folded haystack (bytes), as `haystack_of` builds it in Python:
//! strings lower-cased (ASCII here, anything else by Python's own `str.lower`), booleans as true/false,
//! integers in decimal, lists and tuples item by item, None skipped, anything else by `str()`. Every value
//! is followed by the separator, so no literal spans two values.

use std::io::Write;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyList, PyString, PyTuple};

use crate::json::Json;

pub const SEP: u8 = 0x1f;

pub fn push_value(hay: &mut Vec<u8>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if value.is_none() {
        return Ok(());
    }
    if let Ok(text) = value.downcast_exact::<PyString>() {
        push_text(hay, text)?;
    } else if value.is_exact_instance_of::<PyInt>() {
        match value.extract::<i64>() {
            Ok(n) => {
                // Writing to a Vec cannot fail.
                let _ = write!(hay, "{n}");
                hay.push(SEP);
            }
            Err(_) => push_text(hay, &value.str()?)?,
        }
    } else if let Ok(flag) = value.downcast::<PyBool>() {
        hay.extend_from_slice(if flag.is_true() { b"true" } else { b"false" });
        hay.push(SEP);
    } else if let Ok(items) = value.downcast::<PyList>() {
        for item in items.iter() {
            push_value(hay, &item)?;
        }
    } else if let Ok(items) = value.downcast::<PyTuple>() {
        for item in items.iter() {
            push_value(hay, &item)?;
        }
    } else if let Ok(text) = value.downcast::<PyString>() {
        push_text(hay, text)?;
    } else {
        push_text(hay, &value.str()?)?;
    }
    Ok(())
}

fn push_text(hay: &mut Vec<u8>, text: &Bound<'_, PyString>) -> PyResult<()> {
    match text.to_str() {
        Ok(s) if s.is_ascii() => {
            hay.extend(s.bytes().map(|b| b.to_ascii_lowercase()));
        }
        _ => {
            let lowered = text.call_method0("lower")?;
            let lowered = lowered.downcast::<PyString>()?;
            hay.extend_from_slice(lowered.to_string_lossy().as_bytes());
        }
    }
    hay.push(SEP);
    Ok(())
}

/// A JSON value into the haystack as `push_value` puts the Python object `Json::to_py` makes of it; None for
/// what is not rendered here exactly alike: floats (Python's repr), text with letters outside the Latin blocks
/// (Python's own Unicode tables decide their lower case: see `push_folded`) and objects (a dict's repr).
pub fn push_json(hay: &mut Vec<u8>, value: &Json<'_>) -> Option<()> {
    match value {
        Json::Null => return Some(()),
        Json::Bool(flag) => hay.extend_from_slice(if *flag { b"true" } else { b"false" }),
        Json::Int(n) => {
            let _ = write!(hay, "{n}");
        }
        Json::UInt(n) => {
            let _ = write!(hay, "{n}");
        }
        Json::Str(text) if text.is_ascii() => {
            hay.extend(text.bytes().map(|b| b.to_ascii_lowercase()))
        }
        Json::Str(text) => push_folded(hay, text)?,
        Json::Array(items) => return items.iter().try_for_each(|item| push_json(hay, item)),
        Json::Float(_) | Json::Object(_) => return None,
    }
    hay.push(SEP);
    Some(())
}

/// Whether Rust's and Python's lower case of `c` are the same for certain: ASCII, and the letters of the Latin
/// blocks (Latin-1 Supplement, Latin Extended-A and -B, Latin Extended Additional: the `®` of every Sysmon
/// `Product`, Vietnamese), whose case mappings are simple and have not changed since Unicode 5.1 (Python 3.11
/// has Unicode 14). U+0130 (a special casing) is left out to be safe.
fn folds_alike(c: char) -> bool {
    let code = u32::from(c);
    code < 0x250 && code != 0x130 || (0x1E00..=0x1EFF).contains(&code)
}

/// Non-ASCII text lower-cased as Python's `str.lower` does, when every character `folds_alike`; None (part of
/// the text may be in `hay`: the caller drops it) when one does not.
fn push_folded(hay: &mut Vec<u8>, text: &str) -> Option<()> {
    let mut buf = [0u8; 4];
    for c in text.chars() {
        if !folds_alike(c) {
            return None;
        }
        for lower in c.to_lowercase() {
            hay.extend_from_slice(lower.encode_utf8(&mut buf).as_bytes());
        }
    }
    Some(())
}

/// The text a string value becomes in the haystack on the native reader's path, without the separator; None
/// when that is left to Python. For tests comparing it with Python's `str.lower`.
pub fn fold_text(text: &str) -> Option<String> {
    let mut hay = Vec::new();
    push_json(&mut hay, &Json::Str(text.into()))?;
    hay.pop();
    String::from_utf8(hay).ok()
}
