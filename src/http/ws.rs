//! `GET /ws/room/{liveuserid}`: a room's realtime events over a WebSocket. The room actor
//! pushes frames into a bounded queue per connection; this task writes them out, answers
//! pings, pings the client, accepts likes, and cuts clients that are silent, slow or abusive.
//!
//! Slowness is judged by what this server holds for the client: a full queue, or a frame
//! the socket has not taken `ws.max_lag_ms` after the room queued it. The kernel's socket
//! buffers only delay that verdict by what they absorb; they cannot prevent it.

use crate::config::Secret;
use crate::model::RoomKey;
use crate::protocol::{ApiError, Code};
use crate::room::{RoomError, Subscription};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts a connection for as long as it lives.
struct ConnSlot(Arc<crate::metrics::Health>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.ws_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

fn refuse(status: actix_web::http::StatusCode, e: &ApiError) -> HttpResponse {
    crate::protocol::envelope::error_response(status, e)
}

#[derive(serde::Deserialize)]
pub struct WsQuery {
    token: Option<Secret>,
}

pub async fn room_ws(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<String>,
    query: web::Query<WsQuery>,
) -> Result<HttpResponse, actix_web::Error> {
    use actix_web::http::StatusCode;
    let vj = path.into_inner();
    let cfg = &state.config.ws;
    if vj.is_empty() || vj.len() > state.config.limits.max_userid_len {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            &ApiError::param("invalid liveuserid"),
        ));
    }
    if state.health.ws_connections.fetch_add(1, Ordering::Relaxed) >= cfg.max_connections {
        state.health.ws_connections.fetch_sub(1, Ordering::Relaxed);
        return Ok(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            &ApiError::new(Code::TooManyRequests, "too many realtime connections"),
        ));
    }
    let slot = ConnSlot(state.health.clone());
    let key = RoomKey::Live(vj.clone());
    let subscription = match state.rooms.subscribe(&vj, cfg.send_queue).await {
        Ok(s) => s,
        Err(e) => {
            let e = ApiError::from(e);
            crate::http::report(&state, "realtime", &e);
            let status = if e.code == Code::UpdateFailed {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return Ok(refuse(status, &e));
        }
    };
    // A failed handshake drops the subscription, which unsubscribes.
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream.max_frame_size(cfg.max_frame_bytes);
    let conn = Conn {
        state: state.clone(),
        key,
        session,
        user: None,
        token: query.into_inner().token,
        errors: 0,
        likes_window: (Instant::now(), 0),
    };
    actix_web::rt::spawn(conn.run(subscription, stream, slot));
    Ok(response)
}

struct Conn {
    state: web::Data<AppState>,
    key: RoomKey,
    session: actix_ws::Session,
    /// The user a token proved, once verified.
    user: Option<String>,
    token: Option<Secret>,
    errors: u32,
    likes_window: (Instant, u32),
}

enum Next {
    Continue,
    Close(Option<CloseReason>),
}

