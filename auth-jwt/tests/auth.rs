//! Verification over real HTTP: a key server in this process (actix on port 0) serves
//! PEM or JWKS documents that each test swaps at will, and counts fetches.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use auth_jwt::dev::{default_users, DevIssuer};
use auth_jwt::{
    bearer_token, AuthError, KeySource, KeySourceConfig, Role, Verifier, VerifierConfig,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

fn issuer_a() -> &'static DevIssuer {
    static A: OnceLock<DevIssuer> = OnceLock::new();
    A.get_or_init(|| DevIssuer::generate(default_users()).unwrap())
}

fn issuer_b() -> &'static DevIssuer {
    static B: OnceLock<DevIssuer> = OnceLock::new();
    B.get_or_init(|| DevIssuer::generate(default_users()).unwrap())
}

/// What the key server answers.
#[derive(Clone)]
enum Answer {
    Serve(u16, String),
    /// Never answers (a URL that hangs).
    Hang,
    /// A 302 to this location.
    Redirect(String),
}

/// What the key server answers, changeable while it runs.
#[derive(Clone)]
struct KeyServer {
    body: Arc<Mutex<Answer>>,
    fetches: Arc<AtomicUsize>,
    url: String,
}

impl KeyServer {
    async fn start(status: u16, body: String) -> Self {
        let state = Arc::new(Mutex::new(Answer::Serve(status, body)));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (s, f) = (Arc::clone(&state), Arc::clone(&fetches));
        let server = HttpServer::new(move || {
            let (s, f) = (Arc::clone(&s), Arc::clone(&f));
            App::new().route(
                "/key",
                web::get().to(move || {
                    let (s, f) = (Arc::clone(&s), Arc::clone(&f));
                    async move {
                        f.fetch_add(1, Ordering::SeqCst);
                        let answer = s.lock().unwrap().clone();
                        match answer {
                            Answer::Serve(status, body) => HttpResponse::build(
                                actix_web::http::StatusCode::from_u16(status).unwrap(),
                            )
                            .body(body),
                            Answer::Hang => std::future::pending().await,
                            Answer::Redirect(to) => HttpResponse::Found()
                                .insert_header(("location", to))
                                .finish(),
                        }
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        KeyServer {
            body: state,
            fetches,
            url: format!("http://127.0.0.1:{port}/key"),
        }
    }

    fn serve(&self, status: u16, body: impl Into<String>) {
        self.answer(Answer::Serve(status, body.into()));
    }

    fn answer(&self, answer: Answer) {
        *self.body.lock().unwrap() = answer;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn verifier(&self, ttl: Duration) -> Verifier {
        let mut config = KeySourceConfig::new(&self.url);
        config.ttl = ttl;
        config.max_bytes = 16 * 1024;
        Verifier::new(KeySource::new(config).unwrap(), VerifierConfig::default())
    }
}

fn token(issuer: &DevIssuer, username: &str) -> String {
    issuer.issue(issuer.user(username).unwrap()).unwrap()
}

/// A token signed by `issuer`'s key with arbitrary header and claims.
fn forge(issuer: &DevIssuer, header: Header, claims: serde_json::Value) -> String {
    let key = EncodingKey::from_rsa_pem(issuer.private_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn jwks_of(issuers: &[&DevIssuer]) -> String {
    let keys: Vec<_> = issuers
        .iter()
        .flat_map(|i| i.jwks()["keys"].as_array().unwrap().clone())
        .collect();
    json!({ "keys": keys }).to_string()
}

#[tokio::test]
async fn a_dev_token_verifies_against_the_pem_and_yields_the_user() {
    let server = KeyServer::start(200, issuer_a().public_pem().to_string()).await;
    let verifier = server.verifier(Duration::from_secs(3600));
    let user = verifier.verify(&token(issuer_a(), "user1")).await.unwrap();
    assert_eq!(user.sub, "12345");
    assert_eq!(user.username.as_deref(), Some("user1"));
    assert!(user.has(Role::Admin) && user.has(Role::Librarian) && user.has(Role::User));
    let self_user = verifier
        .verify(&token(issuer_a(), "apickerin0@51.la"))
        .await
        .unwrap();
    assert_eq!(self_user.sub, "5c33c3e9e7bbb6886d531342");
    assert!(!self_user.has(Role::Librarian));
}

#[tokio::test]
async fn roles_are_case_insensitive() {
    let server = KeyServer::start(200, issuer_a().public_pem().to_string()).await;
    let verifier = server.verifier(Duration::from_secs(3600));
    let t = forge(
        issuer_a(),
        Header::new(Algorithm::RS256),
        json!({"sub": 7, "roles": ["ADMIN", "Librarian", "bogus"], "exp": now() + 60}),
    );
    let user = verifier.verify(&t).await.unwrap();
    assert_eq!(user.sub, "7");
    assert!(user.has(Role::Admin) && user.has(Role::Librarian) && !user.has(Role::User));
}

/// Which refusal a hostile token must get.
type Expect = fn(&AuthError) -> bool;

#[tokio::test]
async fn attack_suite_every_case_is_refused() {
    let server = KeyServer::start(200, issuer_a().public_pem().to_string()).await;
    let verifier = server.verifier(Duration::from_secs(3600));
    let good = token(issuer_a(), "user1");
    let claims = json!({"sub": "12345", "roles": ["admin"], "exp": now() + 600});
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());

    // alg none, unsigned.
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims.clone())
    );
    // HS256 signed with the public PEM as the HMAC secret (the classic confusion).
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(issuer_a().public_pem().as_bytes()),
    )
    .unwrap();
    let rs384 = forge(issuer_a(), Header::new(Algorithm::RS384), claims.clone());
    let expired = forge(
        issuer_a(),
        Header::new(Algorithm::RS256),
        json!({"sub": "1", "exp": now() - 3600}),
    );
    let not_yet = forge(
        issuer_a(),
        Header::new(Algorithm::RS256),
        json!({"sub": "1", "exp": now() + 7200, "nbf": now() + 3600}),
    );
    let no_exp = forge(
        issuer_a(),
        Header::new(Algorithm::RS256),
        json!({"sub": "1"}),
    );
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(json!({"sub": "12345", "roles": ["admin"], "exp": now() + 99999})),
        parts[2]
    );
    let other_key = token(issuer_b(), "user1");
    let huge = format!("{}.{}.{}", "A".repeat(40_000), parts[1], parts[2]);

    let cases: Vec<(&str, String, Expect)> = vec![
        ("alg none", none, |e| {
            matches!(e, AuthError::AlgorithmNotAllowed | AuthError::Malformed)
        }),
        ("HS256 with the public key", hs256, |e| {
            matches!(e, AuthError::AlgorithmNotAllowed)
        }),
        ("RS384 not allowed", rs384, |e| {
            matches!(e, AuthError::AlgorithmNotAllowed)
        }),
        ("expired", expired, |e| matches!(e, AuthError::Expired)),
        ("nbf in the future", not_yet, |e| {
            matches!(e, AuthError::NotYetValid)
        }),
        ("no exp", no_exp, |e| matches!(e, AuthError::BadClaims)),
        ("tampered payload", tampered, |e| {
            matches!(e, AuthError::BadSignature)
        }),
        ("another key", other_key, |e| {
            matches!(e, AuthError::BadSignature)
        }),
        ("bad base64", "abc.d*f!.ghi".into(), |e| {
            matches!(e, AuthError::Malformed)
        }),
        ("two parts", "abc.def".into(), |e| {
            matches!(e, AuthError::Malformed)
        }),
        ("empty", String::new(), |e| {
            matches!(e, AuthError::Malformed)
        }),
        ("huge header", huge, |e| matches!(e, AuthError::Malformed)),
    ];
    for (name, token, expected) in cases {
        match verifier.verify(&token).await {
            Ok(user) => panic!("{name}: accepted as {user:?}"),
            Err(e) => {
                assert!(expected(&e), "{name}: wrong refusal {e:?}");
                assert_eq!(e.code(), "AUTH_TOKEN_ERROR");
            }
        }
    }
    assert!(matches!(
        bearer_token(Some("Bearer ")),
        Err(AuthError::BadScheme)
    ));
    assert!(matches!(
        bearer_token(Some("Basic abc")),
        Err(AuthError::BadScheme)
    ));
    assert!(
        verifier.verify(&good).await.is_ok(),
        "the good token still works"
    );
}

#[tokio::test]
async fn jwks_rotation_works_without_a_restart_and_unknown_kids_are_refused() {
    let server = KeyServer::start(200, jwks_of(&[issuer_a(), issuer_b()])).await;
    let verifier = server.verifier(Duration::from_secs(3600));
    assert!(verifier.verify(&token(issuer_a(), "user2")).await.is_ok());
    assert!(verifier.verify(&token(issuer_b(), "user2")).await.is_ok());
    assert_eq!(server.fetches(), 1);

    // Rotate: the old key leaves the set.
    server.serve(200, jwks_of(&[issuer_b()]));
    // Still cached: the old token verifies until the cache learns of the rotation.
    assert!(verifier.verify(&token(issuer_a(), "user2")).await.is_ok());

    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("no-such-kid".into());
    let unknown = forge(issuer_b(), header, json!({"sub": "1", "exp": now() + 600}));
    assert!(matches!(
        verifier.verify(&unknown).await,
        Err(AuthError::UnknownKey)
    ));
    assert_eq!(server.fetches(), 2, "an unknown kid refreshed once");
    assert!(matches!(
        verifier.verify(&unknown).await,
        Err(AuthError::UnknownKey)
    ));
    assert_eq!(server.fetches(), 2, "and not again within the interval");
    assert!(
        verifier.verify(&token(issuer_a(), "user2")).await.is_err(),
        "the rotated-out key is gone after the refresh"
    );
    assert!(verifier.verify(&token(issuer_b(), "user2")).await.is_ok());
}

#[tokio::test]
async fn key_url_down_at_start_then_up_and_failures_are_not_cached() {
    let server = KeyServer::start(503, "down".to_string()).await;
    let verifier = server.verifier(Duration::from_secs(3600));
    let t = token(issuer_a(), "user3");
    assert!(matches!(
        verifier.verify(&t).await,
        Err(AuthError::KeyUnavailable(_))
    ));
    assert!(matches!(
        verifier.verify(&t).await,
        Err(AuthError::KeyUnavailable(_))
    ));
    assert_eq!(server.fetches(), 2, "a failed fetch is not cached");
    server.serve(200, issuer_a().public_pem());
    assert!(verifier.verify(&t).await.is_ok());
}

#[tokio::test]
async fn the_last_good_key_serves_while_the_url_is_down() {
    let server = KeyServer::start(200, issuer_a().public_pem().to_string()).await;
    // TTL zero: every request wants a refresh.
    let verifier = server.verifier(Duration::ZERO);
    let t = token(issuer_a(), "user3");
    assert!(verifier.verify(&t).await.is_ok());
    server.serve(500, "oops");
    assert!(verifier.verify(&t).await.is_ok(), "stale but good");
    server.serve(200, "not a key at all");
    assert!(
        verifier.verify(&t).await.is_ok(),
        "garbage is not cached either"
    );
}

#[tokio::test]
async fn a_stale_key_serves_at_once_while_the_url_hangs_and_one_refresh_runs() {
    let server = KeyServer::start(200, issuer_a().public_pem().to_string()).await;
    let verifier = server.verifier(Duration::ZERO);
    let t = token(issuer_a(), "user3");
    assert!(verifier.verify(&t).await.is_ok());
    server.answer(Answer::Hang);
    let before = server.fetches();
    // The URL hangs for the 5 s request timeout: none of these may wait for it.
    let all = (0..50).map(|_| {
        let (v, t) = (verifier.clone(), t.clone());
        tokio::spawn(async move { v.verify(&t).await.map(|_| ()) })
    });
    let done = tokio::time::timeout(Duration::from_secs(2), futures::future::join_all(all))
        .await
        .expect("verification never waits on a hanging key URL once a key is held");
    for r in done {
        r.unwrap().unwrap();
    }
    // The one refresh they started reaches the server (and hangs there).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.fetches() == before {
        assert!(tokio::time::Instant::now() < deadline, "no refresh started");
        tokio::task::yield_now().await;
    }
    for _ in 0..50 {
        verifier.verify(&t).await.unwrap();
    }
    assert_eq!(
        server.fetches() - before,
        1,
        "one background refresh, not one per request"
    );
}

#[tokio::test]
async fn issuer_and_audience_are_required_when_configured() {
    let server = KeyServer::start(200, issuer_a().public_pem().to_string()).await;
    let mut config = KeySourceConfig::new(&server.url);
    config.ttl = Duration::from_secs(3600);
    let verifier = Verifier::new(
        KeySource::new(config).unwrap(),
        VerifierConfig {
            issuer: Some("https://keys.example".into()),
            audience: Some("central-library".into()),
            ..VerifierConfig::default()
        },
    );
    let signed = |claims: serde_json::Value| {
        let mut all = json!({"sub": "12347", "roles": ["user"], "exp": now() + 600});
        all.as_object_mut()
            .unwrap()
            .extend(claims.as_object().unwrap().clone());
        forge(issuer_a(), Header::new(Algorithm::RS256), all)
    };
    let both = signed(json!({"iss": "https://keys.example", "aud": "central-library"}));
    assert_eq!(verifier.verify(&both).await.unwrap().sub, "12347");
    let listed =
        signed(json!({"iss": "https://keys.example", "aud": ["other", "central-library"]}));
    assert!(verifier.verify(&listed).await.is_ok(), "aud may be a list");
    for (why, claims) in [
        ("no iss", json!({"aud": "central-library"})),
        (
            "another iss",
            json!({"iss": "https://evil.example", "aud": "central-library"}),
        ),
        ("no aud", json!({"iss": "https://keys.example"})),
        (
            "another aud",
            json!({"iss": "https://keys.example", "aud": "other"}),
        ),
    ] {
        let err = verifier.verify(&signed(claims)).await.unwrap_err();
        assert!(
            matches!(err, AuthError::WrongIssuerOrAudience | AuthError::BadClaims),
            "{why}: {err:?}"
        );
    }
}

#[tokio::test]
async fn redirects_are_followed_only_on_the_key_urls_own_host() {
    let target = KeyServer::start(200, issuer_a().public_pem().to_string()).await;
    let redirecting = KeyServer::start(200, String::new()).await;
    let t = token(issuer_a(), "user3");
    // The same server under another host name: another party, as far as the URL says.
    let elsewhere = target.url.replace("127.0.0.1", "localhost");
    redirecting.answer(Answer::Redirect(elsewhere));
    let err = redirecting
        .verifier(Duration::from_secs(3600))
        .verify(&t)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::KeyUnavailable(_)), "{err:?}");
    assert_eq!(target.fetches(), 0, "never fetched from the other host");
    redirecting.answer(Answer::Redirect(target.url.clone()));
    let user = redirecting
        .verifier(Duration::from_secs(3600))
        .verify(&t)
        .await
        .expect("a redirect on the same host is followed");
    assert_eq!(user.sub, "12347");
    assert_eq!(target.fetches(), 1);
}

#[tokio::test]
async fn a_hundred_concurrent_first_requests_cause_one_fetch() {
    let server = KeyServer::start(200, issuer_a().public_pem().to_string()).await;
    let verifier = server.verifier(Duration::from_secs(3600));
    let t = token(issuer_a(), "user1");
    let all = (0..100).map(|_| {
        let (v, t) = (verifier.clone(), t.clone());
        tokio::spawn(async move { v.verify(&t).await.map(|_| ()) })
    });
    for r in futures::future::join_all(all).await {
        r.unwrap().unwrap();
    }
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn an_oversized_key_document_is_refused() {
    let server = KeyServer::start(200, "x".repeat(100_000)).await;
    let verifier = server.verifier(Duration::from_secs(3600));
    let err = verifier
        .verify(&token(issuer_a(), "user1"))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::KeyUnavailable(_)), "{err:?}");
}

