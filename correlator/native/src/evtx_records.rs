//! EVTX records read with the `evtx` crate, each handed to Python already normalised.
//!
//! The crate version and settings are those of the `evtx` Python package socctl falls back to, so a record's
//! raw text (its compact JSON rendering) and therefore its event id are the same on both paths. Per record,
//! `__next__` returns `(raw, digest, record_id, record, parts, prefiltered)` (`digest`: the raw text's SHA-256,
//! the first 128 bits in hex; Python makes the event id of it and the record's time, `timed_id`):
//!
//! - `parts` is `(native, user_count, extra_count, data_count, timestamp_ms)` for records of the usual shape
//!   (see `normalise.rs`): the field view `_from_evtx` in collectors/windows.py builds, sections in order;
//!   `record` is None.
//! - otherwise `record` is the parsed JSON (what `orjson.loads(raw)` gives) and Python normalises it; both
//!   are None when the rendering is not JSON serde can read, and Python reports it.
//!
//! With `quiet` (see `Quiet`), a record no rule of its source can match is just its record id (an int).
//!
//! `record_id` is System.EventRecordID when it is an integer, else the parser's own record number. Errors are
//! raised from `__next__` as the Python package raises them (RuntimeError for corrupt data, OSError for I/O),
//! and iteration can go on after them.

use std::collections::VecDeque;
use std::error::Error;
use std::fs::File;
use std::sync::Arc;

use ahash::AHashMap;

use evtx::err::{ChunkError, EvtxError};
use evtx::{EvtxParser, IntoIterChunks, ParserSettings};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use sha2::{Digest, Sha256};

use crate::json::{get, Json};
use crate::normalise::{view, NativeView};
use crate::prefilter::NativePrefilter;

#[pyclass(module = "correlator._native", unsendable)]
pub struct EvtxRecords {
    chunks: IntoIterChunks<File>,
    settings: Arc<ParserSettings>,
    pending: VecDeque<PyResult<PyObject>>,
    quiet: Option<Quiet>,
}

fn io_error(err: &std::io::Error) -> PyErr {
    if err.kind() == std::io::ErrorKind::NotFound {
        PyFileNotFoundError::new_err(err.to_string())
    } else {
        PyOSError::new_err(err.to_string())
    }
}

/// An error and its sources, joined by ": " (how the `evtx` package words its errors).
fn message(err: &dyn Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        out.push_str(": ");
        out.push_str(&inner.to_string());
        source = inner.source();
    }
    out
}

fn evtx_error(err: EvtxError) -> PyErr {
    match &err {
        EvtxError::FailedToParseChunk { source, .. } => {
            if let ChunkError::FailedToSeekToChunk(io) = source.as_ref() {
                return io_error(io);
            }
        }
        EvtxError::IoError(io) => return io_error(io),
        _ => {}
    }
    PyRuntimeError::new_err(message(&err))
}

/// The digest of a raw record an event id is made of: the first 128 bits of SHA-256, hex encoded.
fn digest_hex(raw: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(raw);
    let mut out = String::with_capacity(32);
    for byte in &digest[..16] {
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 15) as usize] as char);
    }
    out
}

/// What the reader skips, and what it tells the engine: records of Windows event sources whose rules cannot
/// match them. `route` is called once per (Channel, EventID) with both and returns that source's
/// `NativePrefilter` when an event in which it finds no candidate is sure to give no alert, else None; a record
/// its prefilter finds nothing in is handed back as its record id alone (an int), without the event id, the raw
/// text or the field dict. For the others the prefilter's answer goes along (`Prefiltered`): the engine need not
/// search the record's values again.
struct Quiet {
    route: PyObject,
    prefilters: AHashMap<String, AHashMap<i64, Option<Py<NativePrefilter>>>>,
}

/// The prefilter of a record's source and the candidates it found in the record.
type Prefiltered = (Py<NativePrefilter>, Vec<u32>);

impl Quiet {
    fn check(&mut self, py: Python<'_>, view: &NativeView<'_, '_>) -> Option<Prefiltered> {
        let Some(Json::Str(channel)) = view.channel else {
            return None;
        };
        let event_id = match view.event_id {
            Json::Int(n) => *n,
            Json::UInt(n) => i64::try_from(*n).ok()?,
            _ => return None,
        };
        if !self.prefilters.contains_key(channel.as_ref()) {
            self.prefilters.insert(channel.to_string(), AHashMap::new());
        }
        let by_id = self
            .prefilters
            .get_mut(channel.as_ref())
            .expect("inserted above");
        let prefilter = by_id.entry(event_id).or_insert_with(|| {
            // A route that fails (it should not) skips nothing: the engine then meets the event and reports.
            self.route
                .call1(py, (channel.as_ref(), event_id))
                .ok()
                .and_then(|found| found.extract::<Py<NativePrefilter>>(py).ok())
        });
        let prefilter = prefilter.as_ref()?;
        let candidates = prefilter.get().candidates_view(&view.entries)?;
        Some((prefilter.clone_ref(py), candidates))
    }
}

