//! Why a request's credentials were refused. Every variant answers HTTP 401 with
//! code `AUTH_TOKEN_ERROR`; the message says which rule failed, never a key.

/// A refused token or header.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// `Authorization` with a scheme other than Bearer, or no token after it.
    #[error("the Authorization header must be 'Bearer <token>'")]
    BadScheme,
    /// Not three base64url parts, or unreadable JSON in them.
    #[error("malformed token")]
    Malformed,
    /// The header names an algorithm outside the allow-list (`none`, HS*, ...).
    #[error("token algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The signature does not verify with any known key.
    #[error("invalid token signature")]
    BadSignature,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` or `aud` do not match the configuration.
    #[error("token issuer or audience not accepted")]
    WrongIssuerOrAudience,
    /// A required claim (`exp`, `sub`) is missing or of the wrong type.
    #[error("token claims invalid")]
    BadClaims,
    /// The header's `kid` is not in the key set, even after a refresh.
    #[error("unknown signing key")]
    UnknownKey,
    /// No verification key could be fetched yet (the key URL is down).
    #[error("verification key unavailable")]
    KeyUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AuthError {
    /// The GraphQL error code clients see.
    pub fn code(&self) -> &'static str {
        "AUTH_TOKEN_ERROR"
    }
}

impl From<jsonwebtoken::errors::Error> for AuthError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::ExpiredSignature => AuthError::Expired,
            K::ImmatureSignature => AuthError::NotYetValid,
            K::InvalidSignature => AuthError::BadSignature,
            K::InvalidAlgorithm | K::InvalidAlgorithmName => AuthError::AlgorithmNotAllowed,
            K::InvalidIssuer | K::InvalidAudience => AuthError::WrongIssuerOrAudience,
            K::MissingRequiredClaim(_) | K::InvalidSubject => AuthError::BadClaims,
            _ => AuthError::Malformed,
        }
    }
}
