//! What the fuzz targets in `fuzz/` call (feature `fuzzing`): the first code that
//! untrusted input meets, without the network. A POST body goes through the same
//! parse and the same pipeline as over HTTP (parse, persisted queries, alias limit,
//! validation, execution on the embedded stores, error policy, encoding).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::Settings;
use crate::graphql::{dates, Viewer};
use crate::http::Metrics;
use crate::pipeline::Pipeline;

/// The pipeline on the embedded demo stores, and a runtime to run it on.
pub struct BodyHarness {
    pipeline: Pipeline,
    runtime: tokio::runtime::Runtime,
}

impl BodyHarness {
    /// Builds the embedded gateway's pipeline (development settings).
    pub fn new() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let settings = Settings::development();
        let pipeline = runtime.block_on(async {
            let stores = crate::startup::embedded_stores(&settings);
            let metrics = Arc::new(Metrics::new(Vec::new(), Vec::new(), Vec::new(), None)?);
            anyhow::Ok(crate::startup::pipeline(&settings, stores, metrics))
        })?;
        Ok(BodyHarness { pipeline, runtime })
    }

    /// One POST body, as an anonymous caller: returns the reply's JSON (or the
    /// 400's message).
    pub fn post(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        let request = crate::http::request_from_body(body)?;
        Ok(self.runtime.block_on(async {
            let executed = self.pipeline.execute(request, Viewer::default()).await;
            self.pipeline.encode(&executed.response, true)
        }))
    }
}

/// The date formatter on arbitrary arguments.
pub fn format_date(
    instant: DateTime<Utc>,
    format: Option<&str>,
    timezone: Option<&str>,
    locale: Option<&str>,
) -> Result<String, String> {
    dates::format(&instant, format, timezone, locale).map_err(|e| e.to_string())
}
