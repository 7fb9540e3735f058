//! Liveness and readiness.

use crate::state::AppState;
use actix_web::{web, HttpResponse};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Cheapest possible answer: also the throughput ceiling the benches compare against.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

/// Ready when the database answers and no snapshot is failing. While the database is down
/// the server keeps serving from memory and says "degraded" (HTTP 503) with the backlog.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db_ok = tokio::time::timeout(Duration::from_secs(2), state.store.ping())
        .await
        .is_ok_and(|r| r.is_ok());
    // In a cluster, Redis away is a degraded mode too: owned rooms still serve.
    let redis_ok = state.rooms.cluster().map(|c| !c.degraded());
    let degraded =
        !db_ok || state.health.degraded.load(Ordering::Relaxed) || redis_ok == Some(false);
    let mut body = serde_json::json!({
        "status": if degraded { "degraded" } else { "ready" },
        "database": if db_ok { "up" } else { "down" },
        "pending_rooms": state.health.pending_rooms.load(Ordering::Relaxed),
        "live_rooms": state.list.read().unwrap_or_else(|e| e.into_inner()).live_len(),
    });
    if let (Some(ok), Some(c)) = (redis_ok, state.rooms.cluster()) {
        body["redis"] = (if ok { "up" } else { "down" }).into();
        body["node"] = c.node_id.clone().into();
    }
    let mut resp = if degraded {
        HttpResponse::ServiceUnavailable()
    } else {
        HttpResponse::Ok()
    };
    resp.content_type("application/json").body(body.to_string())
}
