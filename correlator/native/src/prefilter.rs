//! The literal prefilter (see correlator/sigma/prefilter.py for the semantics).
//!
//! A variant is triggered by a literal of its first clause found in the haystack; it is a candidate when
//! every other clause has a literal among those found. Variants without clauses are always candidates.
//! Same inputs and outputs as the pure-Python `Prefilter`; the tests check the two agree.

use std::collections::HashMap;

use aho_corasick::AhoCorasick;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::haystack::push_value;

#[pyclass(module = "correlator._native", frozen)]
pub struct NativePrefilter {
    automaton: Option<AhoCorasick>,
    literal_count: usize,
    targets: Vec<Vec<u32>>,
    rest: Vec<Vec<Vec<u32>>>,
    always: Vec<u32>,
    variant_count: usize,
}

#[pymethods]
impl NativePrefilter {
    #[new]
    fn new(clause_sets: Vec<Option<Vec<Vec<String>>>>) -> PyResult<Self> {
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
        let automaton = if literals.is_empty() {
            None
        } else {
            Some(AhoCorasick::new(&literals).map_err(|e| PyValueError::new_err(e.to_string()))?)
        };
        Ok(Self {
            automaton,
            literal_count: literals.len(),
            targets,
            rest,
            always,
            variant_count,
        })
    }

    /// Candidate variant indices for a (case-folded) haystack, in ascending order.
    fn candidates(&self, haystack: &str) -> Vec<u32> {
        self.find(haystack.as_bytes())
    }

    /// Candidates for an event's field view: the haystack of every value is built here, not in Python.
    fn candidates_fields(&self, fields: &Bound<'_, PyDict>) -> PyResult<Vec<u32>> {
        if self.automaton.is_none() {
            return Ok(self.always.clone());
        }
        let mut hay = Vec::with_capacity(2048);
        for (_, value) in fields.iter() {
            push_value(&mut hay, &value)?;
        }
        Ok(self.find(&hay))
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
    fn find(&self, haystack: &[u8]) -> Vec<u32> {
        let Some(automaton) = &self.automaton else {
            return self.always.clone();
        };
        let mut seen = vec![0u64; self.literal_count.div_ceil(64)];
        let mut found: Vec<u32> = Vec::new();
        for m in automaton.find_overlapping_iter(haystack) {
            let n = m.pattern().as_usize();
            let (word, bit) = (n / 64, 1u64 << (n % 64));
            if seen[word] & bit == 0 {
                seen[word] |= bit;
                found.push(n as u32);
            }
        }
        if found.is_empty() {
            return self.always.clone();
        }
        let has = |n: u32| seen[n as usize / 64] & (1u64 << (n % 64)) != 0;
        let mut chosen = vec![0u64; self.variant_count.div_ceil(64)];
        for &i in &self.always {
            chosen[i as usize / 64] |= 1u64 << (i % 64);
        }
        for &n in &found {
            for &v in &self.targets[n as usize] {
                let (word, bit) = (v as usize / 64, 1u64 << (v % 64));
                if chosen[word] & bit != 0 {
                    continue;
                }
                if self.rest[v as usize]
                    .iter()
                    .all(|clause| clause.iter().any(|&l| has(l)))
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
