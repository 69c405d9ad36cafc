//! `document_text` of correlator/store/documents.py, natively: the free text of a document, its string and
//! number values (not booleans, None or keys) one per line in the document's order, without the top-level
//! `event.original`.
//!
//! The walk collects the very objects the Python function collects (a string itself, `str(value)` of anything
//! else that is not a container) and joins them with Python's own `"\n".join`, so the text is the Python
//! function's by construction: float formatting, big integers, enum members and lone surrogates included.
//! Subclasses of dict, list and tuple (whose iteration Python code may change) and documents nested deeper than
//! `MAX_DEPTH` are left to Python: the function returns None and the caller walks the document itself.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString, PyTuple};

/// Deeper documents are left to Python, whose recursion limit then decides what happens.
const MAX_DEPTH: usize = 256;

/// How a walk ended: every value collected, or a part found that only Python walks exactly.
#[derive(PartialEq, Eq)]
enum Walk {
    Done,
    LeftToPython,
}

/// `_collect_text(value, parts)` for the values of `items`.
fn collect_all<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    parts: &Bound<'py, PyList>,
    depth: usize,
) -> PyResult<Walk> {
    if depth >= MAX_DEPTH {
        return Ok(Walk::LeftToPython);
    }
    for item in items {
        if collect(&item, parts, depth + 1)? == Walk::LeftToPython {
            return Ok(Walk::LeftToPython);
        }
    }
    Ok(Walk::Done)
}

/// `_collect_text`: the text parts of one value, appended to `parts`, in the Python function's order of tests.
fn collect<'py>(
    value: &Bound<'py, PyAny>,
    parts: &Bound<'py, PyList>,
    depth: usize,
) -> PyResult<Walk> {
    if value.is_instance_of::<PyString>() {
        parts.append(value)?;
        return Ok(Walk::Done);
    }
    if let Ok(dict) = value.downcast_exact::<PyDict>() {
        return collect_all(dict.iter().map(|(_, item)| item), parts, depth);
    }
    if let Ok(list) = value.downcast_exact::<PyList>() {
        return collect_all(list.iter(), parts, depth);
    }
    if let Ok(tuple) = value.downcast_exact::<PyTuple>() {
        return collect_all(tuple.iter(), parts, depth);
    }
    if value.is_none() || value.is_exact_instance_of::<PyBool>() {
        return Ok(Walk::Done);
    }
    if value.is_instance_of::<PyDict>()
        || value.is_instance_of::<PyList>()
        || value.is_instance_of::<PyTuple>()
    {
        return Ok(Walk::LeftToPython);
    }
    parts.append(value.str()?)?;
    Ok(Walk::Done)
}

/// The top level of a document whose `event` is a dict holding `original`: every value but that one.
fn collect_without_original<'py>(
    doc: &Bound<'py, PyDict>,
    parts: &Bound<'py, PyList>,
) -> PyResult<Walk> {
    let py = doc.py();
    let (event_key, original_key) = (intern!(py, "event"), intern!(py, "original"));
    for (key, value) in doc.iter() {
        let walk = if key.eq(event_key)? {
            let Ok(event) = value.downcast_exact::<PyDict>() else {
                return Ok(Walk::LeftToPython);
            };
            let mut kept = Vec::with_capacity(event.len());
            for (name, item) in event.iter() {
                if name.ne(original_key)? {
                    kept.push(item);
                }
            }
            collect_all(kept.into_iter(), parts, 1)?
        } else {
            collect(&value, parts, 1)?
        };
        if walk == Walk::LeftToPython {
            return Ok(Walk::LeftToPython);
        }
    }
    Ok(Walk::Done)
}

/// The free text of `doc` as `document_text` gives it, or None when the document is left to Python.
#[pyfunction]
pub fn document_text<'py>(doc: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyString>>> {
    let py = doc.py();
    let parts = PyList::empty(py);
    let mut walk = None;
    if let Ok(dict) = doc.downcast_exact::<PyDict>() {
        if let Some(event) = dict.get_item(intern!(py, "event"))? {
            if event.is_instance_of::<PyDict>() {
                let Ok(event) = event.downcast_exact::<PyDict>() else {
                    return Ok(None);
                };
                if event.contains(intern!(py, "original"))? {
                    walk = Some(collect_without_original(dict, &parts)?);
                }
            }
        }
    }
    let walk = match walk {
        Some(walk) => walk,
        None => collect(doc, &parts, 0)?,
    };
    if walk == Walk::LeftToPython {
        return Ok(None);
    }
    let text = intern!(py, "\n").call_method1(intern!(py, "join"), (parts,))?;
    Ok(Some(text.downcast_into::<PyString>()?))
}
