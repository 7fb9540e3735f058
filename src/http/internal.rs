//! Calls between the nodes of a cluster: signed with `cluster.secret`, refused otherwise
//! (and absent on a single node).

use crate::cluster::peer;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};

pub async fn room_call(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(cluster) = state.rooms.cluster() else {
        return HttpResponse::NotFound().finish();
    };
    let body = match super::body::read(&req, payload, state.config.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return HttpResponse::build(e.status()).body(e.message()),
    };
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let signed = peer::verify(
        cluster.secret().expose(),
        header(peer::TIME_HEADER),
        header(peer::SIG_HEADER),
        &body,
    );
    if !signed {
        tracing::warn!(peer = ?req.peer_addr(), "unsigned or badly signed node call refused");
        return HttpResponse::Forbidden().body("not signed by a node of this cluster");
    }
    let answer = state.rooms.serve_forwarded(&body).await;
    HttpResponse::Ok()
        .content_type("application/json")
        .body(answer)
}
