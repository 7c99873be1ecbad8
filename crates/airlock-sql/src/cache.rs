//! A bounded LRU cache in front of [`classify`](crate::classify()).

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;

use crate::class::Classification;
use crate::classify::classify;

/// Bounded LRU cache in front of [`classify`](crate::classify()), keyed by exact statement text.
/// Thread-safe; clone an `Arc<Classifier>` to share it.
pub struct Classifier {
    cache: Mutex<LruCache<Box<str>, Arc<Classification>>>,
    /// Verdicts shared by statements that differ only in literals (see
    /// [`crate::normalize`]): literal-varying reads skip both parsers.
    by_shape: Mutex<LruCache<Box<str>, Arc<Classification>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// How often the cache answered (exact text or literal-free shape) and how
/// often both parsers had to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Answers from the cache.
    pub hits: u64,
    /// Texts classified by the parsers.
    pub misses: u64,
}

impl Classifier {
    /// A classifier caching up to `capacity` distinct statement texts (at least 1).
    pub fn new(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Classifier {
            cache: Mutex::new(LruCache::new(cap)),
            by_shape: Mutex::new(LruCache::new(cap)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
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
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Arc::clone(hit);
        }
        let shape = crate::normalize::literal_free_key(sql);
        if let Some(key) = &shape {
            if let Some(hit) = self
                .by_shape
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(key.as_str())
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Arc::clone(hit);
            }
        }
        // Parse outside the lock: classification is pure, so a concurrent
        // miss on the same text only costs a duplicate parse.
        self.misses.fetch_add(1, Ordering::Relaxed);
        let result = Arc::new(classify(sql));
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(sql.into(), Arc::clone(&result));
        if let Some(key) = shape {
            self.by_shape
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .put(key.into(), Arc::clone(&result));
        }
        result
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
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
        // Texts without literals: the exact cache alone.
        let c = Classifier::new(2);
        let a1 = c.classify("SELECT a FROM t");
        let a2 = c.classify("SELECT a FROM t");
        assert!(Arc::ptr_eq(&a1, &a2));
        c.classify("SELECT b FROM t");
        c.classify("SELECT c FROM t");
        assert_eq!(c.len(), 2);
        let a3 = c.classify("SELECT a FROM t");
        assert!(!Arc::ptr_eq(&a1, &a3));
        assert_eq!(*a1, *a3);
    }

    #[test]
    fn literal_varying_reads_share_one_verdict_and_writes_stay_held() {
        let c = Classifier::new(16);
        let a = c.classify("SELECT abalance FROM pgbench_accounts WHERE aid = 1");
        let b = c.classify("SELECT abalance FROM pgbench_accounts WHERE aid = 99");
        assert!(Arc::ptr_eq(&a, &b), "the second literal skips the parsers");
        assert!(b.read_only);
        let w = c.classify("UPDATE t SET a = 1 WHERE id = 2");
        assert!(!c.classify("UPDATE t SET a = 5 WHERE id = 6").read_only);
        assert!(!w.read_only);
        // Literal-sensitive functions are judged on their own text.
        assert!(
            c.classify("SELECT set_config('search_path', 'x', false)")
                .read_only
        );
        assert!(
            !c.classify("SELECT set_config('default_transaction_read_only', 'off', false)")
                .read_only
        );
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
