//! A bounded LRU cache in front of [`classify`](crate::classify()).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;

use crate::class::Classification;
use crate::classify::classify;

/// Bounded LRU cache in front of [`classify`](crate::classify()), keyed by exact statement text.
/// Thread-safe; clone an `Arc<Classifier>` to share it.
pub struct Classifier {
    cache: Mutex<LruCache<Box<str>, Arc<Classification>>>,
}

impl Classifier {
    /// A classifier caching up to `capacity` distinct statement texts (at least 1).
    pub fn new(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Classifier {
            cache: Mutex::new(LruCache::new(cap)),
        }
    }

    /// Classify `sql`, from the cache when this exact text was seen recently.
    pub fn classify(&self, sql: &str) -> Arc<Classification> {
        if let Some(hit) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(sql)
        {
            return Arc::clone(hit);
        }
        // Parse outside the lock: classification is pure, so a concurrent
        // miss on the same text only costs a duplicate parse.
        let result = Arc::new(classify(sql));
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(sql.into(), Arc::clone(&result));
        result
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Maximum number of cached entries.
    pub fn capacity(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cap()
            .get()
    }
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_and_evicts() {
        let c = Classifier::new(2);
        let a1 = c.classify("SELECT 1");
        let a2 = c.classify("SELECT 1");
        assert!(Arc::ptr_eq(&a1, &a2));
        c.classify("SELECT 2");
        c.classify("SELECT 3");
        assert_eq!(c.len(), 2);
        let a3 = c.classify("SELECT 1");
        assert!(!Arc::ptr_eq(&a1, &a3));
        assert_eq!(*a1, *a3);
    }

    #[test]
    fn zero_capacity_is_one() {
        let c = Classifier::new(0);
        assert_eq!(c.capacity(), 1);
        assert!(c.classify("DELETE FROM t").class == crate::StatementClass::Write);
    }

    #[test]
    fn shared_between_threads() {
        let c = Arc::new(Classifier::new(16));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || c.classify(&format!("SELECT {i}")).read_only)
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap_or(false));
        }
    }
}
