//! Where tokens come from: the HTTP `Authorization` header and the WebSocket
//! `connection_init` payload.

use crate::AuthError;

/// The token of an `Authorization` header value. `Ok(None)` when there is no header
/// (anonymous); an error for another scheme or an empty token. The scheme is
/// case-insensitive, as RFC 7235 says.
pub fn bearer_token(header: Option<&str>) -> Result<Option<&str>, AuthError> {
    let Some(value) = header else {
        return Ok(None);
    };
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::BadScheme);
    }
    let token = rest.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(AuthError::BadScheme);
    }
    Ok(Some(token))
}

/// The token of a `connection_init` payload: `authToken` (a bare token or
/// `Bearer <token>`), or `Authorization`/`authorization` (`Bearer <token>`).
/// `Ok(None)` when the payload carries none.
pub fn connection_init_token(payload: &serde_json::Value) -> Result<Option<String>, AuthError> {
    let field = |name: &str| payload.get(name).and_then(serde_json::Value::as_str);
    if let Some(token) = field("authToken") {
        let token = token.trim();
        let has_scheme = token
            .split_once(' ')
            .is_some_and(|(s, _)| s.eq_ignore_ascii_case("bearer"));
        return if has_scheme {
            bearer_token(Some(token)).map(|t| t.map(str::to_string))
        } else if token.is_empty() {
            Err(AuthError::BadScheme)
        } else {
            Ok(Some(token.to_string()))
        };
    }
    let header = field("Authorization").or_else(|| field("authorization"));
    bearer_token(header).map(|t| t.map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn header_forms() {
        assert_eq!(bearer_token(None).unwrap(), None);
        assert_eq!(bearer_token(Some("Bearer abc")).unwrap(), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")).unwrap(), Some("abc"));
        assert!(bearer_token(Some("Bearer")).is_err());
        assert!(bearer_token(Some("Bearer ")).is_err());
        assert!(bearer_token(Some("Basic dXNlcjpwYXNz")).is_err());
        assert!(bearer_token(Some("Token abc")).is_err());
        assert!(bearer_token(Some("Bearer a b")).is_err());
        assert!(bearer_token(Some("")).is_err());
    }

    #[test]
    fn connection_init_forms() {
        let t = |v| connection_init_token(&v);
        assert_eq!(t(json!({})).unwrap(), None);
        assert_eq!(
            t(json!({"authToken": "abc"})).unwrap().as_deref(),
            Some("abc")
        );
        assert_eq!(
            t(json!({"authToken": "Bearer abc"})).unwrap().as_deref(),
            Some("abc")
        );
        assert_eq!(
            t(json!({"Authorization": "Bearer abc"}))
                .unwrap()
                .as_deref(),
            Some("abc")
        );
        assert!(t(json!({"Authorization": "Basic abc"})).is_err());
        assert!(t(json!({"authToken": ""})).is_err());
    }

    proptest! {
        #[test]
        fn any_header_parses_or_errs_without_panicking(s in ".*") {
            let _ = bearer_token(Some(&s));
        }

        #[test]
        fn a_bearer_token_round_trips(token in "[A-Za-z0-9._~+/=-]{1,200}") {
            let header = format!("Bearer {token}");
            prop_assert_eq!(bearer_token(Some(&header)).unwrap(), Some(token.as_str()));
        }
    }
}
