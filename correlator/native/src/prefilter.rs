//! The literal prefilter (see correlator/sigma/prefilter.py for the semantics).
//!
//! A variant is triggered by a literal of its first clause found in the haystack; it is a candidate when
//! every other clause has a literal among those found. Variants without clauses are always candidates. With an
//! event's fields, a literal placed in certain fields counts only when found in one of their values, and only
//! the values of placed fields are searched for placed literals; the others (keywords) count anywhere.
//! Same inputs and outputs as the pure-Python `Prefilter`; the tests check the two agree.

use std::collections::HashMap;

use ahash::AHashMap;
use aho_corasick::{AhoCorasick, MatchKind};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::haystack::push_value;

/// The literals of a bucket that are searched together, and the literal id of each of its patterns.
struct Automaton {
    automaton: AhoCorasick,
    ids: Vec<u32>,
    /// For a few literals: a leftmost-first automaton over the same patterns, which can use a vectorised
    /// skipping search, to tell quickly whether any is there at all (mostly none is).
    gate: Option<AhoCorasick>,
}

impl Automaton {
    fn new(literals: &[String], ids: Vec<u32>) -> PyResult<Option<Self>> {
        if ids.is_empty() {
            return Ok(None);
        }
        let patterns: Vec<&str> = ids.iter().map(|&n| literals[n as usize].as_str()).collect();
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

    /// Every literal in `hay`, overlapping ones too.
    fn find_all(&self, hay: &[u8], found: &mut Found) {
        if self.gate.as_ref().is_some_and(|gate| !gate.is_match(hay)) {
            return;
        }
        for m in self.automaton.find_overlapping_iter(hay) {
            found.add(self.ids[m.pattern().as_usize()]);
        }
    }
}

/// Literal ids found, as a bit set plus the list of them.
struct Found {
    bits: Vec<u64>,
    ids: Vec<u32>,
}

impl Found {
    fn new(literals: usize) -> Self {
        Self {
            bits: vec![0u64; literals.div_ceil(64)],
            ids: Vec::new(),
        }
    }

    fn add(&mut self, n: u32) {
        let (word, bit) = (n as usize / 64, 1u64 << (n % 64));
        if self.bits[word] & bit == 0 {
            self.bits[word] |= bit;
            self.ids.push(n);
        }
    }

