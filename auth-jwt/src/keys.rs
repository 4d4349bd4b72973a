//! The verification keys, fetched from `PUBLIC_JWT_KEY_URL` and cached.
//!
//! Rules (SPEC section 4): a PEM public key or a JWKS document, told apart by
//! content; cached for a TTL and refreshed in the background before it expires; a
//! failed fetch is never cached and the last good keys keep serving; concurrent
//! first requests share one fetch; a token with an unknown `kid` triggers at most
//! one refresh per `kid_refresh_interval`; responses are size-capped; connect and
//! read have timeouts.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::DecodingKey;
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

use crate::AuthError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How the key URL is polled.
#[derive(Debug, Clone)]
pub struct KeySourceConfig {
    /// `PUBLIC_JWT_KEY_URL`.
    pub url: String,
    /// How long fetched keys are trusted (60 min).
    pub ttl: Duration,
    /// The least time between two refreshes caused by unknown `kid`s (10 s).
    pub kid_refresh_interval: Duration,
    /// Connect timeout (2 s).
    pub connect_timeout: Duration,
    /// Whole-request timeout (5 s).
    pub request_timeout: Duration,
    /// Largest accepted document (64 KiB).
    pub max_bytes: usize,
}

impl KeySourceConfig {
    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        KeySourceConfig {
            url: url.into(),
            ttl: Duration::from_secs(60 * 60),
            kid_refresh_interval: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            max_bytes: 64 * 1024,
        }
    }
}

/// A parsed key document.
#[derive(Clone)]
pub(crate) enum Keys {
    /// One PEM key; it verifies tokens with or without a `kid`.
    Pem(Arc<DecodingKey>),
    /// A JWKS: keys by `kid` (a key without `kid` is stored under "").
    Set(Arc<HashMap<String, DecodingKey>>),
}

impl Keys {
    /// The key for a token's `kid`, if known.
    pub(crate) fn find(&self, kid: Option<&str>) -> Option<&DecodingKey> {
        match self {
            Keys::Pem(key) => Some(key),
            Keys::Set(map) => match kid {
                Some(kid) => map.get(kid),
                None if map.len() == 1 => map.values().next(),
                None => map.get(""),
            },
        }
    }

    /// Parses a document: PEM if it looks like PEM, else a JWKS.
    pub(crate) fn parse(body: &[u8]) -> Result<Keys, BoxError> {
        let text = std::str::from_utf8(body)?.trim();
        if text.starts_with("-----BEGIN") {
            return Ok(Keys::Pem(Arc::new(DecodingKey::from_rsa_pem(
                text.as_bytes(),
            )?)));
        }
        let set: JwkSet = serde_json::from_str(text)?;
        let mut map = HashMap::new();
        for jwk in &set.keys {
            // Keys we cannot use (another type, unsupported params) are skipped.
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                map.insert(jwk.common.key_id.clone().unwrap_or_default(), key);
            }
        }
        if map.is_empty() {
            return Err("the JWKS holds no usable key".into());
        }
        Ok(Keys::Set(Arc::new(map)))
    }
}

struct Cached {
    keys: Keys,
    fetched_at: Instant,
}

struct Inner {
    config: KeySourceConfig,
    client: reqwest::Client,
    cache: RwLock<Option<Cached>>,
    /// Held while fetching: concurrent misses wait for one fetch, not start their own.
    fetching: Mutex<Option<Instant>>,
    last_kid_refresh: Mutex<Option<Instant>>,
    /// Bumped on every successful fetch: caches of verified tokens compare it.
    generation: std::sync::atomic::AtomicU64,
}

/// The cached key source. Cheap to clone; the background refresher stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct KeySource {
    inner: Arc<Inner>,
}

