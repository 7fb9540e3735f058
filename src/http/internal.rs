//! Calls between the nodes of a cluster: signed with `cluster.secret` for this node, each
//! accepted once; refused otherwise (and absent on a single node).

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
    let time = header(peer::TIME_HEADER).and_then(|t| t.parse::<i64>().ok());
    let nonce = header(peer::NONCE_HEADER).and_then(|n| u64::from_str_radix(n, 16).ok());
    let signed = match (time, nonce, header(peer::SIG_HEADER)) {
        (Some(time), Some(nonce), Some(sig)) => {
            let what = peer::Signed {
                time,
                nonce,
                target: &cluster.node_id,
                body: &body,
            };
            // Checked before the nonce is remembered: junk cannot fill the cache.
            peer::verify(cluster.secret().expose(), &what, sig) && cluster.seen.first(nonce, time)
        }
        _ => false,
    };
    if !signed {
        tracing::warn!(peer = ?req.peer_addr(), "unsigned or badly signed node call refused");
        return HttpResponse::Forbidden().body("not signed by a node of this cluster");
    }
    let answer = state.rooms.serve_forwarded(&body).await;
    HttpResponse::Ok()
        .content_type("application/json")
        .body(answer)
}
