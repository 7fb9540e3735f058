//! `POST /interface.php` and `POST /`: the Action protocol.

use crate::actions::Caller;
use crate::app::AppState;
use crate::protocol::{envelope, ApiError, Code, Request};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use std::time::Instant;

pub async fn interface(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let started = Instant::now();
    let body = match read_body(&req, payload, state.config.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(resp) => {
            state
                .metrics
                .request("invalid", Code::InvalidParam.value(), started.elapsed());
            return resp;
        }
    };
    let (request, body_token) = match Request::parse(&body, &state.config.limits) {
        Ok(r) => r,
        Err(e) => {
            state
                .metrics
                .request("invalid", e.code.value(), started.elapsed());
            return envelope::error(&e);
        }
    };
    let action = request.action();
    let caller = Caller {
        token: bearer(&req).or(body_token),
        peer: req.peer_addr().map(|a| a.ip()),
    };
    let (resp, code) = match crate::actions::run(&state, request, &caller).await {
        Ok(data) => (envelope::ok_raw(&data), 0),
        Err(e) => {
            tracing::debug!(action, code = e.code.value(), msg = %e.msg, "request refused");
            (envelope::error(&e), e.code.value())
        }
    };
    state.metrics.request(action, code, started.elapsed());
    resp
}

/// `Authorization: Bearer <token>`, if present.
fn bearer(req: &HttpRequest) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_string())
}

pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let err = ApiError::param(format!(
        "method {} is not allowed here; use POST",
        req.method()
    ));
    let mut resp = envelope::error_response(StatusCode::METHOD_NOT_ALLOWED, &err);
    resp.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    resp
}

/// Reads the whole body, refusing (413, code 602) as soon as it passes `limit` bytes.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, HttpResponse> {
    let too_large = || {
        envelope::error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &ApiError::param(format!("body is larger than the limit of {limit} bytes")),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|_| envelope::error(&ApiError::param("could not read the request body")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
