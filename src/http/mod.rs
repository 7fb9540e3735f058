//! HTTP routes.

pub mod body;
mod callback;
pub mod connections;
mod dashboard;
mod health;
mod interface;
mod internal;
mod metrics;
pub mod request_id;
mod ws;

use crate::protocol::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpRequest};
use std::net::IpAddr;

/// Where an error answer is written: its server-side cause is logged (the client saw only
/// the message) and database failures are counted.
pub(crate) fn report(state: &AppState, what: &'static str, e: &ApiError) {
    match &e.internal {
        Some(cause) => {
            if cause.storage {
                state.metrics.db_error();
            }
            tracing::warn!(action = what, code = e.code.value(), msg = %e.msg, error = %cause.detail, "request failed");
        }
        None => {
            tracing::debug!(action = what, code = e.code.value(), msg = %e.msg, "request refused")
        }
    }
}

/// The client's address: the TCP peer, or the client a trusted proxy names; `None` when a
/// trusted proxy's header does not name one readably.
pub fn client_ip(state: &AppState, req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let clients = &state.clients;
    if !clients.enabled() {
        return Some(peer);
    }
    let values = req
        .headers()
        .get_all(clients.header_name())
        .map(|v| v.to_str().ok());
    clients.resolve(peer, values)
}

/// `GET /openapi.json`: the protocol as OpenAPI 3.1, for this server's limits (built once).
async fn openapi(state: web::Data<AppState>) -> actix_web::HttpResponse {
    let doc = state
        .openapi
        .get_or_init(|| crate::protocol::openapi::json(&state.config.limits));
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.clone())
}

/// `Authorization: Bearer <token>`, if present.
pub(crate) fn bearer(req: &HttpRequest) -> Option<String> {
    let v = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_string())
}

/// 405 with `Allow`, in the envelope, for a method a path does not serve.
fn not_allowed(req: &HttpRequest, allow: &'static str) -> actix_web::HttpResponse {
    use actix_web::http::{header, StatusCode};
    let err = ApiError::param(format!(
        "method {} is not allowed here; use {allow}",
        req.method()
    ));
    let mut resp = crate::protocol::envelope::error_response(StatusCode::METHOD_NOT_ALLOWED, &err);
    resp.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    resp
}

/// A path served for one method; every other method gets 405.
fn only<F, Args>(cfg: &mut web::ServiceConfig, path: &str, method: &'static str, handler: F)
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    let route = match method {
        "GET" => web::get(),
        _ => web::post(),
    };
    cfg.service(
        web::resource(path)
            .route(route.to(handler))
            .default_service(web::to(move |req: HttpRequest| async move {
                not_allowed(&req, method)
            })),
    );
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    for path in ["/", "/interface.php"] {
        only(cfg, path, "POST", interface::interface);
    }
    for path in [
        "/callback/tape_callback.php",
        "/callback/Live_callback.php",
        "/callback/tencent",
    ] {
        only(cfg, path, "POST", callback::tencent);
    }
    only(cfg, "/callback/nginx-rtmp", "POST", callback::nginx_rtmp);
    only(cfg, "/callback/srs", "POST", callback::srs);
    only(cfg, "/ws/room/{liveuserid}", "GET", ws::room_ws);
    only(cfg, "/dashboard", "GET", dashboard::page);
    only(cfg, "/ws/dashboard", "GET", dashboard::feed);
    only(cfg, "/dashboard/moderation", "GET", dashboard::moderation);
    cfg.service(
        web::resource("/dashboard/{action}")
            .app_data(web::PayloadConfig::new(1024))
            .route(web::post().to(dashboard::act))
            .default_service(web::to(|req: HttpRequest| async move {
                not_allowed(&req, "POST")
            })),
    );
    only(cfg, "/metrics", "GET", metrics::metrics);
    only(cfg, crate::cluster::peer::PATH, "POST", internal::room_call);
    only(cfg, "/openapi.json", "GET", openapi);
    only(cfg, "/healthz", "GET", health::healthz);
    only(cfg, "/readyz", "GET", health::readyz);
}