fn record_item(
    py: Python<'_>,
    raw: String,
    counter: u64,
    quiet: Option<&mut Quiet>,
) -> PyResult<PyObject> {
    let parsed = Json::parse(&raw);
    let record_id = parsed
        .as_ref()
        .and_then(Json::object)
        .and_then(|r| get(r, "Event")?.object())
        .and_then(|e| get(e, "System")?.object())
        .and_then(|s| get(s, "EventRecordID"))
        .filter(|v| v.is_int())
        .map_or_else(
            || Ok(counter.into_pyobject(py)?.into_any().unbind()),
            |v| v.to_py(py),
        )?;
    let view = parsed.as_ref().and_then(view);
    let mut prefiltered = py.None();
    if let (Some(quiet), Some(view)) = (quiet, view.as_ref()) {
        if let Some((prefilter, candidates)) = quiet.check(py, view) {
            if candidates.is_empty() {
                return Ok(record_id);
            }
            prefiltered = (prefilter, candidates)
                .into_pyobject(py)?
                .into_any()
                .unbind();
        }
    }
    let id = digest_hex(raw.as_bytes());
    let (record, parts) = match (&parsed, view) {
        (None, _) => (py.None(), py.None()),
        (Some(_), Some(view)) => (py.None(), view.to_py(py)?),
        (Some(value), None) => (value.to_py(py)?, py.None()),
    };
    let raw = PyString::new(py, &raw);
    Ok(PyTuple::new(
        py,
        [
            raw.into_any().unbind(),
            PyString::new(py, &id).into_any().unbind(),
            record_id,
            record,
            parts,
            prefiltered,
        ],
    )?
    .into_any()
    .unbind())
}

impl EvtxRecords {
    /// Read and render the next chunk into `pending`; false at the end of the file.
    fn fill(&mut self, py: Python<'_>) -> bool {
        let Some(chunk) = self.chunks.next() else {
            return false;
        };
        let mut chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => {
                self.pending.push_back(Err(evtx_error(err)));
                return true;
            }
        };
        let (first, last) = (
            chunk.header.first_event_record_id,
            chunk.header.last_event_record_id,
        );
        let mut parsed = match chunk.parse(Arc::clone(&self.settings)) {
            Ok(parsed) => parsed,
            Err(err) => {
                let message = format!(
                    "Failed to parse chunk containing record IDs {first}..{last}: {}",
                    message(&err)
                );
                self.pending
                    .push_back(Err(PyRuntimeError::new_err(message)));
                return true;
            }
        };
        for record in parsed.iter() {
            let item = record.and_then(|record| {
                let record_id = record.event_record_id;
                record
                    .into_json()
                    .map_err(|source| EvtxError::FailedToParseRecord {
                        record_id,
                        source: Box::new(source),
                    })
            });
            self.pending.push_back(match item {
                Ok(rendered) => record_item(
                    py,
                    rendered.data,
                    rendered.event_record_id,
                    self.quiet.as_mut(),
                ),
                Err(err) => Err(evtx_error(err)),
            });
        }
        true
    }
}

#[pymethods]
impl EvtxRecords {
    #[new]
    #[pyo3(signature = (path, quiet=None))]
    fn new(path: &str, quiet: Option<PyObject>) -> PyResult<Self> {
        let file = File::open(path).map_err(|e| io_error(&e))?;
        let settings = ParserSettings::new().num_threads(1).indent(false);
        let parser = EvtxParser::from_read_seek(file)
            .map_err(evtx_error)?
            .with_configuration(settings.clone());
        Ok(Self {
            chunks: parser.into_chunks(),
            settings: Arc::new(settings),
            pending: VecDeque::new(),
            quiet: quiet.map(|route| Quiet {
                route,
                prefilters: AHashMap::new(),
            }),
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<PyObject>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return item.map(Some);
            }
            if !self.fill(py) {
                return Ok(None);
            }
        }
    }
}
