//! Automatic persisted queries, as Apollo Server does them (clients send
//! `extensions.persistedQuery {version: 1, sha256Hash}`): a hash alone runs the
//! query stored under it, or answers `PersistedQueryNotFound` so the client sends
//! hash and query once; a hash with its query is checked, stored and run. The store
//! is in memory, per instance, bounded in entries and bytes (least recently used go
//! first): with several replicas, a miss costs the client one retry on each.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use async_graphql::{Request, Value};
use lru::LruCache;
use sha2::{Digest, Sha256};

/// Why a persisted-query request cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersistedError {
    /// The hash is not stored here (yet): the client retries with the query.
    #[error("PersistedQueryNotFound")]
    NotFound,
    /// The query's hash is not the one sent.
    #[error("provided sha does not match query")]
    Mismatch,
    /// Not version 1, or no usable hash.
    #[error("unsupported persisted query: {0}")]
    Unsupported(&'static str),
}

impl PersistedError {
    /// The code clients key on.
    pub fn code(&self) -> &'static str {
        match self {
            PersistedError::NotFound => "PERSISTED_QUERY_NOT_FOUND",
            PersistedError::Mismatch | PersistedError::Unsupported(_) => "BAD_REQUEST",
        }
    }
}

/// What a request's `persistedQuery` extension came to (for the hit and miss
/// counts; a miss is `PersistedError::NotFound`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persisted {
    /// No extension.
    NotAsked,
    /// The hash alone, found.
    Hit,
    /// The query with its hash, stored (or already there).
    Registered,
}

/// Stored queries by hash.
pub struct PersistedQueries {
    entries: Mutex<(LruCache<String, String>, usize)>,
    max_bytes: usize,
}

impl PersistedQueries {
    /// At most `entries` queries holding at most `max_bytes` of text.
    pub fn new(entries: usize, max_bytes: usize) -> Self {
        let cap = NonZeroUsize::new(entries.max(1)).unwrap_or(NonZeroUsize::MIN);
        PersistedQueries {
            entries: Mutex::new((LruCache::new(cap), 0)),
            max_bytes,
        }
    }

    /// Fills `request.query` from the store, or stores it, per its
    /// `persistedQuery` extension; requests without one are left as they are.
    pub fn resolve(&self, request: &mut Request) -> Result<Persisted, PersistedError> {
        let Some(extension) = request.extensions.0.get("persistedQuery") else {
            return Ok(Persisted::NotAsked);
        };
        let Value::Object(fields) = extension else {
            return Err(PersistedError::Unsupported(
                "persistedQuery is not an object",
            ));
        };
        if fields.get("version") != Some(&Value::from(1)) {
            return Err(PersistedError::Unsupported("only version 1 is supported"));
        }
        let Some(Value::String(hash)) = fields.get("sha256Hash") else {
            return Err(PersistedError::Unsupported("sha256Hash is missing"));
        };
        let hash = hash.to_ascii_lowercase();
        if request.query.is_empty() {
            let stored = self.lock().0.get(&hash).cloned();
            return match stored {
                Some(query) => {
                    request.query = query;
                    Ok(Persisted::Hit)
                }
                None => Err(PersistedError::NotFound),
            };
        }
        if hex_sha256(&request.query) != hash {
            return Err(PersistedError::Mismatch);
        }
        self.store(hash, request.query.clone());
        Ok(Persisted::Registered)
    }

    fn store(&self, hash: String, query: String) {
        if query.len() > self.max_bytes {
            return;
        }
        let mut guard = self.lock();
        let (cache, bytes) = &mut *guard;
        if cache.contains(&hash) {
            return;
        }
        *bytes += query.len();
        if let Some((_, evicted)) = cache.push(hash, query) {
            *bytes -= evicted.len();
        }
        while *bytes > self.max_bytes {
            match cache.pop_lru() {
                Some((_, evicted)) => *bytes -= evicted.len(),
                None => break,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (LruCache<String, String>, usize)> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Lowercase hex SHA-256, as Apollo's clients compute it.
pub fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_hash(query: &str, hash: &str) -> Request {
        let mut r = Request::new(query);
        let ext: Value = async_graphql::value!({"version": 1, "sha256Hash": hash});
        r.extensions.0.insert("persistedQuery".into(), ext);
        r
    }

    #[test]
    fn a_hash_alone_misses_then_hits_once_stored() {
        let store = PersistedQueries::new(10, 1024);
        let q = "{ books { title } }";
        let h = hex_sha256(q);
        assert_eq!(
            store.resolve(&mut with_hash("", &h)),
            Err(PersistedError::NotFound)
        );
        assert_eq!(
            store.resolve(&mut with_hash(q, &h)),
            Ok(Persisted::Registered)
        );
        let mut again = with_hash("", &h.to_ascii_uppercase());
        assert_eq!(store.resolve(&mut again), Ok(Persisted::Hit));
        assert_eq!(again.query, q);
    }

    #[test]
    fn a_mismatched_hash_is_refused_and_not_stored() {
        let store = PersistedQueries::new(10, 1024);
        let h = hex_sha256("{ books { title } }");
        assert_eq!(
            store.resolve(&mut with_hash("{ books { author } }", &h)),
            Err(PersistedError::Mismatch)
        );
        assert_eq!(
            store.resolve(&mut with_hash("", &h)),
            Err(PersistedError::NotFound)
        );
    }

    #[test]
    fn the_store_is_bounded_in_entries_and_bytes() {
        let store = PersistedQueries::new(2, 40);
        let queries = ["{ a }", "{ b }", "{ c }"];
        for q in queries {
            store.resolve(&mut with_hash(q, &hex_sha256(q))).unwrap();
        }
        let hit = |q: &str| store.resolve(&mut with_hash("", &hex_sha256(q))).is_ok();
        assert!(!hit("{ a }"), "the least recently used went first");
        assert!(hit("{ b }") && hit("{ c }"));
        let long = format!("{{ {} }}", "x ".repeat(30));
        store
            .resolve(&mut with_hash(&long, &hex_sha256(&long)))
            .unwrap();
        assert!(!hit(&long), "larger than the byte bound: run, not stored");
        let (_, bytes) = *store.lock();
        assert!(bytes <= 40);
    }

    #[test]
    fn other_versions_are_refused() {
        let store = PersistedQueries::new(2, 40);
        let mut r = Request::new("{ a }");
        r.extensions.0.insert(
            "persistedQuery".into(),
            async_graphql::value!({"version": 2, "sha256Hash": "x"}),
        );
        assert!(matches!(
            store.resolve(&mut r),
            Err(PersistedError::Unsupported(_))
        ));
    }
}
