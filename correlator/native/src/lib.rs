//! socctl's native extension: the literal prefilter of the Sigma engine and the EVTX reader.

use pyo3::prelude::*;

mod evtx_records;
mod haystack;
mod json;
mod normalise;
mod prefilter;
mod strings;

/// Epoch milliseconds of an EVTX SystemTime as the native reader computes it (None: left to Python).
#[pyfunction]
fn system_time_ms(text: &str) -> Option<i64> {
    normalise::epoch_ms(text)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<prefilter::NativePrefilter>()?;
    m.add_class::<evtx_records::EvtxRecords>()?;
    m.add_function(wrap_pyfunction!(system_time_ms, m)?)?;
    Ok(())
}
