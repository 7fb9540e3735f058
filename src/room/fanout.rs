//! A room's realtime subscribers and the coalescing of what they are sent. Every event is
//! serialized once and shared (a refcounted `ByteString`, handed to the socket as is) by
//! all subscribers; each subscriber has a bounded queue, and one that is full is dropped
//! rather than buffered without bound. Frames are queued with the time they were queued,
//! so a connection can also tell how long its oldest one has waited.

use crate::model::MemberInfo;
use serde_json::json;
use std::collections::HashMap;
use std::time::Instant;
use tokio::sync::mpsc;

pub type Frame = bytestring::ByteString;

/// A frame in a subscriber's queue and when the room queued it.
pub struct Queued {
    pub at: Instant,
    pub frame: Frame,
}

impl Queued {
    pub fn now(frame: Frame) -> Self {
        Queued {
            at: Instant::now(),
            frame,
        }
    }
}

/// Most member changes reported in one batch; beyond it the batch says `truncated` and
/// clients rely on the counts (a burst of thousands of entries is not a list to render).
const MAX_BATCH: usize = 200;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Enter,
    Quit,
}

#[derive(Default)]
pub struct Fanout {
    /// By connection id: leaving is O(1) even when thousands leave at once.
    subs: HashMap<u64, mpsc::Sender<Queued>>,
    ops: Vec<(Op, MemberInfo)>,
    truncated: bool,
    count_dirty: bool,
    /// A flush is scheduled for the end of the current coalescing window.
    pub scheduled: bool,
}

/// Why a subscriber left.
#[derive(Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Its queue was full: it cannot keep up.
    Slow(u64),
    Gone(u64),
}

impl Fanout {
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// Forgets subscribers whose receiving end is gone without unsubscribing (a connection
    /// dropped between subscribing and taking its first frame): a quiet room would
    /// otherwise never notice, and never go idle.
    pub fn forget_closed(&mut self) {
        self.subs.retain(|_, tx| !tx.is_closed());
    }

    pub fn subscribe(&mut self, id: u64, tx: mpsc::Sender<Queued>, snapshot: Frame) {
        // The queue is new and empty: the snapshot always fits.
        if tx.try_send(Queued::now(snapshot)).is_ok() {
            self.subs.insert(id, tx);
        }
    }

    pub fn unsubscribe(&mut self, id: u64) {
        self.subs.remove(&id);
    }

    /// Sends one frame to every subscriber; returns those dropped.
    pub fn send(&mut self, frame: &Frame) -> Vec<Dropped> {
        let mut dropped = Vec::new();
        let at = Instant::now();
        self.subs.retain(|id, tx| {
            match tx.try_send(Queued {
                at,
                frame: frame.clone(),
            }) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    dropped.push(Dropped::Slow(*id));
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    dropped.push(Dropped::Gone(*id));
                    false
                }
            }
        });
        dropped
    }

    /// Sends a last frame and lets every subscriber go.
    pub fn close_all(&mut self, frame: &Frame) {
        self.send(frame);
        self.subs.clear();
        self.ops.clear();
        self.count_dirty = false;
    }

    /// A member entered. Nothing is copied unless someone is subscribed.
    pub fn note_enter(&mut self, userid: &str, nickname: &str, headpic: &str) {
        self.note(Op::Enter, || MemberInfo {
            userid: userid.into(),
            nickname: nickname.into(),
            headpic: headpic.into(),
        });
    }

    pub fn note_quit(&mut self, userid: &str) {
        self.note(Op::Quit, || MemberInfo {
            userid: userid.into(),
            nickname: String::new(),
            headpic: String::new(),
        });
    }

    fn note(&mut self, op: Op, m: impl FnOnce() -> MemberInfo) {
        self.count_dirty = true;
        if self.subs.is_empty() {
            return;
        }
        if self.ops.len() < MAX_BATCH {
            self.ops.push((op, m()));
        } else {
            self.truncated = true;
        }
    }

    pub fn note_count(&mut self) {
        self.count_dirty = true;
    }

    /// Whether anything is waiting for the end of the window.
    pub fn pending(&self) -> bool {
        !self.subs.is_empty() && (self.count_dirty || !self.ops.is_empty())
    }

    /// The window's events, in order: runs of member_enter / member_quit, then one count.
    pub fn take_events(&mut self, viewercount: u64, likecount: u64) -> Vec<Frame> {
        let mut out = Vec::new();
        let ops = std::mem::take(&mut self.ops);
        let truncated = std::mem::take(&mut self.truncated);
        let mut i = 0;
        while i < ops.len() {
            let op = ops[i].0;
            let mut run = Vec::new();
            while i < ops.len() && ops[i].0 == op {
                let m = &ops[i].1;
                run.push(match op {
                    Op::Enter => {
                        json!({"userid": m.userid, "nickname": m.nickname, "headpic": m.headpic})
                    }
                    Op::Quit => json!({"userid": m.userid}),
                });
                i += 1;
            }
            let event = if op == Op::Enter {
                "member_enter"
            } else {
                "member_quit"
            };
            let last = i == ops.len();
            out.push(
                json!({"event": event, "members": run, "truncated": truncated && last})
                    .to_string()
                    .into(),
            );
        }
        if std::mem::take(&mut self.count_dirty) {
            out.push(count_frame(viewercount, likecount));
        }
        out
    }
}

pub fn count_frame(viewercount: u64, likecount: u64) -> Frame {
    format!(r#"{{"event":"count","viewercount":{viewercount},"likecount":{likecount}}}"#).into()
}

pub fn status_frame(online: bool) -> Frame {
    format!(
        r#"{{"event":"status","status":"{}"}}"#,
        if online { 1 } else { 0 }
    )
    .into()
}

pub fn closed_frame(reason: &str) -> Frame {
    json!({"event": "closed", "reason": reason})
        .to_string()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_keep_order_and_a_full_queue_drops_the_subscriber() {
        let mut f = Fanout::default();
        let (tx, mut rx) = mpsc::channel(2);
        f.subscribe(1, tx, "snap".into());
        f.note_enter("a", "n", "");
        f.note_enter("b", "n", "");
        f.note_quit("a");
        f.note_count();
        let ev = f.take_events(1, 5);
        assert_eq!(ev.len(), 3);
        assert!(ev[0].contains("member_enter") && ev[0].contains("\"b\""));
        assert!(ev[1].contains("member_quit"));
        assert_eq!(
            &*ev[2],
            r#"{"event":"count","viewercount":1,"likecount":5}"#
        );
        assert_eq!(&*rx.recv().await.unwrap().frame, "snap");
        assert!(f.send(&ev[0]).is_empty());
        assert!(f.send(&ev[1]).is_empty());
        assert_eq!(f.send(&ev[2]), vec![Dropped::Slow(1)]);
        assert!(f.is_empty());
    }
}
