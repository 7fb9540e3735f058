//! Calls between the nodes of a cluster, in batches (see `cluster::peer`): signed with
//! `cluster.secret` for this node, each batch accepted once; refused otherwise (and absent
//! on a single node).

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
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let time = header(peer::TIME_HEADER).and_then(|t| t.parse::<i64>().ok());
    let nonce = header(peer::NONCE_HEADER).and_then(|n| u64::from_str_radix(n, 16).ok());
    let refuse = || {
        tracing::warn!(peer = ?req.peer_addr(), "unsigned or badly signed node call refused");
        HttpResponse::Forbidden().body("not signed by a node of this cluster")
    };
    // Nothing that cannot be a node's call gets a body buffer larger than a client's.
    let looks_signed = time.is_some_and(peer::fresh)
        && nonce.is_some()
        && header(peer::SIG_HEADER).is_some_and(|s| s.len() == 64);
    let limit = match looks_signed {
        true => state.config.limits.max_body_bytes.max(peer::MAX_BODY),
        false => state.config.limits.max_body_bytes,
    };
    let body = match super::body::read(&req, payload, limit).await {
        Ok(b) => b,
        Err(e) => return HttpResponse::build(e.status()).body(e.message()),
    };
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
        return refuse();
    }
    // One call (as nodes of an earlier version send): answered alone.
    if body.first() == Some(&b'{') {
        let answer = state.rooms.serve_forwarded(&body).await;
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(answer);
    }
    // A batch: the calls run at once, each answered in its place.
    let calls: Vec<&serde_json::value::RawValue> = match serde_json::from_slice(&body) {
        Ok(calls) => calls,
        Err(e) => return HttpResponse::BadRequest().body(format!("not a batch of calls: {e}")),
    };
    if calls.len() > peer::MAX_BATCH {
        return HttpResponse::PayloadTooLarge().body("too many calls in one batch");
    }
    let answers = futures_util::future::join_all(
        calls
            .iter()
            .map(|c| state.rooms.serve_forwarded(c.get().as_bytes())),
    )
    .await;
    let mut out = Vec::with_capacity(answers.iter().map(|a| a.len() + 1).sum::<usize>() + 1);
    out.push(b'[');
    for (i, a) in answers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(a);
    }
    out.push(b']');
    HttpResponse::Ok()
        .content_type("application/json")
        .body(out)
}
