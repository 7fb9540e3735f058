//! `POST /interface.php` and `POST /`: the Action protocol.

use crate::actions::Caller;
use crate::config::Secret;
use crate::http::body;
use crate::metrics::INVALID;
use crate::protocol::{envelope, ApiError, Code, Request};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use std::time::Instant;

pub async fn interface(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let started = Instant::now();
    let body = match body::read(&req, payload, state.config.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            state
                .metrics
                .request(INVALID, Code::InvalidParam.value(), started.elapsed());
            // The protocol answers a malformed body 200 with code 602; only a body too large
            // (413) or too slow (408) changes the HTTP status.
            let status = match e {
                body::BodyError::Broken => StatusCode::OK,
                _ => e.status(),
            };
            return envelope::error_response(status, &ApiError::param(e.message()));
        }
    };
    let (request, body_token) = match Request::parse(&body, &state.config.limits) {
        Ok(r) => r,
        Err(e) => {
            state
                .metrics
                .request(INVALID, e.code.value(), started.elapsed());
            return envelope::error(&e);
        }
    };
    let action = request.action();
    let caller = Caller {
        token: crate::http::bearer(&req).map(Secret::new).or(body_token),
        peer: crate::http::client_ip(&state, &req),
    };
    let (resp, code) = match crate::actions::run(&state, request, &caller).await {
        Ok(data) => (envelope::ok_raw(&data), 0),
        Err(e) => {
            crate::http::report(&state, action, &e);
            (envelope::error(&e), e.code.value())
        }
    };
    state.metrics.request(action, code, started.elapsed());
    resp
}
