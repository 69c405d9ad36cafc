//! An EVTX record's JSON to the field view `_from_evtx` (collectors/windows.py) builds, for records of the usual
//! shape: `{"Event": {"System": {...}, "EventData": <null or an object of plain values>, "UserData": ...}}` with
//! an integer EventID (bare or as `#text`), an integer or absent EventRecordID and no name in two places.
//! The result is `(native, user_count, extra_count, data_count, timestamp_ms)`: the merged fields in section
//! order (UserData leaves, ProcessingErrorData leaves, EventData, System under Sigma's names) and where each
//! section ends, so Python can take the sections apart again if it builds the ECS document. Anything else
//! returns None and Python normalises the record itself, so the two paths agree by construction on the
//! unusual shapes.

use ahash::AHashSet;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::json::{get, Json, Pairs};
use crate::strings::py_key;

/// `_attributes(node).get(name)`: an XML attribute as evtx (`#attributes`) or xmltodict (`@Name`) renders it.
fn attribute<'p, 'a>(node: Option<&'p Json<'a>>, name: &str) -> Option<&'p Json<'a>> {
    let node = node?.object()?;
    match get(node, "#attributes") {
        Some(Json::Object(attributes)) => get(attributes, name),
        _ => node
            .iter()
            .rev()
            .find(|(key, _)| key.strip_prefix('@') == Some(name))
            .map(|(_, value)| value),
    }
}

/// `_leaves`: every leaf of an XML-ish tree by its bare element name, onto `out` (a name met twice is there
/// twice: such a record goes to Python).
fn leaves<'p, 'a>(node: &'p Pairs<'a>, out: &mut View<'p, 'a>, name: Option<&'p str>) {
    for (key, value) in node {
        if key == "#attributes" || key.starts_with('@') {
            continue;
        }
        if key == "#text" {
            if let Some(name) = name {
                out.push((name, DataValue::Json(value)));
            }
        } else if let Json::Object(child) = value {
            leaves(child, out, Some(key));
        } else {
            out.push((key.as_ref(), DataValue::Json(value)));
        }
    }
}

/// A value of the field view: a JSON value, None, or the list of unnamed `Data` items.
pub enum DataValue<'p, 'a> {
    Json(&'p Json<'a>),
    Null,
    Unnamed(Vec<Option<&'p Json<'a>>>),
}

impl DataValue<'_, '_> {
    fn to_py(&self, py: Python<'_>) -> PyResult<PyObject> {
        match self {
            DataValue::Json(value) => value.to_py(py),
            DataValue::Null => Ok(py.None()),
            DataValue::Unnamed(items) => {
                let list = PyList::empty(py);
                for item in items {
                    list.append(item.map_or_else(|| Ok(py.None()), |v| v.to_py(py))?)?;
                }
                Ok(list.into_any().unbind())
            }
        }
    }
}

pub type View<'p, 'a> = Vec<(&'p str, DataValue<'p, 'a>)>;

/// `out[key] = value` with a dict's semantics: a name already there keeps its place and takes the new value.
fn put<'p, 'a>(out: &mut View<'p, 'a>, key: &'p str, value: DataValue<'p, 'a>) {
    match out.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => out.push((key, value)),
    }
}

/// An object's pairs as the Python dict built from it: one per name, first place, last value.
fn as_dict<'p, 'a>(pairs: &'p Pairs<'a>) -> Vec<(&'p str, &'p Json<'a>)> {
    let mut out: Vec<(&'p str, &'p Json<'a>)> = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        match out.iter_mut().find(|(k, _)| *k == key.as_ref()) {
            Some(slot) => slot.1 = value,
            None => out.push((key.as_ref(), value)),
        }
    }
    out
}

