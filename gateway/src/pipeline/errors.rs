//! The error policy every response goes through: each error ends with a code
//! (resolvers attach theirs where they raise them; what async-graphql raises before
//! execution gets its code from where it stopped, told by the document's state, not
//! by message text), internal messages are masked in production, and a field whose
//! resolver failed is present as `null` (GraphQL spec, "Handling Field Errors").

use std::time::Duration;

use async_graphql::{ErrorExtensionValues, Name, PathSegment, Response, ServerError, Value};

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

/// Codes, masking and nulls for `response`; `parsed`: whether its document parsed.
pub fn finish(
    mut response: Response,
    parsed: bool,
    production: bool,
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
        let paths: Vec<Vec<PathSegment>> = response
            .errors
            .iter()
            .filter(|e| !e.path.is_empty())
            .map(|e| e.path.clone())
            .collect();
        for path in &paths {
            null_at(&mut response.data, path);
        }
    }
    (response, failure)
}

/// Makes the field at `path` present as `null` when execution left it out:
/// async-graphql 7 drops a failed field from its object (`do_resolve_container`),
/// where the GraphQL spec wants `null`. The nearest key on the path that is missing
/// is the one made null. Right for nullable fields, the case of every authorization
/// refusal; a failed non-null field should instead null its nearest nullable parent,
/// which needs the field types along the path (not done yet).
fn null_at(data: &mut Value, path: &[PathSegment]) {
    let mut node = data;
    for segment in path {
        match (node, segment) {
            (Value::Object(fields), PathSegment::Field(name)) => {
                let key = Name::new(name);
                if !fields.contains_key(&key) {
                    fields.insert(key, Value::Null);
                    return;
                }
                node = match fields.get_mut(name.as_str()) {
                    Some(next) => next,
                    None => return,
                };
            }
            (Value::List(items), PathSegment::Index(i)) => {
                node = match items.get_mut(*i) {
                    Some(next) => next,
                    None => return,
                };
            }
            // Already null (propagated), or a shape the path does not fit.
            _ => return,
        }
    }
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

    #[test]
    fn a_failed_field_is_present_as_null() {
        let mut response = Response::new(value!({"patron": {"firstName": "Averill"}}));
        response.errors = vec![error_at(
            vec![field("patron"), field("email")],
            Some("NOT_AUTHORIZED"),
        )];
        let (response, failure) = finish(response, true, true);
        assert_eq!(failure, None);
        assert_eq!(
            response.data,
            value!({"patron": {"firstName": "Averill", "email": null}})
        );
    }

    #[test]
    fn a_failed_non_null_field_nulls_the_parent_left_out() {
        // checkouts[1].patron (non-null) failed and async-graphql nulled the item:
        // it stays as it is.
        let mut response = Response::new(value!({"checkouts": [{"id": "1"}, null]}));
        response.errors = vec![error_at(
            vec![field("checkouts"), PathSegment::Index(1), field("patron")],
            None,
        )];
        let (response, _) = finish(response, true, false);
        assert_eq!(response.data, value!({"checkouts": [{"id": "1"}, null]}));
        assert_eq!(
            response.errors[0].message, "failed",
            "unmasked outside production"
        );

        let mut response = Response::new(value!({}));
        response.errors = vec![error_at(vec![field("book"), field("title")], None)];
        let (response, _) = finish(response, true, true);
        assert_eq!(response.data, value!({"book": null}));
        assert_eq!(response.errors[0].message, "Internal server error");
        assert_eq!(codes(&response), ["INTERNAL_SERVER_ERROR"]);
    }

    #[test]
    fn request_failures_are_told_by_where_they_stopped() {
        let unparsed = Response::from_errors(vec![ServerError::new(" --> 1:3 ...", None)]);
        let (r, failure) = finish(unparsed, false, true);
        assert_eq!(failure, Some(Failure::Request));
        assert_eq!(codes(&r), ["GRAPHQL_PARSE_FAILED"]);
        let invalid = Response::from_errors(vec![ServerError::new("Unknown field", None)]);
        let (r, failure) = finish(invalid, true, true);
        assert_eq!(failure, Some(Failure::Request));
        assert_eq!(codes(&r), ["GRAPHQL_VALIDATION_FAILED"]);
    }
}
