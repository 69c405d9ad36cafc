//! Python strings for field names, which repeat from record to record: made once per thread and shared, as
//! orjson does for keys. Sharing is safe, Python strings are immutable; a shared one also keeps its hash, so
//! dict inserts and lookups skip rehashing. (Short values were shared too at first: most are unique, and the
//! lookups cost more than they saved.)

use std::cell::RefCell;

use ahash::AHashMap;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// Longer names are made each time.
const MAX_KEY_LEN: usize = 64;
/// The cache stops growing here (records with ever new names must not fill memory).
const MAX_SHARED: usize = 1 << 16;

thread_local! {
    // Leaked on purpose: never dropped, so no Python object is released after the interpreter is gone.
    static SHARED: &'static RefCell<AHashMap<Box<str>, Py<PyString>>> =
        Box::leak(Box::new(RefCell::new(AHashMap::new())));
}

/// A field name as a Python string.
pub fn py_key<'py>(py: Python<'py>, text: &str) -> Bound<'py, PyString> {
    if text.len() > MAX_KEY_LEN {
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
