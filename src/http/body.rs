//! Request bodies: they arrive within a deadline and within a size limit, or not at all.
//!
//! The `deadline` middleware wraps every request body in a stream that fails once
//! `limits.request_timeout_secs` have passed since the head arrived (a slow head is cut by
//! actix's own `client_request_timeout`). It also keeps the body alive until the answer has
//! been written, on every route: the connection then closes after the answer when the body
//! was not read to its end, instead of being drained for keep-alive at whatever pace the
//! client likes (a chunked body is drained once nobody holds it, with no deadline).

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::HttpMessage;
use futures_util::{Stream, StreamExt};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The request deadline, as app data.
#[derive(Clone, Copy)]
pub struct RequestTimeout(pub Duration);

pub async fn deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let busy = crate::http::connections::busy(&req);
    let has_body = req.headers().contains_key(header::CONTENT_LENGTH)
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let timeout = req.app_data::<RequestTimeout>().map(|t| t.0);
    let request_body = match (has_body, timeout) {
        (true, Some(timeout)) => {
            let inner = Rc::new(RefCell::new(req.take_payload()));
            req.set_payload(Payload::Stream {
                payload: Box::pin(Deadline {
                    inner: inner.clone(),
                    at: Instant::now() + timeout,
                    timer: None,
                    expired: false,
                }),
            });
            Some(inner)
        }
        _ => None,
    };
    let res = next.call(req).await?;
    if let Some(b) = &busy {
        if res.status() != actix_web::http::StatusCode::SWITCHING_PROTOCOLS {
            b.answering();
        }
    }
    Ok(res.map_body(|_, body| Holding {
        body,
        _request_body: request_body,
        _busy: busy,
    }))
}

pin_project_lite::pin_project! {
    /// An answer's body that holds, until it has been written, the request's body (actix
    /// decides whether to drain or close once the answer's last byte is out) and the
    /// connection's busy mark.
    pub struct Holding<B> {
        #[pin]
        body: B,
        _request_body: Option<Rc<RefCell<Payload>>>,
        _busy: Option<crate::http::connections::Busy>,
    }
}

impl<B: MessageBody> MessageBody for Holding<B> {
    type Error = B::Error;

    fn size(&self) -> actix_web::body::BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.project().body.poll_next(cx)
    }
}

struct Deadline {
    inner: Rc<RefCell<Payload>>,
    at: Instant,
    /// Made only when the body does not arrive with the head (the usual small request never
    /// registers a timer).
    timer: Option<Pin<Box<Sleep>>>,
    expired: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = self.inner.borrow_mut().poll_next_unpin(cx) {
            return Poll::Ready(item);
        }
        let at = self.at;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.expired = true;
        Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the request body did not arrive in time",
        )))))
    }
}

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the limit (declared or sent).
    TooLarge(usize),
    /// Not complete within the request deadline.
    TimedOut,
    /// The client broke off or sent a malformed body.
    Broken,
}

impl BodyError {
    /// A message for the client.
    pub fn message(&self) -> String {
        match self {
            BodyError::TooLarge(limit) => format!("body is larger than the limit of {limit} bytes"),
            BodyError::TimedOut => "the request body did not arrive in time".into(),
            BodyError::Broken => "could not read the request body".into(),
        }
    }

    /// The HTTP status that goes with it.
    pub fn status(&self) -> actix_web::http::StatusCode {
        use actix_web::http::StatusCode;
        match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TimedOut => StatusCode::REQUEST_TIMEOUT,
            BodyError::Broken => StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads the whole body, refusing as soon as it passes `limit` bytes. Memory follows what
/// has arrived, never what Content-Length promises.
pub async fn read(
    req: &actix_web::HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge(limit));
    }
    // The usual body arrives in one chunk: keep it as it is, copy only when more follow.
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                BodyError::TimedOut
            }
            _ => BodyError::Broken,
        })?;
        let have = first.as_ref().map_or(0, Bytes::len) + rest.len();
        if have + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        match first.take() {
            None if rest.is_empty() => first = Some(chunk),
            f => {
                if let Some(f) = f {
                    rest.extend_from_slice(&f);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    Ok(match first {
        Some(f) => f,
        None => Bytes::from(rest),
    })
}
