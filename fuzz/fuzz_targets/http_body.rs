//! A POST /graphql body, through the same parse and pipeline as over HTTP (embedded
//! stores, anonymous caller): never a panic, and every reply is a GraphQL response.
#![no_main]

use std::sync::OnceLock;

use gateway::fuzzing::BodyHarness;
use libfuzzer_sys::fuzz_target;

fn harness() -> &'static BodyHarness {
    static HARNESS: OnceLock<BodyHarness> = OnceLock::new();
    HARNESS.get_or_init(|| BodyHarness::new().expect("the embedded pipeline builds"))
}

fuzz_target!(|body: &[u8]| {
    if let Ok(reply) = harness().post(body) {
        let reply: serde_json::Value = serde_json::from_slice(&reply).expect("JSON");
        assert!(
            reply.get("data").is_some() || reply.get("errors").is_some(),
            "{reply}"
        );
    }
});
