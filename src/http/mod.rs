//! HTTP routes.

mod health;
mod interface;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    for path in ["/", "/interface.php"] {
        cfg.service(
            web::resource(path)
                .route(web::post().to(interface::interface))
                .default_service(web::to(interface::method_not_allowed)),
        );
    }
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz));
}
