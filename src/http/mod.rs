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

pub fn routes(cfg: &mut web::ServiceConfig) {
    for path in ["/", "/interface.php"] {
        cfg.service(
            web::resource(path)
                .route(web::post().to(interface::interface))
                .default_service(web::to(interface::method_not_allowed)),
        );
    }
    for path in [
        "/callback/tape_callback.php",
        "/callback/Live_callback.php",
        "/callback/tencent",
    ] {
        cfg.route(path, web::post().to(callback::tencent));
    }
    cfg.route("/callback/nginx-rtmp", web::post().to(callback::nginx_rtmp))
        .route("/callback/srs", web::post().to(callback::srs));
    cfg.route("/ws/room/{liveuserid}", web::get().to(ws::room_ws));
    cfg.route("/dashboard", web::get().to(dashboard::page));
    cfg.route("/ws/dashboard", web::get().to(dashboard::feed));
    cfg.route(
        "/dashboard/moderation",
        web::get().to(dashboard::moderation),
    );
    cfg.service(
        web::resource("/dashboard/{action}")
            .app_data(web::PayloadConfig::new(1024))
            .route(web::post().to(dashboard::act)),
    );
    cfg.route("/metrics", web::get().to(metrics::metrics));
    cfg.route(
        crate::cluster::peer::PATH,
        web::post().to(internal::room_call),
    );
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz));
}