/// `_event_data` of collectors/windows.py: EventData as a flat view of bare names.
fn event_data<'p, 'a>(node: &'p Json<'a>) -> View<'p, 'a> {
    let Some(pairs) = node.object() else {
        return vec![("Data", DataValue::Json(node))];
    };
    let pairs = as_dict(pairs);
    let marked = pairs
        .iter()
        .any(|(k, _)| matches!(*k, "Data" | "#attributes" | "#text"));
    if !marked && !pairs.iter().any(|(_, v)| matches!(v, Json::Object(_))) {
        return pairs
            .into_iter()
            .map(|(k, v)| (k, DataValue::Json(v)))
            .collect();
    }
    let mut out: View<'p, 'a> = Vec::new();
    for (key, value) in pairs {
        if key == "Data" {
            data_items(value, &mut out);
        } else if key == "#text" {
            if !out.iter().any(|(k, _)| *k == "Data") {
                out.push(("Data", DataValue::Json(value)));
            }
        } else if key == "#attributes" || key.starts_with('@') {
            continue;
        } else if let Some(child) = value.object() {
            match get(child, "#text") {
                Some(text) => put(&mut out, key, DataValue::Json(text)),
                None => view_leaves(child, &mut out, None),
            }
        } else {
            put(&mut out, key, DataValue::Json(value));
        }
    }
    out
}

/// `_add_data_items`: named `Data` items by name, unnamed ones collected under `Data`.
fn data_items<'p, 'a>(items: &'p Json<'a>, out: &mut View<'p, 'a>) {
    let list = match items {
        Json::Array(list) => list.iter().collect(),
        single => vec![single],
    };
    let mut unnamed: Vec<Option<&'p Json<'a>>> = Vec::new();
    for item in list {
        if let Some(pairs) = item.object() {
            match attribute(Some(item), "Name") {
                Some(Json::Str(name)) if !name.is_empty() => {
                    let text = get(pairs, "#text").map_or(DataValue::Null, DataValue::Json);
                    put(out, name, text);
                }
                _ => unnamed.push(get(pairs, "#text")),
            }
        } else if !item.is_null() {
            unnamed.push(Some(item));
        }
    }
    if unnamed.is_empty() {
        return;
    }
    let value = if matches!(items, Json::Array(_)) || unnamed.len() > 1 {
        DataValue::Unnamed(unnamed)
    } else {
        unnamed[0].map_or(DataValue::Null, DataValue::Json)
    };
    put(out, "Data", value);
}

