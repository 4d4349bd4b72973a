//! `POST /graphql` and `GET /graphql` (queries only; GraphiQL for browsers outside
//! production; WebSocket upgrades go to `ws`).

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::OperationType;
use async_graphql::Request;
use futures::StreamExt;

use super::{streaming, ConnectionFd, HttpState};
use crate::graphql::Viewer;
use crate::pipeline::Failure;

/// A JSON error body in the GraphQL shape, for failures before execution.
pub(crate) fn error_response(status: StatusCode, message: &str, code: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    }))
}

/// A response sent before the request body was read to its end: the connection
/// must close, or the unread bytes would be taken for the next request.
fn closing(mut resp: HttpResponse) -> HttpResponse {
    resp.head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    resp
}

const CSRF_MESSAGE: &str = "This operation has been blocked as a potential Cross-Site Request Forgery (CSRF). Please either specify a 'content-type' header (with a type that is not one of application/x-www-form-urlencoded, multipart/form-data, text/plain) or provide a non-empty value for one of the following headers: x-apollo-operation-name, apollo-require-preflight";

/// Apollo's CSRF prevention: a request a browser could send without a preflight
/// (no content type, or a "simple" one) must carry a preflight-forcing header.
fn csrf_safe(headers: &HeaderMap) -> bool {
    let has_header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.trim().is_empty())
    };
    if has_header("x-apollo-operation-name") || has_header("apollo-require-preflight") {
        return true;
    }
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    !matches!(
        essence.as_str(),
        "text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data"
    )
}

/// The caller, or the 401 (or 503 when no key can be had) to answer with.
async fn authenticate(state: &HttpState, req: &HttpRequest) -> Result<Viewer, HttpResponse> {
    let header = req.headers().get(header::AUTHORIZATION);
    let header = match header.map(|h| h.to_str()) {
        None => None,
        Some(Ok(h)) => Some(h),
        Some(Err(_)) => {
            return Err(error_response(
                StatusCode::UNAUTHORIZED,
                "the Authorization header must be 'Bearer <token>'",
                "AUTH_TOKEN_ERROR",
            ))
        }
    };
    let token = auth_jwt::bearer_token(header)
        .map_err(|e| error_response(StatusCode::UNAUTHORIZED, &e.to_string(), e.code()))?;
    let Some(token) = token else {
        return Ok(Viewer(None));
    };
    match state.verifier.verify(token).await {
        Ok(user) => Ok(Viewer(Some(user))),
        Err(e @ auth_jwt::AuthError::KeyUnavailable(_)) => {
            tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "cannot verify tokens");
            Err(error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "token verification is unavailable",
                "AUTH_KEY_UNAVAILABLE",
            ))
        }
        Err(e) => Err(error_response(
            StatusCode::UNAUTHORIZED,
            &e.to_string(),
            e.code(),
        )),
    }
}

/// Reads the body up to the limit: 413 past it, whatever Content-Length claimed.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, HttpResponse> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            error_response(
                StatusCode::BAD_REQUEST,
                &format!("unreadable body: {e}"),
                "BAD_REQUEST",
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body larger than {limit} bytes"),
                "PAYLOAD_TOO_LARGE",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub async fn post(
    state: web::Data<HttpState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if !csrf_safe(req.headers()) {
        return closing(error_response(
            StatusCode::BAD_REQUEST,
            CSRF_MESSAGE,
            "BAD_REQUEST",
        ));
    }
    let body = match read_body(payload, state.max_body_bytes).await {
        Ok(b) => b,
        Err(resp) => return closing(resp),
    };
    let request = match request_from_body(&body) {
        Ok(r) => r,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, &message, "BAD_REQUEST"),
    };
    execute(&state, &req, request).await
}

/// A POST body as a GraphQL request, or the message of its 400: straight into the
/// request type (one pass); a failure says whether the body was not JSON at all or
/// JSON of the wrong shape.
pub(crate) fn request_from_body(body: &[u8]) -> Result<Request, String> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err("batched requests are not enabled".into());
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            format!("the body is not a GraphQL request: {e}")
        } else {
            format!("the body is not valid JSON: {e}")
        }
    })
}

pub async fn get(
    state: web::Data<HttpState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if req.headers().contains_key(header::UPGRADE) {
        return super::ws::upgrade(state, req, payload).await;
    }
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if req.query_string().is_empty() {
        if wants_html && !state.production {
            let page = GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql")
                .title("Central Library GraphQL")
                .finish();
            return HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .body(page);
        }
        return error_response(
            StatusCode::BAD_REQUEST,
            "GET requests must have a `query` parameter",
            "BAD_REQUEST",
        );
    }
    if !csrf_safe(req.headers()) {
        return error_response(StatusCode::BAD_REQUEST, CSRF_MESSAGE, "BAD_REQUEST");
    }
    let mut request = match query_string_request(req.query_string()) {
        Ok(r) => r,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("invalid query parameters: {e}"),
                "BAD_REQUEST",
            )
        }
    };
    if !is_query_only(&state, &mut request) {
        let mut resp = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "mutations and subscriptions are not allowed over GET; use POST",
            "BAD_REQUEST",
        );
        resp.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return resp;
    }
    execute(&state, &req, request).await
}