#[tokio::test]
async fn the_dev_key_service_endpoints() {
    let issuer =
        Arc::new(DevIssuer::from_private_pem(issuer_a().private_pem(), default_users()).unwrap());
    let server = HttpServer::new(move || {
        let issuer = Arc::clone(&issuer);
        App::new().configure(move |cfg| auth_jwt::dev::configure(cfg, issuer))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    tokio::spawn(server.run());
    let client = reqwest::Client::new();

    let pem = client
        .get(format!("{base}/publickey"))
        .send()
        .await
        .unwrap();
    assert_eq!(pem.status(), 200);
    assert!(pem.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(pem
        .text()
        .await
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    let jwks: serde_json::Value = client
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "RSA");

    let login = |body: serde_json::Value| {
        let client = client.clone();
        let url = format!("{base}/login");
        async move { client.post(url).json(&body).send().await.unwrap() }
    };
    let ok = login(json!({"username": "user2", "password": "password2"})).await;
    assert_eq!(ok.status(), 201);
    let token = ok.json::<serde_json::Value>().await.unwrap()["data"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(login(json!({"username": "user2"})).await.status(), 400);
    assert_eq!(
        login(json!({"username": "user2", "password": "nope"}))
            .await
            .status(),
        401
    );
    let garbage = client
        .post(format!("{base}/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);

    // iat/exp in seconds, 24 h apart; verifiable through the service's own JWKS.
    let payload: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let (iat, exp) = (
        payload["iat"].as_i64().unwrap(),
        payload["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 86_400);
    assert!((iat - now()).abs() < 60, "seconds, not milliseconds");
    let verifier = Verifier::new(
        KeySource::new(KeySourceConfig::new(format!(
            "{base}/.well-known/jwks.json"
        )))
        .unwrap(),
        VerifierConfig::default(),
    );
    let user = verifier.verify(&token).await.unwrap();
    assert_eq!(user.sub, "12346");
}

mod no_panic {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn no_input_makes_verification_panic(token in ".{0,300}", dotted in "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}") {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                // A source that was never reachable: verification must still not panic.
                let verifier = Verifier::new(
                    KeySource::new(KeySourceConfig::new("http://127.0.0.1:9/key")).unwrap(),
                    VerifierConfig::default(),
                );
                let _ = verifier.verify(&token).await;
                let _ = verifier.verify(&dotted).await;
            });
        }
    }
}

#[tokio::test]
async fn the_refresher_fetches_again_before_expiry_without_any_request() {
    let server = KeyServer::start(200, issuer_a().public_pem().to_string()).await;
    let mut config = KeySourceConfig::new(&server.url);
    config.ttl = Duration::from_millis(300);
    let source = KeySource::new(config).unwrap();
    source.spawn_refresher();
    // No token is verified: only the refresher fetches. Poll the counter (bounded).
    let mut fetches = 0;
    for _ in 0..100 {
        fetches = server.fetches();
        if fetches >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fetches >= 3, "refreshed {fetches} times");
    assert!(source.has_keys().await);
    // Dropping the source stops the refresher.
    drop(source);
    let after_drop = server.fetches();
    let mut later = after_drop;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        later = server.fetches();
    }
    assert!(
        later <= after_drop + 1,
        "the refresher outlived its owner: {after_drop} -> {later}"
    );
}

#[tokio::test]
async fn a_cached_verification_never_outlives_the_token() {
    let server = KeyServer::start(200, issuer_a().public_pem().to_string()).await;
    let config = VerifierConfig {
        leeway: Duration::ZERO,
        ..VerifierConfig::default()
    };
    let verifier = Verifier::new(
        KeySource::new(KeySourceConfig::new(&server.url)).unwrap(),
        config,
    );
    let t = forge(
        issuer_a(),
        Header::new(Algorithm::RS256),
        json!({"sub": "1", "exp": now() + 1}),
    );
    assert!(verifier.verify(&t).await.is_ok());
    assert!(verifier.verify(&t).await.is_ok(), "served from the cache");
    // Real time must pass for `exp` to pass.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(verifier.verify(&t).await, Err(AuthError::Expired)));
}

/// An https key server whose certificate (for 127.0.0.1) a private CA signed; returns
/// its URL and that CA's PEM. It answers every connection with `pem`.
async fn https_key_server(pem: String) -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, pem) = (acceptor.clone(), pem.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = [0u8; 4096];
                let _ = tls.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{pem}",
                    pem.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (format!("https://127.0.0.1:{port}/key"), ca.pem())
}

#[tokio::test]
async fn an_https_key_url_is_trusted_through_its_configured_ca_only() {
    let (url, ca_pem) = https_key_server(issuer_a().public_pem().to_string()).await;
    let t = token(issuer_a(), "user3");
    let verifier = |ca: Option<&str>| {
        let mut config = KeySourceConfig::new(&url);
        config.ca_pem = ca.map(|pem| pem.as_bytes().to_vec());
        Verifier::new(KeySource::new(config).unwrap(), VerifierConfig::default())
    };
    let err = verifier(None).verify(&t).await.unwrap_err();
    assert!(
        matches!(err, AuthError::KeyUnavailable(_)),
        "a CA the public web does not know: {err:?}"
    );
    let user = verifier(Some(&ca_pem))
        .verify(&t)
        .await
        .expect("trusted through PUBLIC_JWT_KEY_CA");
    assert_eq!(user.sub, "12347");
}
