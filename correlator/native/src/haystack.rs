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
/// what is not rendered here exactly alike: floats (Python's repr), non-ASCII text (Python's full Unicode
/// lower-casing) and objects (a dict's repr).
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
        Json::Array(items) => return items.iter().try_for_each(|item| push_json(hay, item)),
        Json::Float(_) | Json::Str(_) | Json::Object(_) => return None,
    }
    hay.push(SEP);
    Some(())
}
