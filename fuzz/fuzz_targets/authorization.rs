//! The Authorization header and the WebSocket `connection_init` payload, then the
//! token they carry through verification (a fixed key, no network): never a panic,
//! and nothing but a token signed by the key is accepted.
#![no_main]

use std::sync::OnceLock;

use auth_jwt::dev::{default_users, DevIssuer};
use auth_jwt::{bearer_token, connection_init_token, KeySource, Verifier, VerifierConfig};
use libfuzzer_sys::fuzz_target;

struct Fixed {
    verifier: Verifier,
    runtime: tokio::runtime::Runtime,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let issuer = DevIssuer::generate(default_users()).expect("a key");
        let keys = KeySource::fixed_pem(issuer.public_pem()).expect("its PEM");
        Fixed {
            verifier: Verifier::new(keys, VerifierConfig::default()),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a runtime"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut tokens = Vec::new();
    if let Ok(Some(token)) = bearer_token(Some(text)) {
        tokens.push(token.to_string());
    }
    if let Ok(payload) = serde_json::from_str::<serde_json::Value>(text) {
        if let Ok(Some(token)) = connection_init_token(&payload) {
            tokens.push(token);
        }
    }
    tokens.push(text.to_string());
    let f = fixed();
    for token in tokens {
        // The fuzzer cannot sign with the key: acceptance would be a forgery.
        let verified = f.runtime.block_on(f.verifier.verify(&token));
        assert!(
            verified.is_err(),
            "accepted a token it never signed: {token:?}"
        );
    }
});