    fn has(&self, n: u32) -> bool {
        self.bits[n as usize / 64] & (1u64 << (n % 64)) != 0
    }
}

/// Up to this many literals, a leftmost-first search can skip through text with a vectorised prefilter.
const FEW_LITERALS: usize = 64;

type ClauseSets = Vec<Option<Vec<Vec<String>>>>;
type FieldSets = Option<Vec<Option<Vec<(String, Option<Vec<String>>)>>>>;

#[pyclass(module = "correlator._native", frozen)]
pub struct NativePrefilter {
    anywhere: Option<Automaton>,
    placed: Option<Automaton>,
    /// Per literal id: the ids (in `field_ids`) of the fields it counts in; empty for anywhere-literals.
    allowed: Vec<Vec<u32>>,
    field_ids: AHashMap<String, u32>,
    literal_count: usize,
    targets: Vec<Vec<u32>>,
    rest: Vec<Vec<Vec<u32>>>,
    always: Vec<u32>,
    variant_count: usize,
}

#[pymethods]
impl NativePrefilter {
    #[new]
    #[pyo3(signature = (clause_sets, field_sets=None))]
    fn new(clause_sets: ClauseSets, field_sets: FieldSets) -> PyResult<Self> {
        let variant_count = clause_sets.len();
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut literals: Vec<String> = Vec::new();
        let mut targets: Vec<Vec<u32>> = Vec::new();
        let mut rest: Vec<Vec<Vec<u32>>> = vec![Vec::new(); variant_count];
        let mut always: Vec<u32> = Vec::new();
        let mut id_of =
            |lit: &String, literals: &mut Vec<String>, targets: &mut Vec<Vec<u32>>| -> u32 {
                if let Some(&n) = ids.get(lit) {
                    return n;
                }
                let n = literals.len() as u32;
                ids.insert(lit.clone(), n);
                literals.push(lit.clone());
                targets.push(Vec::new());
                n
            };
        for (i, clauses) in clause_sets.iter().enumerate() {
            let Some(clauses) = clauses.as_ref().filter(|c| !c.is_empty()) else {
                always.push(i as u32);
                continue;
            };
            let mut first: Vec<&String> = clauses[0].iter().collect();
            first.sort();
            for lit in first {
                let n = id_of(lit, &mut literals, &mut targets);
                targets[n as usize].push(i as u32);
            }
            for clause in &clauses[1..] {
                let mut sorted: Vec<&String> = clause.iter().collect();
                sorted.sort();
                let lits = sorted
                    .into_iter()
                    .map(|l| id_of(l, &mut literals, &mut targets))
                    .collect();
                rest[i].push(lits);
            }
        }

        // Where each literal counts, over the whole bucket: the union of the variants' fields; anywhere when
        // a variant finds it anywhere or none places it.
        let mut placed_in: Vec<Option<Vec<String>>> = vec![None; literals.len()];
        let mut anywhere_by_variant = vec![false; literals.len()];
        for entry in field_sets.iter().flatten().flatten() {
            for (lit, fields) in entry {
                let Some(&n) = ids.get(lit) else { continue };
                let n = n as usize;
                match fields {
                    None => anywhere_by_variant[n] = true,
                    Some(fields) => placed_in[n]
                        .get_or_insert_with(Vec::new)
                        .extend(fields.iter().cloned()),
                }
            }
        }
        let mut field_ids: AHashMap<String, u32> = AHashMap::new();
        let mut allowed: Vec<Vec<u32>> = vec![Vec::new(); literals.len()];
        let (mut anywhere, mut placed) = (Vec::new(), Vec::new());
        for n in 0..literals.len() {
            match placed_in[n].take().filter(|_| !anywhere_by_variant[n]) {
                None => anywhere.push(n as u32),
                Some(fields) => {
                    for field in fields {
                        let next = field_ids.len() as u32;
                        let id = *field_ids.entry(field).or_insert(next);
                        if !allowed[n].contains(&id) {
                            allowed[n].push(id);
                        }
                    }
                    placed.push(n as u32);
                }
            }
        }
        Ok(Self {
            anywhere: Automaton::new(&literals, anywhere)?,
            placed: Automaton::new(&literals, placed)?,
            allowed,
            field_ids,
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
        // Values of fields some placed literal counts in, each ending at `ends[i]` with field id `owners[i]`;
        // all other values in `other`.
        let mut in_fields = Vec::with_capacity(1024);
        let mut other = Vec::with_capacity(1024);
        let mut ends: Vec<usize> = Vec::new();
        let mut owners: Vec<u32> = Vec::new();
        for (name, value) in fields.iter() {
            let field = name
                .downcast::<PyString>()
                .ok()
                .and_then(|n| n.to_str().ok().and_then(|n| self.field_ids.get(n).copied()));
            match field {
                Some(id) => {
                    push_value(&mut in_fields, &value)?;
                    ends.push(in_fields.len());
                    owners.push(id);
                }
                None => push_value(&mut other, &value)?,
            }
        }
        let mut found = Found::new(self.literal_count);
        if let Some(anywhere) = &self.anywhere {
            for hay in [&in_fields, &other] {
                anywhere.find_all(hay, &mut found);
            }
        }
        if let Some(placed) = &self.placed {
            for m in placed.automaton.find_overlapping_iter(in_fields.as_slice()) {
                let n = placed.ids[m.pattern().as_usize()];
                let owner = owners[ends.partition_point(|&end| end <= m.start())];
                if self.allowed[n as usize].contains(&owner) {
                    found.add(n);
                }
            }
        }
        Ok(self.select(&found))
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
    fn select(&self, found: &Found) -> Vec<u32> {
        if found.ids.is_empty() {
            return self.always.clone();
        }
        let mut chosen = vec![0u64; self.variant_count.div_ceil(64)];
        for &i in &self.always {
            chosen[i as usize / 64] |= 1u64 << (i % 64);
        }
        for &n in &found.ids {
            for &v in &self.targets[n as usize] {
                let (word, bit) = (v as usize / 64, 1u64 << (v % 64));
                if chosen[word] & bit != 0 {
                    continue;
                }
                if self.rest[v as usize]
                    .iter()
                    .all(|clause| clause.iter().any(|&l| found.has(l)))
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
