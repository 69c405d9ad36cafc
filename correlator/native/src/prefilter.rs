//! The literal prefilter (see correlator/sigma/prefilter.py for the semantics).
//!
//! A variant is triggered by a literal of its first clause found in the haystack; it is a candidate when
//! every other clause has a literal among those found. Variants without clauses are always candidates. With an
//! event's fields, a literal the variants place in certain fields counts for a variant only when found in the
//! value of a field that variant gives it (found literals carry a mask of the fields they were found in), and
//! only the values of placed fields are searched for placed literals; the others (keywords) count anywhere.
//! Same inputs and outputs as the pure-Python `Prefilter`; the tests check the two agree.

use std::collections::BTreeSet;

use ahash::{AHashMap, AHashSet};
use aho_corasick::{AhoCorasick, MatchKind};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyString};

use crate::haystack::{push_json, push_value};
use crate::normalise::DataValue;

/// The literals of a bucket that are searched together, and the literal id of each of its patterns.
struct Automaton {
    automaton: AhoCorasick,
    ids: Vec<u32>,
    /// For a few literals: a leftmost-first automaton over the same patterns, which can use a vectorised
    /// skipping search, to tell quickly whether any is there at all (mostly none is).
    gate: Option<AhoCorasick>,
}

impl Automaton {
    fn new(literals: &[&str], ids: Vec<u32>) -> PyResult<Option<Self>> {
        if ids.is_empty() {
            return Ok(None);
        }
        let patterns: Vec<&str> = ids.iter().map(|&n| literals[n as usize]).collect();
        let error = |e: aho_corasick::BuildError| PyValueError::new_err(e.to_string());
        let automaton = AhoCorasick::new(&patterns).map_err(error)?;
        let gate = if patterns.len() <= FEW_LITERALS {
            let builder = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostFirst)
                .build(&patterns);
            Some(builder.map_err(error)?)
        } else {
            None
        };
        Ok(Some(Self {
            automaton,
            ids,
            gate,
        }))
    }

    /// Every literal in `hay`, overlapping ones too, as found in every field.
    fn find_all(&self, hay: &[u8], found: &mut Found) {
        if self.gate.as_ref().is_some_and(|gate| !gate.is_match(hay)) {
            return;
        }
        for m in self.automaton.find_overlapping_iter(hay) {
            found.add(self.ids[m.pattern().as_usize()], ALL_FIELDS);
        }
    }
}

/// Literals found: per literal id the mask of the fields it was found in (0: not found), and their list.
struct Found {
    masks: Vec<u64>,
    ids: Vec<u32>,
}

