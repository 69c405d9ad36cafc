//! Per-thread caches of what a reader works out once per field layout (the names of a record's fields, in
//! order): the names are the reader's constants, so their addresses and lengths identify a layout.

use std::cell::RefCell;
use std::hash::Hash;
use std::thread::LocalKey;

use ahash::AHashMap;

/// A cache starts again empty once it holds this many layouts (a reader has a few dozen).
const MAX_LAYOUTS: usize = 4096;

pub type Cache<K, V> = RefCell<AHashMap<K, V>>;
/// A layout's identity: its names' addresses and lengths.
pub type Layout = Vec<(usize, usize)>;

/// The identity of the layout `names`.
pub fn layout(names: &[&'static str]) -> Layout {
    names
        .iter()
        .map(|n| (n.as_ptr() as usize, n.len()))
        .collect()
}

/// The value `cache` holds for `key`, made by `make` (and kept) the first time.
pub fn cached<K: Hash + Eq, V: Clone>(
    cache: &'static LocalKey<Cache<K, V>>,
    key: K,
    make: impl FnOnce() -> V,
) -> V {
    cache.with(|cache| {
        if let Some(found) = cache.borrow().get(&key) {
            return found.clone();
        }
        let made = make();
        let mut cache = cache.borrow_mut();
        if cache.len() >= MAX_LAYOUTS {
            cache.clear();
        }
        cache.insert(key, made.clone());
        made
    })
}