impl KeySource {
    /// A source for `config.url`. Nothing is fetched until the first token, or until
    /// [`KeySource::spawn_refresher`] runs.
    pub fn new(config: KeySourceConfig) -> Result<Self, AuthError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| AuthError::KeyUnavailable(Box::new(e)))?;
        Ok(KeySource {
            inner: Arc::new(Inner {
                config,
                client,
                cache: RwLock::new(None),
                fetching: Mutex::new(None),
                last_kid_refresh: Mutex::new(None),
                generation: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// A source holding one fixed PEM public key, never fetched (the gateway's
    /// embedded mode, whose dev issuer lives in the same process).
    pub fn fixed_pem(pem: &str) -> Result<Self, AuthError> {
        let keys = Keys::parse(pem.as_bytes()).map_err(AuthError::KeyUnavailable)?;
        let mut config = KeySourceConfig::new("");
        config.ttl = Duration::MAX;
        let source = Self::new(config)?;
        if let Ok(mut cache) = source.inner.cache.try_write() {
            *cache = Some(Cached {
                keys,
                fetched_at: Instant::now(),
            });
        }
        Ok(source)
    }

    /// Refreshes the keys in the background at 90 % of the TTL (and retries every
    /// few seconds while the URL is down), so requests rarely wait for a fetch. The
    /// task holds only a weak reference: it ends when the source is dropped.
    pub fn spawn_refresher(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let ttl = self.inner.config.ttl;
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let source = KeySource { inner };
                let wait = match source.refresh().await {
                    Ok(()) => ttl.mul_f32(0.9),
                    Err(e) => {
                        tracing::warn!(error = %e, "jwt key refresh failed; keeping the last good key");
                        Duration::from_secs(5).min(ttl)
                    }
                };
                drop(source);
                tokio::time::sleep(wait).await;
            }
        });
    }

    /// Whether a key is cached (for readiness).
    pub async fn has_keys(&self) -> bool {
        self.inner.cache.read().await.is_some()
    }

    /// The current keys: cached ones while fresh; otherwise one shared fetch; and if
    /// that fails, the last good keys, however old.
    pub(crate) async fn keys(&self) -> Result<Keys, AuthError> {
        if let Some(keys) = self.fresh().await {
            return Ok(keys);
        }
        match self.refresh_shared().await {
            Ok(keys) => Ok(keys),
            Err(e) => match self.inner.cache.read().await.as_ref() {
                Some(stale) => Ok(stale.keys.clone()),
                None => Err(AuthError::KeyUnavailable(e)),
            },
        }
    }

    /// Called when a token names an unknown `kid`: refreshes at most once per
    /// `kid_refresh_interval`, and returns the keys to try again with.
    pub(crate) async fn keys_after_unknown_kid(&self) -> Option<Keys> {
        {
            let mut last = self.inner.last_kid_refresh.lock().await;
            let now = Instant::now();
            if last.is_some_and(|t| now - t < self.inner.config.kid_refresh_interval) {
                return None;
            }
            *last = Some(now);
        }
        self.refresh_shared().await.ok()
    }

    async fn fresh(&self) -> Option<Keys> {
        let cache = self.inner.cache.read().await;
        cache
            .as_ref()
            .filter(|c| c.fetched_at.elapsed() < self.inner.config.ttl)
            .map(|c| c.keys.clone())
    }

    /// One fetch for everyone waiting: whoever gets the lock second finds the keys
    /// the first one fetched (newer than when it started waiting).
    async fn refresh_shared(&self) -> Result<Keys, BoxError> {
        let asked_at = Instant::now();
        let mut fetching = self.inner.fetching.lock().await;
        if fetching.is_some_and(|done| done >= asked_at) {
            if let Some(c) = self.inner.cache.read().await.as_ref() {
                return Ok(c.keys.clone());
            }
        }
        let keys = self.fetch().await?;
        *self.inner.cache.write().await = Some(Cached {
            keys: keys.clone(),
            fetched_at: Instant::now(),
        });
        *fetching = Some(Instant::now());
        self.inner
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(keys)
    }

    /// Changes whenever new keys were fetched (a rotation may have removed one).
    pub(crate) fn generation(&self) -> u64 {
        self.inner
            .generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    async fn refresh(&self) -> Result<(), BoxError> {
        self.refresh_shared().await.map(drop)
    }

    async fn fetch(&self) -> Result<Keys, BoxError> {
        let config = &self.inner.config;
        let mut response = self
            .inner
            .client
            .get(&config.url)
            .send()
            .await?
            .error_for_status()?;
        if response
            .content_length()
            .is_some_and(|n| n > config.max_bytes as u64)
        {
            return Err("key document too large".into());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > config.max_bytes {
                return Err("key document too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        let keys = Keys::parse(&body)?;
        tracing::info!(
            kind = match keys {
                Keys::Pem(_) => "pem",
                Keys::Set(_) => "jwks",
            },
            "jwt verification keys fetched"
        );
        Ok(keys)
    }
}
