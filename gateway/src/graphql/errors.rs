//! The error codes clients see in `extensions.code` (SPEC section 3).

use async_graphql::{Error, ErrorExtensions};
use domain::{CheckoutError, StoreError};

/// `NOT_AUTHORIZED`, message "not authorized".
pub fn not_authorized() -> Error {
    coded("not authorized", "NOT_AUTHORIZED")
}

/// `INVALID_EMAIL`.
pub fn invalid_email(value: &str) -> Error {
    coded(format!("Invalid email: {value:?}"), "INVALID_EMAIL")
}

/// An error with a message and a code.
pub fn coded(message: impl Into<String>, code: &'static str) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", code))
}

/// `SUBSCRIBER_TOO_SLOW`: the code and message a subscriber that fell `behind`
/// events behind gets before its stream ends (from the event hub or from a shared
/// execution).
pub const SUBSCRIBER_TOO_SLOW: &str = "SUBSCRIBER_TOO_SLOW";

/// The message of `SUBSCRIBER_TOO_SLOW`.
pub fn too_slow_message(behind: u64) -> String {
    format!("subscriber fell {behind} events behind and was dropped; reconnect with `after`")
}

/// A data-source failure: logged with its whole chain here; the client sees a code
/// and, outside production, the top-level message only.
pub fn internal(e: &StoreError) -> Error {
    tracing::error!(error = %e, cause = ?std::error::Error::source(e), "data source failure");
    coded(e.to_string(), "INTERNAL_SERVER_ERROR")
}

/// A refused checkout or checkin.
pub fn checkout(e: CheckoutError) -> Error {
    let code = match &e {
        CheckoutError::AlreadyCheckedOut => "ASSET_DUPLICATE_CHECKOUT_ATTEMPTED",
        CheckoutError::NoOpenCheckout => "ASSET_NO_CHECKOUT_FOUND",
        CheckoutError::AssetNotFound => "ASSET_NOT_FOUND",
        CheckoutError::PatronNotFound => "PATRON_NOT_FOUND",
        CheckoutError::Store(inner) => {
            tracing::error!(error = %inner, cause = ?std::error::Error::source(inner), "checkout failed");
            "ASSET_CHECKOUT_FAILURE"
        }
    };
    coded(e.to_string(), code)
}
