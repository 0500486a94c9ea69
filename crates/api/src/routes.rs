//! Routing: read-only resources, JSON errors for everything else.

use std::convert::Infallible;
use std::time::Instant;

use bytes::Bytes;
use http::header::{
    ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderName, HeaderValue,
    REFERRER_POLICY, RETRY_AFTER, VARY, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};

use crate::exposition::{OPENMETRICS, TEXT};
use crate::health::health;
use crate::history;
use crate::negotiate::{self, Format};
use crate::page::{self, Asset};
use crate::stream::{self, EventStream, Refused};
use crate::wire::encode_error;
use crate::{AppState, History};

pub(crate) type Body = Either<Full<Bytes>, EventStream>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
const NO: HeaderValue = HeaderValue::from_static("no");
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
const ACCEPT_VARIES: HeaderValue = HeaderValue::from_static("Accept");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
const NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");
const BASIC_REALM: HeaderValue =
    HeaderValue::from_static("Basic realm=\"metrics-collector\", charset=\"UTF-8\"");

const PATHS: [&str; 7] = [
    "/",
    "/metrics",
    "/metrics/prometheus",
    "/metrics/history",
    "/metrics/stream",
    "/health",
    "/gpu",
];

fn respond(status: StatusCode, body: Bytes) -> Response<Body> {
    respond_as(status, body, JSON)
}

fn respond_as(status: StatusCode, body: Bytes, content_type: HeaderValue) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, content_type);
    headers.insert(CACHE_CONTROL, NO_STORE);
    response
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    respond(status, encode_error(message))
}

/// A request without a user's password, when `basic_auth_users` is set (every path).
pub(crate) fn unauthorized() -> Response<Body> {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "this server needs a user name and password (HTTP basic authentication)",
    );
    response.headers_mut().insert(WWW_AUTHENTICATE, BASIC_REALM);
    response
}

fn not_started() -> Response<Body> {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "no sample taken yet: the service is starting",
    )
}

/// Answers one request. Nothing here waits, except a history request reaching past
/// memory, which waits (bounded) on the archive. `HEAD` gets the same status and headers
/// as `GET`; hyper leaves the body out.
pub(crate) async fn route<B>(state: &AppState, request: &Request<B>) -> Response<Body> {
    let mut response = answer(state, request).await;
    if matches!(request.uri().path(), "/metrics" | "/metrics/prometheus") {
        // Every answer of a negotiated path says so, errors included, so no cache hands
        // one client's format to another (SPEC §8).
        response.headers_mut().insert(VARY, ACCEPT_VARIES);
    }
    response
}

async fn answer<B>(state: &AppState, request: &Request<B>) -> Response<Body> {
    let path = request.uri().path();
    let page = page::asset(path);
    if !PATHS.contains(&path) && page.is_none() {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no such path {path:?}: try {}", PATHS.join(", ")),
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
    if let Some(asset) = page {
        return page_response(asset);
    }
    // Unknown parameters are ignored (SPEC §3): a dashboard's cache buster
    // (`?_=1733050000`) must not break any path.
    match path {
        "/health" => {
            let (serving, body) = health(state, Instant::now());
            let status = if serving {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            respond(status, body)
        }
        "/metrics/history" => match &state.history {
            // Boxed: the future of every request is the size of its largest branch, and
            // this one (it may wait on the archive) would make /metrics's bigger.
            Some(h) => Box::pin(history_response(state, h, request.uri().query())).await,
            None => error(StatusCode::NOT_FOUND, "history is not kept by this server"),
        },
        "/metrics/stream" => match &state.history {
            Some(h) => stream_response(state, h, request),
            None => error(
                StatusCode::NOT_FOUND,
                "streams are not served by this server",
            ),
        },
        _ => {
            let Some(latest) = state.latest.borrow().clone() else {
                return not_started();
            };
            let accept = || {
                request
                    .headers()
                    .get_all(ACCEPT)
                    .iter()
                    .map(|v| v.as_bytes())
            };
            let format = match path {
                "/metrics" => negotiate::metrics(accept()),
                "/metrics/prometheus" => negotiate::prometheus(accept()),
                _ => return respond(StatusCode::OK, latest.bodies.gpu().clone()),
            };
            let (body, content_type) = match format {
                Format::Json => return respond(StatusCode::OK, latest.bodies.metrics().clone()),
                Format::Text => (latest.bodies.prometheus(), TEXT),
                Format::OpenMetrics => (latest.bodies.openmetrics(), OPENMETRICS),
            };
            respond_as(
                StatusCode::OK,
                body.clone(),
                HeaderValue::from_static(content_type),
            )
        }
    }
}

async fn history_response(state: &AppState, h: &History, query: Option<&str>) -> Response<Body> {
    let q = match history::parse(
        query,
        history::now_ms(),
        state.live_interval,
        h.ring.window_every(),
    ) {
        Ok(q) => q,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    respond(StatusCode::OK, history::answer(state, h, &q).await)
}

/// A file of the status page: revalidated on every load (the binary may have changed),
/// under the page's policy.
fn page_response(asset: &Asset) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(asset.bytes())));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(CACHE_CONTROL, NO_CACHE);
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(page::CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    headers.insert(REFERRER_POLICY, NO_REFERRER);
    response
}

fn stream_response<B>(state: &AppState, h: &History, request: &Request<B>) -> Response<Body> {
    let header = request.headers().get(LAST_EVENT_ID).map(|v| v.as_bytes());
    let resume = match stream::resume_point(header, request.uri().query()) {
        Ok(resume) => resume,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let mut response = if request.method() == Method::HEAD {
        Response::new(Either::Left(Full::new(Bytes::new())))
    } else {
        match stream::open(state, &h.ring, resume) {
            Ok(body) => Response::new(Either::Right(body)),
            Err(Refused::Full) => {
                let mut busy = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &stream::full_message(state),
                );
                busy.headers_mut().insert(
                    RETRY_AFTER,
                    HeaderValue::from(stream::retry_after_seconds(state)),
                );
                return busy;
            }
        }
    };
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, EVENT_STREAM);
    headers.insert(CACHE_CONTROL, NO_CACHE);
    headers.insert(X_ACCEL_BUFFERING, NO);
    response
}

pub(crate) async fn handle<B>(
    state: AppState,
    request: Request<B>,
) -> Result<Response<Body>, Infallible> {
    Ok(route(&state, &request).await)
}
