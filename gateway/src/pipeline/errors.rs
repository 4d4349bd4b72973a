//! The error policy every response goes through: each error ends with a code
//! (resolvers attach theirs where they raise them; what async-graphql raises before
//! execution gets its code from where it stopped, told by the document's state, not
//! by message text), internal messages are masked in production, and a failed
//! field's `null` is placed as the GraphQL spec says (`nulls`).

use std::time::Duration;

use async_graphql::{ErrorExtensionValues, PathSegment, Response, ServerError, Value};

use super::nulls::Shape;

/// Why an operation did not execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The document did not parse or validate (a 400 for `application/json`).
    Request,
    /// It ran past `GRAPHQL_REQUEST_TIMEOUT`.
    Timeout,
}

/// The timeout's error, with code `REQUEST_TIMEOUT` (as Apollo Router's).
pub fn timeout_error(timeout: Duration) -> ServerError {
    let mut error = ServerError::new(
        format!(
            "the operation ran past the gateway's limit of {:.1} s and was cancelled",
            timeout.as_secs_f64()
        ),
        None,
    );
    set_code(&mut error, "REQUEST_TIMEOUT");
    error
}

/// What a subscriber that fell `behind` events behind its shared execution gets
/// before its stream ends (the event hub's own message and code).
pub fn subscriber_too_slow(behind: u64) -> async_graphql::Response {
    use crate::graphql::errors::{too_slow_message, SUBSCRIBER_TOO_SLOW};
    let mut error = ServerError::new(too_slow_message(behind), None);
    set_code(&mut error, SUBSCRIBER_TOO_SLOW);
    async_graphql::Response::from_errors(vec![error])
}

/// Codes, masking and nulls for `response`; `parsed`: whether its document parsed;
/// `shape`: what places the nulls.
pub fn finish(
    mut response: Response,
    parsed: bool,
    production: bool,
    shape: Shape<'_>,
) -> (Response, Option<Failure>) {
    // Nothing executed: every error is about the request itself.
    let executed =
        !matches!(response.data, Value::Null) || response.errors.iter().any(|e| !e.path.is_empty());
    let mut failure = None;
    for error in &mut response.errors {
        let code = error
            .extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .cloned();
        match code {
            Some(Value::String(code)) if code == "INTERNAL_SERVER_ERROR" && production => {
                error.message = "Internal server error".into();
            }
            Some(_) => {}
            None if !executed && !parsed => {
                set_code(error, "GRAPHQL_PARSE_FAILED");
                failure = Some(Failure::Request);
            }
            None if !executed && error.path.is_empty() => {
                set_code(error, "GRAPHQL_VALIDATION_FAILED");
                failure = Some(Failure::Request);
            }
            None => {
                if production {
                    error.message = "Internal server error".into();
                }
                set_code(error, "INTERNAL_SERVER_ERROR");
            }
        }
    }
    if executed {
        let paths: Vec<&[PathSegment]> = response
            .errors
            .iter()
            .filter(|e| !e.path.is_empty())
            .map(|e| e.path.as_slice())
            .collect();
        shape.propagate(&mut response.data, &paths);
    }
    (response, failure)
}

/// Every error's `extensions.code`.
pub fn codes(response: &Response) -> Vec<String> {
    response
        .errors
        .iter()
        .filter_map(|e| match e.extensions.as_ref()?.get("code")? {
            Value::String(code) => Some(code.clone()),
            _ => None,
        })
        .collect()
}

/// Sets an error's code.
pub fn set_code(error: &mut ServerError, code: &str) {
    error
        .extensions
        .get_or_insert_with(ErrorExtensionValues::default)
        .set("code", code);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::nulls::FieldTypes;
    use async_graphql::value;

    fn error_at(path: Vec<PathSegment>, code: Option<&str>) -> ServerError {
        let mut e = ServerError::new("failed", None);
        e.path = path;
        if let Some(code) = code {
            set_code(&mut e, code);
        }
        e
    }

    fn field(name: &str) -> PathSegment {
        PathSegment::Field(name.into())
    }

    /// No document: each failed field is made null where it is.
    fn unshaped(types: &FieldTypes) -> Shape<'_> {
        Shape {
            types,
            document: None,
            operation_name: None,
        }
    }

    #[test]
    fn a_failed_field_gets_its_null_and_internal_errors_are_masked_in_production() {
        let types = FieldTypes::default();
        let response = || {
            let mut response = Response::new(value!({"patron": {"firstName": "Averill"}}));
            response.errors = vec![
                error_at(
                    vec![field("patron"), field("email")],
                    Some("NOT_AUTHORIZED"),
                ),
                error_at(vec![field("patron"), field("phone")], None),
            ];
            response
        };
        let (production, failure) = finish(response(), true, true, unshaped(&types));
        assert_eq!(failure, None);
        assert_eq!(
            production.data,
            value!({"patron": {"firstName": "Averill", "email": null, "phone": null}})
        );
        assert_eq!(
            codes(&production),
            ["NOT_AUTHORIZED", "INTERNAL_SERVER_ERROR"]
        );
        assert_eq!(production.errors[1].message, "Internal server error");
        let (development, _) = finish(response(), true, false, unshaped(&types));
        assert_eq!(development.errors[1].message, "failed");
    }

    #[test]
    fn request_failures_are_told_by_where_they_stopped() {
        let unparsed = Response::from_errors(vec![ServerError::new(" --> 1:3 ...", None)]);
        let types = FieldTypes::default();
        let (r, failure) = finish(unparsed, false, true, unshaped(&types));
        assert_eq!(failure, Some(Failure::Request));
        assert_eq!(codes(&r), ["GRAPHQL_PARSE_FAILED"]);
        let invalid = Response::from_errors(vec![ServerError::new("Unknown field", None)]);
        let (r, failure) = finish(invalid, true, true, unshaped(&types));
        assert_eq!(failure, Some(Failure::Request));
        assert_eq!(codes(&r), ["GRAPHQL_VALIDATION_FAILED"]);
    }
}
