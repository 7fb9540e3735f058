//! HTTP routes.

mod callback;
mod dashboard;
mod health;
mod interface;
mod metrics;
pub mod request_id;
mod ws;

use actix_web::web;

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
    cfg.route("/metrics", web::get().to(metrics::metrics));
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz));
}
