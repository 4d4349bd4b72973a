//! Token verification.

use std::collections::BTreeSet;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::keys::Keys;
use crate::{AuthError, CurrentUser, KeySource, Role};

/// What a token must satisfy.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Accepted algorithms (default RS256 only). `none` can never be listed, and HS*
    /// is refused whatever the list says: the key is public.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp` and `nbf` (5 s).
    pub leeway: Duration,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    pub audience: Option<String>,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        VerifierConfig {
            algorithms: vec![Algorithm::RS256],
            leeway: Duration::from_secs(5),
            issuer: None,
            audience: None,
        }
    }
}

/// Verifies tokens against the key source.
///
/// Successful verifications are cached for a short while (RSA verification is the
/// largest CPU cost of a request, and clients reuse a token for hours); an entry
/// never outlives the token's own `exp`, so expiry is still exact.
#[derive(Clone)]
pub struct Verifier {
    keys: KeySource,
    config: VerifierConfig,
    /// token -> (user, exp + leeway, key generation it was verified under).
    verified: moka::sync::Cache<String, (CurrentUser, i64, u64)>,
}

/// How long a verified token is trusted without checking its signature again.
const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// How many verified tokens are remembered.
const VERIFIED_CAPACITY: u64 = 10_000;

/// The claims we read. `sub` may be a string or a number in the wild.
#[derive(Deserialize)]
struct Claims {
    sub: Subject,
    /// Required; optional here so a missing one is reported by the validation
    /// (`BadClaims`), not as an unreadable token.
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    roles: Roles,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Subject {
    Text(String),
    Number(i64),
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Roles {
    List(Vec<String>),
    One(String),
    #[default]
    None,
}

/// Headers larger than this are refused before any parsing (a hostile token).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

impl Verifier {
    /// A verifier using `keys`.
    pub fn new(keys: KeySource, config: VerifierConfig) -> Self {
        Verifier {
            keys,
            config,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(VERIFIED_TTL)
                .build(),
        }
    }

    /// The key source (for readiness and the refresher).
    pub fn key_source(&self) -> &KeySource {
        &self.keys
    }

    /// Verifies `token` and returns its user.
    pub async fn verify(&self, token: &str) -> Result<CurrentUser, AuthError> {
        self.verify_session(token).await.map(|(user, _)| user)
    }

    /// Verifies `token` and returns its user and when it stops being valid (its
    /// `exp` plus the tolerated skew, seconds since the epoch): a long-lived
    /// session (a WebSocket) opened with the token ends then.
    pub async fn verify_session(&self, token: &str) -> Result<(CurrentUser, i64), AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        if let Some((user, exp, generation)) = self.verified.get(token) {
            // New keys since: verify again (the signing key may have been rotated out).
            if generation == self.keys.generation() {
                if chrono::Utc::now().timestamp() < exp {
                    return Ok((user, exp));
                }
                self.verified.invalidate(token);
                return Err(AuthError::Expired);
            }
            self.verified.invalidate(token);
        }
        let generation = self.keys.generation();
        let (user, exp) = self.verify_uncached(token).await?;
        let leeway = self.config.leeway.as_secs() as i64;
        let until = exp.saturating_add(leeway);
        self.verified
            .insert(token.to_string(), (user.clone(), until, generation));
        Ok((user, until))
    }

    async fn verify_uncached(&self, token: &str) -> Result<(CurrentUser, i64), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let alg = header.alg;
        if !self.allowed(alg) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        let kid = header.kid.as_deref();
        let keys = self.keys.keys().await?;
        let result = match keys.find(kid) {
            Some(key) => self.check(token, alg, key),
            None => Err(AuthError::UnknownKey),
        };
        match result {
            // A rotated key: refresh (rate-limited) and try once more.
            Err(AuthError::UnknownKey) | Err(AuthError::BadSignature)
                if matches!(keys, Keys::Set(_)) =>
            {
                let Some(fresh) = self.keys.keys_after_unknown_kid().await else {
                    return result;
                };
                match fresh.find(kid) {
                    Some(key) => self.check(token, alg, key),
                    None => Err(AuthError::UnknownKey),
                }
            }
            other => other,
        }
    }

    fn allowed(&self, alg: Algorithm) -> bool {
        let symmetric = matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
        !symmetric && self.config.algorithms.contains(&alg)
    }

    fn check(
        &self,
        token: &str,
        alg: Algorithm,
        key: &jsonwebtoken::DecodingKey,
    ) -> Result<(CurrentUser, i64), AuthError> {
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // `sub` is required by `Claims` itself (string or number); jsonwebtoken would
        // insist on a string.
        // A configured issuer or audience must be present, not only right when
        // present (jsonwebtoken checks only the claims it is told are required).
        let mut required = vec!["exp"];
        match &self.config.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &self.config.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation)?;
        let claims = data.claims;
        let roles: BTreeSet<Role> = match claims.roles {
            Roles::List(list) => list.iter().filter_map(|r| Role::parse(r)).collect(),
            Roles::One(one) => one.split(',').filter_map(Role::parse).collect(),
            Roles::None => BTreeSet::new(),
        };
        let user = CurrentUser {
            sub: match claims.sub {
                Subject::Text(s) => s,
                Subject::Number(n) => n.to_string(),
            },
            username: claims.username,
            roles,
        };
        let exp = claims.exp.ok_or(AuthError::BadClaims)?;
        Ok((user, exp))
    }
}
