//! The dev key service (SPEC section 4): for development and tests only. It holds an
//! RSA key, publishes its public half as PEM and JWKS, and logs known users in with a
//! password, returning a signed token. The `dev-key-service` binary serves it; the
//! gateway's embedded mode mounts the same routes.

use std::path::Path;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Tokens live this long (SPEC: 24 h).
pub const TOKEN_LIFETIME_SECS: i64 = 24 * 60 * 60;

/// Why the dev key service could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// Key generation, parsing or encoding failed.
    #[error("dev key error")]
    Key(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A key or users file could not be read or written.
    #[error("cannot use file {path}")]
    File {
        /// Which file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The users file is not a JSON list of users.
    #[error("invalid users file")]
    Users(#[source] serde_json::Error),
}

/// A user who can log in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DevUser {
    /// Login name.
    pub username: String,
    /// Password, in clear: these are dev-only accounts.
    pub password: String,
    /// The token's `sub`.
    pub sub: String,
    /// The token's `roles`.
    pub roles: Vec<String>,
}

/// The SPEC's default users.
pub fn default_users() -> Vec<DevUser> {
    let user = |username: &str, password: &str, sub: &str, roles: &[&str]| DevUser {
        username: username.into(),
        password: password.into(),
        sub: sub.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
    };
    vec![
        user(
            "user1",
            "password1",
            "12345",
            &["admin", "librarian", "user"],
        ),
        user("user2", "password2", "12346", &["librarian", "user"]),
        user("user3", "password3", "12347", &["user"]),
        user(
            "apickerin0@51.la",
            "password",
            "5c33c3e9e7bbb6886d531342",
            &["user"],
        ),
    ]
}

/// Reads a users file: a JSON list of `{username, password, sub, roles}`.
pub fn load_users(path: &Path) -> Result<Vec<DevUser>, DevError> {
    let text = std::fs::read_to_string(path).map_err(|source| DevError::File {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str(&text).map_err(DevError::Users)
}

/// Signs tokens for the dev users with one RSA key.
pub struct DevIssuer {
    private_pem: String,
    public_pem: String,
    jwks: serde_json::Value,
    kid: String,
    encoding: EncodingKey,
    users: Vec<DevUser>,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    username: &'a str,
    roles: &'a [String],
    iat: i64,
    exp: i64,
}

impl DevIssuer {
    /// A fresh RSA-2048 key.
    pub fn generate(users: Vec<DevUser>) -> Result<Self, DevError> {
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
            .map_err(|e| DevError::Key(Box::new(e)))?;
        Self::from_key(key, users)
    }

    /// From a PKCS#8 PEM private key.
    pub fn from_private_pem(pem: &str, users: Vec<DevUser>) -> Result<Self, DevError> {
        let key = RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| DevError::Key(Box::new(e)))?;
        Self::from_key(key, users)
    }

    /// Loads the key at `path`, or generates one and saves it there (mode 0600), so
    /// restarts keep issued tokens valid.
    pub fn load_or_generate(path: &Path, users: Vec<DevUser>) -> Result<Self, DevError> {
        let file_error = |source| DevError::File {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(pem) => Self::from_private_pem(&pem, users),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let issuer = Self::generate(users)?;
                write_private(path, issuer.private_pem.as_bytes()).map_err(file_error)?;
                Ok(issuer)
            }
            Err(e) => Err(file_error(e)),
        }
    }

    fn from_key(key: RsaPrivateKey, users: Vec<DevUser>) -> Result<Self, DevError> {
        let private_pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| DevError::Key(Box::new(e)))?
            .to_string();
        let public = key.to_public_key();
        let public_pem = public
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| DevError::Key(Box::new(e)))?;
        let n = public.n().to_bytes_be();
        let e = public.e().to_bytes_be();
        // RFC 7638-style thumbprint as the key id: stable for a given key.
        let thumb = Sha256::digest(
            format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(&e),
                URL_SAFE_NO_PAD.encode(&n)
            )
            .as_bytes(),
        );
        let kid = URL_SAFE_NO_PAD.encode(thumb);
        let jwks = serde_json::json!({
            "keys": [{
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(&n),
                "e": URL_SAFE_NO_PAD.encode(&e),
            }]
        });
        let encoding = EncodingKey::from_rsa_pem(private_pem.as_bytes())
            .map_err(|e| DevError::Key(Box::new(e)))?;
        Ok(DevIssuer {
            private_pem,
            public_pem,
            jwks,
            kid,
            encoding,
            users,
        })
    }

    /// The public key, PEM (SubjectPublicKeyInfo).
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// The private key, PKCS#8 PEM (to hand the same key to another process).
    pub fn private_pem(&self) -> &str {
        &self.private_pem
    }

    /// The public key as a JWKS document.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    /// A token for the user with these credentials, or `None`.
    pub fn login(&self, username: &str, password: &str) -> Option<String> {
        let user = self
            .users
            .iter()
            .find(|u| u.username == username && u.password == password)?;
        self.issue(user)
    }

    /// A token for `user`, valid 24 h from now (`iat`/`exp` in seconds).
    pub fn issue(&self, user: &DevUser) -> Option<String> {
        self.issue_for(user, TOKEN_LIFETIME_SECS)
    }

    /// A token for `user`, valid `lifetime_secs` from now: to try what clients do
    /// when a token expires.
    pub fn issue_for(&self, user: &DevUser, lifetime_secs: i64) -> Option<String> {
        let now = chrono::Utc::now().timestamp();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        let claims = Claims {
            sub: &user.sub,
            username: &user.username,
            roles: &user.roles,
            iat: now,
            exp: now + lifetime_secs,
        };
        jsonwebtoken::encode(&header, &claims, &self.encoding).ok()
    }

    /// The user named `username`, if any.
    pub fn user(&self, username: &str) -> Option<&DevUser> {
        self.users.iter().find(|u| u.username == username)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[derive(Deserialize)]
struct Login {
    username: Option<String>,
    password: Option<String>,
}

/// Mounts `GET /publickey`, `GET /.well-known/jwks.json` and `POST /login`.
pub fn configure(cfg: &mut web::ServiceConfig, issuer: Arc<DevIssuer>) {
    cfg.app_data(web::Data::from(issuer))
        .app_data(
            web::JsonConfig::default()
                .limit(16 * 1024)
                .error_handler(|e, _| {
                    let message = format!("invalid login body: {e}");
                    actix_web::error::InternalError::from_response(
                        e,
                        HttpResponse::BadRequest().json(serde_json::json!({ "error": message })),
                    )
                    .into()
                }),
        )
        .route("/publickey", web::get().to(public_key))
        .route("/.well-known/jwks.json", web::get().to(jwks))
        .route("/login", web::post().to(login));
}

async fn public_key(issuer: web::Data<DevIssuer>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(issuer.public_pem().to_string())
}

async fn jwks(issuer: web::Data<DevIssuer>) -> HttpResponse {
    HttpResponse::Ok().json(issuer.jwks())
}

async fn login(issuer: web::Data<DevIssuer>, body: web::Json<Login>) -> HttpResponse {
    let (Some(username), Some(password)) = (&body.username, &body.password) else {
        return HttpResponse::BadRequest()
            .json(serde_json::json!({ "error": "username and password are required" }));
    };
    match issuer.login(username, password) {
        Some(token) => HttpResponse::Created().json(serde_json::json!({ "data": token })),
        None => HttpResponse::Unauthorized()
            .json(serde_json::json!({ "error": "invalid username or password" })),
    }
}
