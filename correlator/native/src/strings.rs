//! Python strings for the short texts that repeat from record to record (field names, channel and provider
//! names, "-", "NULL", ...): made once per thread and shared, as orjson does for keys. Sharing is safe, Python
//! strings are immutable; a shared one also keeps its hash, so dict inserts and lookups skip rehashing.

use std::cell::RefCell;

use ahash::AHashMap;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// Longer names are made each time.
const MAX_KEY_LEN: usize = 64;
/// Longer values (timestamps, GUIDs, paths, command lines) rarely repeat exactly: they are made each time.
const MAX_VALUE_LEN: usize = 24;
/// The cache stops growing here (fields with unbounded distinct short values must not fill memory).
const MAX_SHARED: usize = 1 << 16;

thread_local! {
    // Leaked on purpose: never dropped, so no Python object is released after the interpreter is gone.
    static SHARED: &'static RefCell<AHashMap<Box<str>, Py<PyString>>> =
        Box::leak(Box::new(RefCell::new(AHashMap::new())));
}

/// A field name as a Python string.
pub fn py_key<'py>(py: Python<'py>, text: &str) -> Bound<'py, PyString> {
    shared(py, text, MAX_KEY_LEN)
}

/// A string value as a Python string.
pub fn py_value<'py>(py: Python<'py>, text: &str) -> Bound<'py, PyString> {
    shared(py, text, MAX_VALUE_LEN)
}

fn shared<'py>(py: Python<'py>, text: &str, max_len: usize) -> Bound<'py, PyString> {
    if text.len() > max_len {
        return PyString::new(py, text);
    }
    SHARED.with(|shared| {
        let mut shared = shared.borrow_mut();
        if let Some(found) = shared.get(text) {
            return found.bind(py).clone();
        }
        let made = PyString::new(py, text);
        if shared.len() < MAX_SHARED {
            shared.insert(text.into(), made.clone().unbind());
        }
        made
    })
}