/// A GET request's parameters (GraphQL over HTTP: `query`, `operationName`, and
/// `variables` and `extensions` as JSON). async-graphql's own parser reads
/// `operation_name`, so Apollo Client's `operationName` would be lost.
fn query_string_request(query_string: &str) -> Result<Request, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Params {
        #[serde(default)]
        query: String,
        operation_name: Option<String>,
        variables: Option<String>,
        extensions: Option<String>,
    }
    let params = web::Query::<Params>::from_query(query_string)
        .map_err(|e| e.to_string())?
        .into_inner();
    let mut request = Request::new(params.query);
    request.operation_name = params.operation_name;
    if let Some(variables) = params.variables.filter(|v| !v.is_empty()) {
        request.variables =
            serde_json::from_str(&variables).map_err(|e| format!("invalid variables: {e}"))?;
    }
    if let Some(extensions) = params.extensions.filter(|v| !v.is_empty()) {
        request.extensions =
            serde_json::from_str(&extensions).map_err(|e| format!("invalid extensions: {e}"))?;
    }
    Ok(request)
}

pub async fn method_not_allowed() -> HttpResponse {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "use POST or GET on /graphql",
        "BAD_REQUEST",
    )
}

/// Whether the operation a GET would run is a query. Documents that do not parse
/// or select no operation pass: execution reports why.
fn is_query_only(state: &HttpState, request: &mut Request) -> bool {
    use async_graphql::parser::types::DocumentOperations;
    if let Some(ty) = state.pipeline.operation_type(request) {
        return ty == OperationType::Query;
    }
    // No operation selected: refuse if the document holds anything but queries,
    // so an ambiguous GET can never write.
    match request.parsed_query() {
        Ok(doc) => match &doc.operations {
            DocumentOperations::Single(op) => op.node.ty == OperationType::Query,
            DocumentOperations::Multiple(ops) => {
                ops.values().all(|op| op.node.ty == OperationType::Query)
            }
        },
        Err(_) => true,
    }
}

/// The media type of the reply: `application/graphql-response+json` when the client
/// accepts it (GraphQL over HTTP), else the seed's `application/json`.
fn graphql_response_media(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/graphql-response+json")
            })
        })
}

async fn execute(state: &HttpState, req: &HttpRequest, mut request: Request) -> HttpResponse {
    let viewer: Viewer = match authenticate(state, req).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let protocol = match streaming::requested(accept) {
        Some(streaming::Protocol::Multipart)
            if state.pipeline.operation_type(&mut request) != Some(OperationType::Subscription) =>
        {
            None
        }
        other => other,
    };
    if let Some(protocol) = protocol {
        let transport = match protocol {
            streaming::Protocol::Multipart => "multipart",
            streaming::Protocol::Sse => "sse",
        };
        let responses = state.pipeline.stream(request, viewer, None, transport);
        let watch = streaming::Watch {
            tcp: req.conn_data::<ConnectionFd>().copied(),
            going_away: state.websockets.going_away(),
            send_timeout: state.websockets.send_timeout(),
        };
        return streaming::respond(protocol, responses, watch);
    }
    let executed = state.pipeline.execute(request, viewer).await;
    let graphql_response = graphql_response_media(req);
    let status = match executed.failure {
        None => StatusCode::OK,
        Some(Failure::Request) => StatusCode::BAD_REQUEST,
        Some(Failure::Timeout) => StatusCode::GATEWAY_TIMEOUT,
    };
    // GraphQL over HTTP: a request that never executed has no `data` entry.
    let with_data = !(graphql_response && executed.failure == Some(Failure::Request));
    let body = state.pipeline.encode(&executed.response, with_data);
    let content_type = if graphql_response {
        "application/graphql-response+json"
    } else {
        "application/json"
    };
    HttpResponse::build(status)
        .content_type(content_type)
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_static(k),
                header::HeaderValue::from_static(v),
            );
        }
        h
    }

    #[test]
    fn csrf_rules_follow_apollo() {
        assert!(csrf_safe(&headers(&[("content-type", "application/json")])));
        assert!(csrf_safe(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(!csrf_safe(&headers(&[])));
        assert!(!csrf_safe(&headers(&[("content-type", "text/plain")])));
        assert!(!csrf_safe(&headers(&[(
            "content-type",
            "Multipart/Form-Data; boundary=x"
        )])));
        assert!(!csrf_safe(&headers(&[(
            "content-type",
            "application/x-www-form-urlencoded"
        )])));
        assert!(csrf_safe(&headers(&[
            ("content-type", "text/plain"),
            ("apollo-require-preflight", "true")
        ])));
        assert!(csrf_safe(&headers(&[("x-apollo-operation-name", "Q")])));
    }

    #[test]
    fn the_graphql_response_media_type_when_accepted() {
        let req = |accept: &'static str| {
            actix_web::test::TestRequest::default()
                .insert_header((header::ACCEPT, accept))
                .to_http_request()
        };
        assert!(graphql_response_media(&req(
            "application/graphql-response+json, application/json;q=0.9"
        )));
        assert!(graphql_response_media(&req(
            "Application/GraphQL-Response+JSON; charset=utf-8"
        )));
        assert!(!graphql_response_media(&req("application/json")));
        assert!(!graphql_response_media(&req("*/*")));
    }
}
