//! Parsed documents by query text, as Apollo Server's document store keeps them:
//! clients send the same few operations again and again, and parsing one was about
//! 3 % of a checkouts request's CPU (bench/RESULTS.md). Validation still runs on
//! every request (async-graphql has no way to skip it), so a cached document is
//! checked exactly as a freshly parsed one.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::Request;
use lru::LruCache;

/// How many documents are kept (least recently used go first).
const CAPACITY: NonZeroUsize = match NonZeroUsize::new(256) {
    Some(n) => n,
    None => unreachable!(),
};

/// Longer query texts are parsed every time: the cache's memory stays bounded by
/// `CAPACITY` small documents, whatever clients send.
const MAX_QUERY_BYTES: usize = 8 * 1024;

/// The cache; shared by the HTTP workers.
pub struct DocumentCache {
    entries: Mutex<LruCache<String, Arc<ExecutableDocument>>>,
}

impl Default for DocumentCache {
    fn default() -> Self {
        DocumentCache {
            entries: Mutex::new(LruCache::new(CAPACITY)),
        }
    }
}

impl DocumentCache {
    /// Gives `request` its parsed document: the cached parse of the same text, or a
    /// new parse, cached when it succeeds; and returns it (`None` when it does not
    /// parse: a syntax error is left for execution to report, and never cached).
    pub fn prepare(&self, request: &mut Request) -> Option<Arc<ExecutableDocument>> {
        if request.query.len() > MAX_QUERY_BYTES {
            return request.parsed_query().ok().cloned().map(Arc::new);
        }
        let cached = self.lock().get(request.query.as_str()).cloned();
        match cached {
            Some(document) => {
                request.set_parsed_query(ExecutableDocument::clone(&document));
                Some(document)
            }
            None => {
                let document = Arc::new(request.parsed_query().ok()?.clone());
                self.lock()
                    .put(request.query.clone(), Arc::clone(&document));
                Some(document)
            }
        }
    }

    /// How many documents are cached.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is cached yet.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Arc<ExecutableDocument>>> {
        // Every operation on the map completes or leaves it as it was: a panic
        // elsewhere while the lock was held cannot leave it inconsistent.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUERY: &str = "{ checkouts(next: 50) { id patron { firstName } book { title } } }";

    fn parsed(query: &str) -> String {
        let mut request = Request::new(query);
        format!("{:?}", request.parsed_query().expect("parses"))
    }

    #[test]
    fn the_same_text_gets_the_same_document_without_a_second_entry() {
        let cache = DocumentCache::default();
        let mut first = Request::new(QUERY);
        cache.prepare(&mut first);
        assert_eq!(cache.len(), 1);
        let mut second = Request::new(QUERY);
        cache.prepare(&mut second);
        assert_eq!(cache.len(), 1);
        let document = second.parsed_query().expect("the cached document");
        assert_eq!(format!("{document:?}"), parsed(QUERY));
    }

    #[test]
    fn syntax_errors_and_long_texts_are_not_cached() {
        let cache = DocumentCache::default();
        let mut broken = Request::new("{ checkouts(next: 50) { id ");
        cache.prepare(&mut broken);
        assert!(
            broken.parsed_query().is_err(),
            "still reported at execution"
        );
        let long = format!("{{ books {{ title }} }} #{}", "x".repeat(MAX_QUERY_BYTES));
        cache.prepare(&mut Request::new(long));
        assert!(cache.is_empty());
    }

    #[test]
    fn the_least_recently_used_go_first() {
        let cache = DocumentCache::default();
        for i in 0..CAPACITY.get() + 10 {
            cache.prepare(&mut Request::new(format!("{{ books {{ title }} }} #{i}")));
        }
        assert_eq!(cache.len(), CAPACITY.get());
    }
}
