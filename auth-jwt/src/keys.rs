//! The verification keys, fetched from `PUBLIC_JWT_KEY_URL` and cached.
//!
//! Rules (SPEC section 4): a PEM public key or a JWKS document, told apart by
//! content; cached for a TTL and refreshed in the background before it expires; a
//! failed fetch is never cached, and the last good keys keep serving at once (no
//! request waits on a URL that hangs once a key is held) while one background
//! refresh retries with backoff; concurrent first requests share one fetch; a token
//! with an unknown `kid` triggers at most one refresh per `kid_refresh_interval`;
//! responses are size-capped; connect and read have timeouts; redirects are followed
//! only on the key URL's own host; an `https` URL may name its own CA.

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
    /// Longest wait between retries while the URL is down (60 s; the first is 5 s,
    /// then doubling).
    pub max_retry_interval: Duration,
    /// PEM certificates of the CAs an `https` key URL is verified against, besides
    /// the public web's (`PUBLIC_JWT_KEY_CA`).
    pub ca_pem: Option<Vec<u8>>,
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
            max_retry_interval: Duration::from_secs(60),
            ca_pem: None,
        }
    }
}

/// The wait before retry number `failures` (1-based): 5 s, doubling, at most `max`.
fn retry_wait(failures: u32, max: Duration) -> Duration {
    Duration::from_secs(5)
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(max)
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
    /// Set while a refresh started for a stale key runs: one at a time.
    nudged: std::sync::atomic::AtomicBool,
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
        let unavailable = |e: reqwest::Error| AuthError::KeyUnavailable(Box::new(e));
        let host = reqwest::Url::parse(&config.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        // A key URL that redirects elsewhere could hand token verification to
        // another party: only redirects on the same host are followed.
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            let same_host = attempt.url().host_str() == host.as_deref();
            if same_host && attempt.previous().len() < 5 {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .redirect(redirects);
        if let Some(pem) = &config.ca_pem {
            for certificate in reqwest::Certificate::from_pem_bundle(pem).map_err(unavailable)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder.build().map_err(unavailable)?;
        Ok(KeySource {
            inner: Arc::new(Inner {
                config,
                client,
                cache: RwLock::new(None),
                fetching: Mutex::new(None),
                last_kid_refresh: Mutex::new(None),
                nudged: std::sync::atomic::AtomicBool::new(false),
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

    /// Refreshes the keys in the background at 90 % of the TTL (and while the URL is
    /// down, retries after 5 s, doubling up to `max_retry_interval`), so requests
    /// rarely wait for a fetch. The task holds only a weak reference: it ends when
    /// the source is dropped.
    pub fn spawn_refresher(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let ttl = self.inner.config.ttl;
        let max_retry = self.inner.config.max_retry_interval;
        tokio::spawn(async move {
            let mut failures = 0u32;
            // Keys just fetched (by `prefetch` at start-up) are not fetched again at once.
            let held = match weak.upgrade() {
                Some(inner) => KeySource { inner }.has_keys().await,
                None => return,
            };
            let mut wait = if held {
                ttl.mul_f32(0.9)
            } else {
                Duration::ZERO
            };
            loop {
                tokio::time::sleep(wait).await;
                let Some(inner) = weak.upgrade() else { return };
                let source = KeySource { inner };
                wait = match source.refresh().await {
                    Ok(()) => {
                        failures = 0;
                        ttl.mul_f32(0.9)
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let wait = retry_wait(failures, max_retry).min(ttl);
                        tracing::warn!(error = %e, retry_in = ?wait, "jwt key refresh failed; keeping the last good key");
                        wait
                    }
                };
            }
        });
    }

    /// Whether a key is cached (for readiness).
    pub async fn has_keys(&self) -> bool {
        self.inner.cache.read().await.is_some()
    }

    /// The current keys: cached ones while fresh; past their TTL, the same at once
    /// while one background refresh runs; with none held yet, one shared fetch.
    pub(crate) async fn keys(&self) -> Result<Keys, AuthError> {
        let stale = {
            let cache = self.inner.cache.read().await;
            match cache.as_ref() {
                Some(c) if c.fetched_at.elapsed() < self.inner.config.ttl => {
                    return Ok(c.keys.clone())
                }
                Some(c) => Some(c.keys.clone()),
                None => None,
            }
        };
        if let Some(stale) = stale {
            self.nudge();
            return Ok(stale);
        }
        self.refresh_shared()
            .await
            .map_err(AuthError::KeyUnavailable)
    }

    /// Starts one background refresh unless one started this way still runs.
    fn nudge(&self) {
        use std::sync::atomic::Ordering;
        if self
            .inner
            .nudged
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let source = self.clone();
        tokio::spawn(async move {
            if let Err(e) = source.refresh().await {
                tracing::warn!(error = %e, "jwt key refresh failed; keeping the last good key");
            }
            source.inner.nudged.store(false, Ordering::Release);
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_their_bound() {
        let max = Duration::from_secs(60);
        let waits: Vec<u64> = (1..=6).map(|n| retry_wait(n, max).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
        assert_eq!(retry_wait(u32::MAX, max), max);
    }
}
