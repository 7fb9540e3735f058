//! `GET /metrics`: Prometheus text exposition.

use super::connections::Connections;
use crate::metrics::Gauges;
use crate::state::AppState;
use actix_web::{web, HttpResponse};

pub async fn metrics(state: web::Data<AppState>, conns: web::Data<Connections>) -> HttpResponse {
    let (refused_over_total, refused_over_addr) = conns.refused();
    let gauges = Gauges {
        live_rooms: state
            .list
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .live_len(),
        active_rooms: state.rooms.active(),
        connections_open: conns.open(),
        connections_max: conns.max_total(),
        refused_over_total,
        refused_over_addr,
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&state.health, &gauges))
}