/// `_leaves` into the EventData view.
fn view_leaves<'p, 'a>(node: &'p Pairs<'a>, out: &mut View<'p, 'a>, name: Option<&'p str>) {
    for (key, value) in as_dict(node) {
        if key == "#attributes" || key.starts_with('@') {
            continue;
        }
        if key == "#text" {
            if let Some(name) = name {
                put(out, name, DataValue::Json(value));
            }
        } else if let Some(child) = value.object() {
            view_leaves(child, out, Some(key));
        } else {
            put(out, key, DataValue::Json(value));
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(text: &[u8]) -> Option<i64> {
    text.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

/// Epoch milliseconds of `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, the form evtx renders SystemTime in; None for any
/// other text (Python's `to_epoch_ms` then decides).
pub fn epoch_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let micros = match b.len() {
        20 => 0,
        27 if b[19] == b'.' => digits(&b[20..26])?,
        _ => return None,
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[b.len() - 1] != b'Z'
    {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > month_days[(month - 1) as usize] {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(seconds * 1_000 + micros / 1_000)
}

/// The field view of a record of the usual shape, before any Python object is made: its fields in section order
/// (UserData leaves, ProcessingErrorData leaves, EventData, System under Sigma's names), where the sections
/// end, and the values routing and the timestamp need.
pub struct NativeView<'p, 'a> {
    pub entries: View<'p, 'a>,
    user_count: usize,
    extra_count: usize,
    data_count: usize,
    pub channel: Option<&'p Json<'a>>,
    pub event_id: &'p Json<'a>,
    time_created: Option<&'p Json<'a>>,
}

/// The `NativeView` of a record of the usual shape, else None (Python normalises it). Python keeps the
/// sections apart and lets later ones win on a shared name; a shared name anywhere sends the record to Python.
pub fn view<'p, 'a>(record: &'p Json<'a>) -> Option<NativeView<'p, 'a>> {
    let event = record.object().and_then(|r| get(r, "Event"))?.object()?;
    let system = get(event, "System")?.object()?;
    let event_id = match get(system, "EventID") {
        Some(Json::Object(node)) => get(node, "#text"),
        other => other,
    };
    let event_id = event_id.filter(|v| v.is_int())?;
    if get(system, "EventRecordID").is_some_and(|v| !v.is_null() && !v.is_int()) {
        return None;
    }
    let mut entries: View<'p, 'a> = Vec::new();
    if let Some(Json::Object(node)) = get(event, "UserData") {
        leaves(node, &mut entries, None);
    }
    let user_count = entries.len();
    if let Some(Json::Object(node)) = get(event, "ProcessingErrorData") {
        leaves(node, &mut entries, None);
    }
    let extra_count = entries.len();
    match get(event, "EventData") {
        None | Some(Json::Null) => {}
        Some(node) => entries.extend(event_data(node)),
    }
    let data_count = entries.len() - extra_count;
    entries.push(("EventID", DataValue::Json(event_id)));
    let provider = get(system, "Provider");
    for (attr, name) in [("Name", "Provider_Name"), ("Guid", "Provider_Guid")] {
        if let Some(value) = attribute(provider, attr).filter(|v| !v.is_null()) {
            entries.push((name, DataValue::Json(value)));
        }
    }
    let mut channel = None;
    for name in [
        "Channel",
        "Computer",
        "EventRecordID",
        "Level",
        "Task",
        "Opcode",
        "Keywords",
        "Version",
    ] {
        let value = match get(system, name) {
            None | Some(Json::Null) => continue,
            Some(Json::Object(node)) => get(node, "#text").map_or(DataValue::Null, DataValue::Json),
            Some(value) => DataValue::Json(value),
        };
        if name == "Channel" {
            if let DataValue::Json(value) = value {
                channel = Some(value);
            }
        }
        entries.push((name, value));
    }
    for name in ["ProcessID", "ThreadID"] {
        if let Some(value) = attribute(get(system, "Execution"), name).filter(|v| !v.is_null()) {
            entries.push((name, DataValue::Json(value)));
        }
    }
    if let Some(value) = attribute(get(system, "Security"), "UserID").filter(|v| !v.is_null()) {
        entries.push(("UserID", DataValue::Json(value)));
    }
    let time_created = attribute(get(system, "TimeCreated"), "SystemTime").filter(|v| !v.is_null());
    if let Some(value) = time_created {
        entries.push(("TimeCreated", DataValue::Json(value)));
    }
    let mut seen = AHashSet::with_capacity(entries.len());
    if !entries.iter().all(|(name, _)| seen.insert(*name)) {
        return None;
    }
    Some(NativeView {
        entries,
        user_count,
        extra_count,
        data_count,
        channel,
        event_id,
        time_created,
    })
}

impl NativeView<'_, '_> {
    /// `(native, user_count, extra_count, data_count, timestamp_ms)` (see the module doc).
    pub fn to_py(&self, py: Python<'_>) -> PyResult<PyObject> {
        let native = PyDict::new(py);
        for (name, value) in &self.entries {
            native.set_item(py_key(py, name), value.to_py(py)?)?;
        }
        let timestamp_ms: PyObject = match self.time_created {
            None => 0i64.into_pyobject(py)?.into_any().unbind(),
            Some(Json::Str(text)) => match epoch_ms(text) {
                Some(ms) => ms.into_pyobject(py)?.into_any().unbind(),
                None => py.None(),
            },
            Some(_) => py.None(),
        };
        let parts = [
            native.into_any().unbind(),
            self.user_count.into_pyobject(py)?.into_any().unbind(),
            self.extra_count.into_pyobject(py)?.into_any().unbind(),
            self.data_count.into_pyobject(py)?.into_any().unbind(),
            timestamp_ms,
        ];
        Ok(PyTuple::new(py, parts)?.into_any().unbind())
    }
}

/// `(native, user_count, extra_count, data_count, timestamp_ms)` for a record of the usual shape, else None.
pub fn normalise(py: Python<'_>, record: &Json<'_>) -> PyResult<Option<PyObject>> {
    view(record).map(|view| view.to_py(py)).transpose()
}
