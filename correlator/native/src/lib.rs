//! socctl's native extension: the literal prefilter of the Sigma engine, the EVTX reader and the free text of
//! the documents stores write.

use pyo3::prelude::*;

mod document_text;
mod evtx_records;
mod haystack;
mod json;
mod layouts;
mod normalise;
mod prefilter;
mod strings;
mod syslog_auth;
mod syslog_document;
mod syslog_event;
mod syslog_header;

/// Epoch milliseconds of an EVTX SystemTime as the native reader computes it (None: left to Python).
#[pyfunction]
fn system_time_ms(text: &str) -> Option<i64> {
    normalise::epoch_ms(text)
}

/// The native reader's normalisation of one rendered record (None when it leaves the record to Python), for
/// tests that compare it with `normalise_windows` on records of any shape.
#[pyfunction]
fn normalise_record(py: Python<'_>, raw: &str) -> PyResult<Option<PyObject>> {
    match json::Json::parse(raw) {
        Some(record) => normalise::normalise(py, &record),
        None => Ok(None),
    }
}

/// The case-folded text a string value becomes in the native reader's haystack (None: left to Python), for
/// tests that compare it with `str.lower`.
#[pyfunction]
fn haystack_text(text: &str) -> Option<String> {
    haystack::fold_text(text)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<prefilter::NativePrefilter>()?;
    m.add_class::<evtx_records::EvtxRecords>()?;
    m.add_function(wrap_pyfunction!(system_time_ms, m)?)?;
    m.add_function(wrap_pyfunction!(normalise_record, m)?)?;
    m.add_function(wrap_pyfunction!(haystack_text, m)?)?;
    m.add_function(wrap_pyfunction!(document_text::document_text, m)?)?;
    m.add_function(wrap_pyfunction!(syslog_event::syslog_event, m)?)?;
    Ok(())
}