impl Conn {
    async fn run(
        mut self,
        mut events: Subscription,
        mut stream: actix_ws::MessageStream,
        _slot: ConnSlot,
    ) {
        let cfg = self.state.config.ws.clone();
        let timeout = Duration::from_secs(cfg.timeout_secs.max(1));
        let max_lag = Duration::from_millis(cfg.max_lag_ms);
        let mut ping = tokio::time::interval(Duration::from_secs(cfg.ping_interval_secs.max(1)));
        ping.tick().await;
        let mut last_heard = Instant::now();
        let end = loop {
            tokio::select! {
                frame = events.recv() => match frame {
                    Some(q) => {
                        let closing = q.frame.starts_with(r#"{"event":"closed""#);
                        // The bound runs from when the room queued the frame, not from when
                        // this task got to it: time spent behind earlier frames counts.
                        let deadline = tokio::time::Instant::from_std(q.at + max_lag);
                        let sent = tokio::time::timeout_at(deadline, self.session.text(q.frame)).await;
                        if !matches!(sent, Ok(Ok(()))) {
                            break Some(reason(CloseCode::Policy, "too slow: could not deliver events"));
                        }
                        if closing {
                            break Some(reason(CloseCode::Normal, "the broadcast ended"));
                        }
                    }
                    // The room let us go: our queue was full.
                    None => break Some(reason(CloseCode::Policy, "too slow: send queue full")),
                },
                msg = stream.next() => {
                    last_heard = Instant::now();
                    match msg {
                        None => break None,
                        Some(Ok(m)) => match self.on_message(m, timeout).await {
                            Next::Continue => {}
                            Next::Close(r) => break r,
                        },
                        Some(Err(e)) => break Some(reason(CloseCode::Protocol, &format!("protocol error: {e}"))),
                    }
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() > timeout {
                        break Some(reason(CloseCode::Policy, "heartbeat timeout"));
                    }
                    if tokio::time::timeout(timeout, self.session.ping(b"")).await.map_or(true, |r| r.is_err()) {
                        break None;
                    }
                }
            }
        };
        drop(events);
        if let Some(r) = end {
            // A client that is not reading may never take the close frame: do not wait on it.
            let _ = tokio::time::timeout(Duration::from_secs(1), self.session.close(Some(r))).await;
        }
    }

    async fn send(&mut self, text: impl Into<bytestring::ByteString>, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.session.text(text)).await,
            Ok(Ok(()))
        )
    }

    async fn on_message(&mut self, m: Message, timeout: Duration) -> Next {
        match m {
            Message::Ping(b) => {
                let _ = self.session.pong(&b).await;
                Next::Continue
            }
            Message::Pong(_) | Message::Nop => Next::Continue,
            Message::Close(r) => Next::Close(r),
            Message::Text(t) => self.on_text(&t, timeout).await,
            Message::Binary(_) | Message::Continuation(_) => {
                self.client_error("binary frames are not accepted", timeout)
                    .await
            }
        }
    }

    async fn on_text(&mut self, text: &str, timeout: Duration) -> Next {
        let Ok(Value::Object(o)) = serde_json::from_str::<Value>(text) else {
            return self
                .client_error(
                    "frames must be JSON objects like {\"type\":\"like\"}",
                    timeout,
                )
                .await;
        };
        match o.get("type").and_then(Value::as_str) {
            Some("like") => {
                if let Some(t) = o.get("token").and_then(Value::as_str) {
                    self.token = Some(Secret::new(t.chars().take(512).collect::<String>()));
                }
                if let Err(msg) = self.may_like().await {
                    return self.notice(&msg, timeout).await;
                }
                match self.state.rooms.like(&self.key, true).await {
                    Ok(()) => Next::Continue,
                    Err(RoomError::NoRoom(_) | RoomError::NoBroadcast(_)) => {
                        Next::Close(Some(reason(CloseCode::Normal, "the room is gone")))
                    }
                    Err(e) => {
                        let e = ApiError::from(e);
                        crate::http::report(&self.state, "realtime", &e);
                        self.notice(&e.msg, timeout).await
                    }
                }
            }
            Some("ping") => {
                if self.send(r#"{"event":"pong"}"#.to_string(), timeout).await {
                    Next::Continue
                } else {
                    Next::Close(None)
                }
            }
            _ => {
                self.client_error("unknown message type (expected \"like\")", timeout)
                    .await
            }
        }
    }

    /// Throttle, then (when authentication is on) a valid token of any user.
    async fn may_like(&mut self) -> Result<(), String> {
        let limit = self.state.config.ws.likes_per_sec;
        let (start, n) = &mut self.likes_window;
        if start.elapsed() >= Duration::from_secs(1) {
            *start = Instant::now();
            *n = 0;
        }
        if *n >= limit {
            return Err(format!("too many likes: at most {limit} per second"));
        }
        *n += 1;
        if self.state.config.auth.mode == crate::config::AuthMode::Off || self.user.is_some() {
            return Ok(());
        }
        let Some(token) = self.token.clone() else {
            return Err(
                "a like needs a token (?token= on connect, or \"token\" in the message)".into(),
            );
        };
        match self.state.accounts.user_of(token.expose()).await {
            Ok(Some(u)) => {
                self.user = Some(u);
                Ok(())
            }
            Ok(None) => {
                self.token = None;
                Err("the token is not valid".into())
            }
            Err(e) => {
                let e = ApiError::from(e);
                crate::http::report(&self.state, "realtime", &e);
                Err(e.msg)
            }
        }
    }

    /// A refusal that is not abuse (throttled, no token).
    async fn notice(&mut self, msg: &str, timeout: Duration) -> Next {
        let frame = json!({"event": "error", "message": msg}).to_string();
        if self.send(frame, timeout).await {
            Next::Continue
        } else {
            Next::Close(None)
        }
    }

    /// A malformed frame: an error event; repeated abuse closes the connection.
    async fn client_error(&mut self, msg: &str, timeout: Duration) -> Next {
        self.errors += 1;
        if self.errors > self.state.config.ws.max_errors {
            return Next::Close(Some(reason(CloseCode::Policy, "too many malformed frames")));
        }
        self.notice(msg, timeout).await
    }
}

fn reason(code: CloseCode, description: &str) -> CloseReason {
    CloseReason {
        code,
        description: Some(description.to_string()),
    }
}