thread_local! {
    /// The `masks` buffer of the last `Found` (every entry back at 0): a bucket of the Windows process
    /// creation rules has some 14,000 literals, and zeroing a fresh buffer for each event cost more than the scan.
    static SPARE_MASKS: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Found {
    fn new(literals: usize) -> Self {
        let mut masks = SPARE_MASKS.with(|spare| std::mem::take(&mut *spare.borrow_mut()));
        if masks.len() < literals {
            masks.resize(literals, 0);
        }
        Self {
            masks,
            ids: Vec::new(),
        }
    }

    fn add(&mut self, n: u32, fields: u64) {
        let mask = &mut self.masks[n as usize];
        if *mask == 0 {
            self.ids.push(n);
        }
        *mask |= fields;
    }
}

impl Drop for Found {
    fn drop(&mut self) {
        for &n in &self.ids {
            self.masks[n as usize] = 0;
        }
        let masks = std::mem::take(&mut self.masks);
        SPARE_MASKS.with(|spare| {
            let mut spare = spare.borrow_mut();
            if masks.len() > spare.len() {
                *spare = masks;
            }
        });
    }
}

/// The field mask of a literal that counts wherever it is found.
const ALL_FIELDS: u64 = u64::MAX;
/// Fields past the 63rd (sorted) share the last bit: coarser, still sound.
const MASK_BITS: usize = 64;

/// Up to this many literals, a leftmost-first search can skip through text with a vectorised prefilter.
const FEW_LITERALS: usize = 64;

/// Per variant, its clauses (sets of literals, each sorted here), or None. The strings are the Python objects'
/// own UTF-8 (no copies): a bucket of the Windows process creation rules has some 14,000 literals.
type ClauseSets = Vec<Option<Vec<Vec<PyBackedStr>>>>;
/// Per variant, where each of its literals counts: in the values of the fields given, or anywhere (None).
type FieldSets = Vec<Option<Vec<(PyBackedStr, Option<Vec<PyBackedStr>>)>>>;

/// The strings of an iterable (a frozenset, tuple or list of str).
fn strings(obj: &Bound<'_, PyAny>) -> PyResult<Vec<PyBackedStr>> {
    let mut out = Vec::with_capacity(obj.len().unwrap_or(0));
    for item in obj.try_iter()? {
        out.push(item?.extract::<PyBackedStr>()?);
    }
    Ok(out)
}

/// Per variant None or the items of a sequence, each read by `item`.
fn per_variant<T>(
    obj: &Bound<'_, PyAny>,
    item: impl Fn(&Bound<'_, PyAny>) -> PyResult<T>,
) -> PyResult<Vec<Option<Vec<T>>>> {
    let mut out = Vec::with_capacity(obj.len().unwrap_or(0));
    for variant in obj.try_iter()? {
        let variant = variant?;
        if variant.is_none() {
            out.push(None);
            continue;
        }
        let items = variant
            .try_iter()?
            .map(|each| item(&each?))
            .collect::<PyResult<Vec<T>>>()?;
        out.push(Some(items));
    }
    Ok(out)
}

/// `clause_sets` as `make_prefilter` passes it: per variant None or a sequence of literal sets.
fn clause_sets(obj: &Bound<'_, PyAny>) -> PyResult<ClauseSets> {
    per_variant(obj, |clause| {
        let mut literals = strings(clause)?;
        literals.sort_unstable();
        Ok(literals)
    })
}

/// `field_sets`: per variant None or a sequence of (literal, None or a sequence of field names).
fn field_sets(obj: &Bound<'_, PyAny>) -> PyResult<FieldSets> {
    per_variant(obj, |entry| {
        let (literal, fields): (PyBackedStr, Option<Bound<'_, PyAny>>) = entry.extract()?;
        Ok((literal, fields.map(|f| strings(&f)).transpose()?))
    })
}

#[pyclass(module = "correlator._native", frozen)]
pub struct NativePrefilter {
    anywhere: Option<Automaton>,
    placed: Option<Automaton>,
    /// The bit of each placed field.
    field_bits: AHashMap<String, u64>,
    literal_count: usize,
    /// Per literal: the variants it triggers, each with the fields it counts in for that variant.
    targets: Vec<Vec<(u32, u64)>>,
    /// Per variant: its other clauses, as (literal, fields) alternatives.
    rest: Vec<Vec<Vec<(u32, u64)>>>,
    always: Vec<u32>,
    variant_count: usize,
}

/// Per variant, the fields each of its placed literals counts in, and the bucket's field names (sorted).
/// A literal is placed only when every variant using it places it; otherwise it counts anywhere for all.
fn placements<'s>(
    clause_sets: &'s ClauseSets,
    field_sets: Option<&'s FieldSets>,
) -> (Vec<AHashMap<&'s str, &'s [PyBackedStr]>>, Vec<&'s str>) {
    let mut per_variant: Vec<AHashMap<&str, &[PyBackedStr]>> =
        vec![AHashMap::new(); clause_sets.len()];
    let mut anywhere: AHashSet<&str> = AHashSet::new();
    for (i, clauses) in clause_sets.iter().enumerate() {
        let Some(clauses) = clauses.as_ref().filter(|c| !c.is_empty()) else {
            continue;
        };
        let given: AHashMap<&str, Option<&[PyBackedStr]>> = field_sets
            .and_then(|sets| sets.get(i)?.as_ref())
            .map(|entries| {
                entries
                    .iter()
                    .map(|(lit, fields)| (&**lit, fields.as_deref()))
                    .collect()
            })
            .unwrap_or_default();
        for lit in clauses.iter().flatten() {
            let lit: &str = lit;
            match given.get(lit) {
                Some(Some(fields)) => {
                    per_variant[i].insert(lit, fields);
                }
                _ => {
                    anywhere.insert(lit);
                }
            }
        }
    }
    for placed in &mut per_variant {
        placed.retain(|lit, _| !anywhere.contains(lit));
    }
    let names: BTreeSet<&str> = per_variant
        .iter()
        .flat_map(|p| p.values().flat_map(|fields| fields.iter().map(|f| &**f)))
        .collect();
    (per_variant, names.into_iter().collect())
}

#[pymethods]
impl NativePrefilter {
    #[new]
    #[pyo3(signature = (clause_sets, field_sets=None))]
    fn new(
        clause_sets: &Bound<'_, PyAny>,
        field_sets: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let clause_sets = self::clause_sets(clause_sets)?;
        let field_sets = field_sets
            .filter(|f| !f.is_none())
            .map(self::field_sets)
            .transpose()?;
        let variant_count = clause_sets.len();
        let (per_variant, field_names) = placements(&clause_sets, field_sets.as_ref());
        let field_bits: AHashMap<String, u64> = field_names
            .into_iter()
            .enumerate()
            .map(|(n, name)| (name.to_owned(), 1u64 << n.min(MASK_BITS - 1)))
            .collect();
        let mask = |i: usize, lit: &str| -> u64 {
            match per_variant[i].get(lit) {
                None => ALL_FIELDS,
                Some(fields) => fields.iter().fold(0, |m, f| m | field_bits[&**f]),
            }
        };
        let mut ids: AHashMap<&str, u32> = AHashMap::new();
        let mut literals: Vec<&str> = Vec::new();
        let mut targets: Vec<Vec<(u32, u64)>> = Vec::new();
        let mut rest: Vec<Vec<Vec<(u32, u64)>>> = vec![Vec::new(); variant_count];
        let mut always: Vec<u32> = Vec::new();
        fn id_of<'s>(
            lit: &'s str,
            ids: &mut AHashMap<&'s str, u32>,
            literals: &mut Vec<&'s str>,
            targets: &mut Vec<Vec<(u32, u64)>>,
        ) -> u32 {
            *ids.entry(lit).or_insert_with(|| {
                literals.push(lit);
                targets.push(Vec::new());
                (literals.len() - 1) as u32
            })
        }
        for (i, clauses) in clause_sets.iter().enumerate() {
            let Some(clauses) = clauses.as_ref().filter(|c| !c.is_empty()) else {
                always.push(i as u32);
                continue;
            };
            for lit in &clauses[0] {
                let n = id_of(lit, &mut ids, &mut literals, &mut targets);
                targets[n as usize].push((i as u32, mask(i, lit)));
            }
            for clause in &clauses[1..] {
                let lits = clause
                    .iter()
                    .map(|l| (id_of(l, &mut ids, &mut literals, &mut targets), mask(i, l)))
                    .collect();
                rest[i].push(lits);
            }
        }
        let placed_lits: AHashSet<&str> =
            per_variant.iter().flat_map(|p| p.keys().copied()).collect();
        let (mut anywhere, mut placed) = (Vec::new(), Vec::new());
        for (n, lit) in literals.iter().enumerate() {
            if placed_lits.contains(lit) {
                placed.push(n as u32);
            } else {
                anywhere.push(n as u32);
            }
        }
        Ok(Self {
            anywhere: Automaton::new(&literals, anywhere)?,
            placed: Automaton::new(&literals, placed)?,
            field_bits,
            literal_count: literals.len(),
            targets,
            rest,
            always,
            variant_count,
        })
    }

    /// Candidate variant indices for a (case-folded) haystack, in ascending order: every literal counts
    /// wherever it is found.
    fn candidates(&self, haystack: &str) -> Vec<u32> {
        let mut found = Found::new(self.literal_count);
        for automaton in [&self.anywhere, &self.placed].into_iter().flatten() {
            automaton.find_all(haystack.as_bytes(), &mut found);
        }
        self.select(&found)
    }

    /// Candidates for an event's field view: the haystacks are built here, not in Python.
    fn candidates_fields(&self, fields: &Bound<'_, PyDict>) -> PyResult<Vec<u32>> {
        if self.literal_count == 0 {
            return Ok(self.always.clone());
        }
        // Values of placed fields, each ending at `ends[i]` with field bit `bits[i]`; all others in `other`.
        let mut in_fields = Vec::with_capacity(1024);
        let mut other = Vec::with_capacity(1024);
        let mut ends: Vec<usize> = Vec::new();
        let mut bits: Vec<u64> = Vec::new();
        for (name, value) in fields.iter() {
            let bit = name.downcast::<PyString>().ok().and_then(|n| {
                n.to_str()
                    .ok()
                    .and_then(|n| self.field_bits.get(n).copied())
            });
            match bit {
                Some(bit) => {
                    push_value(&mut in_fields, &value)?;
                    ends.push(in_fields.len());
                    bits.push(bit);
                }
                None if self.anywhere.is_some() => push_value(&mut other, &value)?,
                None => {} // only field-placed literals: other fields' values are never searched
            }
        }
        Ok(self.select(&self.scan(&in_fields, &other, &ends, &bits)))
    }

    #[getter]
    fn literals(&self) -> usize {
        self.literal_count
    }

    #[getter]
    fn always(&self) -> Vec<u32> {
        self.always.clone()
    }
}

impl NativePrefilter {
    /// The literals found in the haystacks of an event's fields (see `candidates_fields`).
    fn scan(&self, in_fields: &[u8], other: &[u8], ends: &[usize], bits: &[u64]) -> Found {
        let mut found = Found::new(self.literal_count);
        if let Some(anywhere) = &self.anywhere {
            for hay in [in_fields, other] {
                anywhere.find_all(hay, &mut found);
            }
        }
        if let Some(placed) = &self.placed {
            for m in placed.automaton.find_overlapping_iter(in_fields) {
                let n = placed.ids[m.pattern().as_usize()];
                found.add(n, bits[ends.partition_point(|&end| end <= m.start())]);
            }
        }
        found
    }

    /// The candidates of an EVTX record with this field view: what `candidates_fields` of the dict the view
    /// becomes would say, without making the dict. None when a value would not go into the haystack here byte
    /// for byte as `push_value` puts its Python object (a float, non-ASCII text, an object): the caller then
    /// makes the event and asks `candidates_fields`.
    pub fn candidates_view(&self, entries: &[(&str, DataValue<'_, '_>)]) -> Option<Vec<u32>> {
        if self.literal_count == 0 {
            return Some(self.always.clone());
        }
        let mut in_fields = Vec::with_capacity(1024);
        let mut other = Vec::with_capacity(1024);
        let mut ends: Vec<usize> = Vec::new();
        let mut bits: Vec<u64> = Vec::new();
        for (name, value) in entries {
            match self.field_bits.get(*name) {
                Some(&bit) => {
                    push_view_value(&mut in_fields, value)?;
                    ends.push(in_fields.len());
                    bits.push(bit);
                }
                None if self.anywhere.is_some() => push_view_value(&mut other, value)?,
                None => {}
            }
        }
        let found = self.scan(&in_fields, &other, &ends, &bits);
        Some(self.select(&found))
    }

    fn select(&self, found: &Found) -> Vec<u32> {
        if found.ids.is_empty() {
            return self.always.clone();
        }
        let mut chosen = vec![0u64; self.variant_count.div_ceil(64)];
        for &i in &self.always {
            chosen[i as usize / 64] |= 1u64 << (i % 64);
        }
        let counts = |(l, m): &(u32, u64)| found.masks[*l as usize] & m != 0;
        for &n in &found.ids {
            let here = found.masks[n as usize];
            for &(v, mask) in &self.targets[n as usize] {
                let (word, bit) = (v as usize / 64, 1u64 << (v % 64));
                if chosen[word] & bit != 0 || here & mask == 0 {
                    continue;
                }
                if self.rest[v as usize]
                    .iter()
                    .all(|clause| clause.iter().any(counts))
                {
                    chosen[word] |= bit;
                }
            }
        }
        let mut out = Vec::new();
        for (w, &word) in chosen.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                out.push((w * 64 + b) as u32);
                bits &= bits - 1;
            }
        }
        out
    }
}

/// A view value into a haystack as `push_value` puts the Python object it becomes; None where that cannot be
/// matched here (see `push_json`).
fn push_view_value(hay: &mut Vec<u8>, value: &DataValue<'_, '_>) -> Option<()> {
    match value {
        DataValue::Null => Some(()),
        DataValue::Json(json) => push_json(hay, json),
        DataValue::Unnamed(items) => items
            .iter()
            .flatten()
            .try_for_each(|item| push_json(hay, item)),
    }
}
