//! Routing: three read-only resources, JSON errors for everything else.

use std::convert::Infallible;
use std::time::Instant;

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::AppState;
use crate::health::health;
use crate::wire::encode_error;

pub(crate) type Body = Full<Bytes>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");

fn respond(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, JSON);
    headers.insert(CACHE_CONTROL, NO_STORE);
    response
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    respond(status, encode_error(message))
}

/// Answers one request. Synchronous on purpose: nothing here may wait. `HEAD` gets the
/// same status and headers as `GET`; hyper leaves the body out.
pub(crate) fn route<B>(state: &AppState, request: &Request<B>) -> Response<Body> {
    let path = request.uri().path();
    if !matches!(path, "/metrics" | "/health" | "/gpu") {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no such path {path:?}: try /metrics, /health or /gpu"),
        );
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!(
                "method {} is not allowed on {path}: use GET or HEAD",
                request.method()
            ),
        );
        response.headers_mut().insert(ALLOW, GET_HEAD);
        return response;
    }
    // None of these paths has a parameter, and unknown ones are ignored (SPEC §3): a
    // dashboard's cache buster (`?_=1733050000`) must not break them.

    if path == "/health" {
        let (serving, body) = health(state, Instant::now());
        let status = if serving {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        return respond(status, body);
    }
    let Some(latest) = state.latest.borrow().clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no sample taken yet: the service is starting",
        );
    };
    let body = if path == "/metrics" {
        latest.bodies.metrics().clone()
    } else {
        latest.bodies.gpu().clone()
    };
    respond(StatusCode::OK, body)
}

pub(crate) async fn handle<B>(
    state: AppState,
    request: Request<B>,
) -> Result<Response<Body>, Infallible> {
    Ok(route(&state, &request))
}
