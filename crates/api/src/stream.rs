//! `GET /metrics/stream` (SPEC §7): one Server-Sent Events body per client, fed from the
//! ring. Each sample's event bytes were encoded once on the probe thread; a client's body
//! only clones them (a reference count) as hyper asks for its next frame, so a slow client
//! holds nothing back but itself: hyper stops asking while its socket is full, the body
//! skips what it missed (with a `lag` event) once it asks again, and the 30 s write-stall
//! rule closes a client that takes nothing at all.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use sampler::{Resume, Ring};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::ReusableBoxFuture;

use crate::AppState;

/// What a new stream starts with: how long a browser waits before reconnecting.
const RETRY: &[u8] = b"retry: 5000\n\n";
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";
/// A comment line goes out after this long without any output.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(15);
/// A client behind by at most this many samples gets each of them; further behind, it
/// gets the freshest and a `lag` event.
const CATCH_UP: u64 = 8;

/// Why a stream's wait ended.
enum Wake {
    /// A sample was published.
    Published,
    /// The server is shutting down.
    Closing,
}

type Published = watch::Receiver<()>;
type Waited = (Published, watch::Receiver<bool>, Wake);

async fn next_wake(mut published: Published, mut closing: watch::Receiver<bool>) -> Waited {
    let wake = tokio::select! {
        biased;
        _ = closing.wait_for(|c| *c) => Wake::Closing,
        changed = published.changed() => match changed {
            Ok(()) => Wake::Published,
            // The relay is gone: nothing more will come.
            Err(_) => Wake::Closing,
        },
    };
    (published, closing, wake)
}

/// Passes each publish on to the streams: the engine's probe thread then wakes this one
/// task, and the thousands of stream wake-ups happen on the runtime's threads. While no
/// stream is open it sleeps (an idle service wakes no HTTP worker). Ends at shutdown or
/// when the engine is gone.
pub(crate) async fn relay(state: AppState) {
    let mut latest = state.latest.clone();
    let mut closing = state.closing.clone();
    let streams = state.published_tx();
    loop {
        if state.streams.open() == 0 {
            tokio::select! {
                biased;
                _ = closing.wait_for(|c| *c) => return,
                () = state.stream_opened.notified() => {}
            }
            continue;
        }
        tokio::select! {
            biased;
            _ = closing.wait_for(|c| *c) => return,
            changed = latest.changed() => {
                if changed.is_err() {
                    return;
                }
                streams.send_replace(());
            }
        }
    }
}

/// One client's stream.
pub(crate) struct EventStream {
    ring: Arc<Ring>,
    waiting: ReusableBoxFuture<'static, Waited>,
    pending: VecDeque<Bytes>,
    /// The ring position of the next sample to send.
    next: u64,
    heartbeat: Pin<Box<Sleep>>,
    ended: bool,
    /// Held for as long as the stream lives: dropping the body frees the slot.
    _slot: OwnedSemaphorePermit,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("next", &self.next)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// Why no stream could be opened.
pub(crate) enum Refused {
    /// Every slot is taken.
    Full,
}

/// Where a stream resumes (SPEC §7): the `Last-Event-ID` header, else the
/// `last_event_id` query parameter (for clients that cannot set headers); `Err` is the
/// 400's message.
pub(crate) fn resume_point(
    header: Option<&[u8]>,
    query: Option<&str>,
) -> Result<Option<i64>, String> {
    let header = header
        .map(|v| String::from_utf8_lossy(v).trim().to_owned())
        .filter(|v| !v.is_empty());
    let (given, from) = match header {
        Some(v) => (Some(v), "the Last-Event-ID header"),
        None => (
            crate::history::parameter(query, "last_event_id").filter(|v| !v.is_empty()),
            "last_event_id",
        ),
    };
    match given {
        None => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            format!(
                "{from} {} is not an event id (Unix milliseconds)",
                crate::history::quoted(&v)
            )
        }),
    }
}

/// The 503's message when every stream slot is taken.
pub(crate) fn full_message(state: &AppState) -> String {
    format!(
        "{} streams are open, the most this server serves at once (METRICS_MAX_STREAMS); retry later",
        state.streams.max
    )
}

/// `Retry-After` of that 503: one live interval, in whole seconds.
pub(crate) fn retry_after_seconds(state: &AppState) -> u64 {
    state.live_interval.as_secs_f64().ceil().max(1.0) as u64
}

fn control(event: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// Opens a stream: its first frames (the retry line, then the latest sample, or the
/// samples after `resume_from` with a `reset` first if that id is older than memory).
pub(crate) fn open(
    state: &AppState,
    ring: &Arc<Ring>,
    resume_from: Option<i64>,
) -> Result<EventStream, Refused> {
    let slot = Arc::clone(&state.streams.slots)
        .try_acquire_owned()
        .map_err(|_| Refused::Full)?;
    state.stream_opened.notify_one();
    // Marked seen before the ring is read: a sample published from here on wakes the
    // stream, and positions keep it from being sent twice.
    let mut published = state.published.clone();
    published.borrow_and_update();
    let mut pending = VecDeque::with_capacity(4);
    pending.push_back(Bytes::from_static(RETRY));
    let next = match resume_from {
        Some(id) => {
            let mut held = VecDeque::new();
            let (outcome, next) = ring.resume(id, &mut held);
            if let Resume::Reset { oldest } = outcome {
                let oldest = oldest.map_or_else(|| "null".to_owned(), |o| o.to_string());
                pending.push_back(control("reset", &format!("{{\"oldest\":{oldest}}}")));
            }
            pending.extend(held);
            next
        }
        None => match ring.latest() {
            Some((event, next)) => {
                pending.push_back(event);
                next
            }
            None => ring.next_position(),
        },
    };
    Ok(EventStream {
        ring: Arc::clone(ring),
        waiting: ReusableBoxFuture::new(next_wake(published, state.closing.clone())),
        pending,
        next,
        heartbeat: Box::pin(tokio::time::sleep(HEARTBEAT)),
        ended: false,
        _slot: slot,
    })
}

impl Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            if let Some(bytes) = this.pending.pop_front() {
                if this.pending.is_empty() && this.pending.capacity() > 16 {
                    // A resume's backlog is sent: an idle stream keeps no big buffer.
                    this.pending.shrink_to(4);
                }
                this.heartbeat.as_mut().reset(Instant::now() + HEARTBEAT);
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            if let Poll::Ready((published, closing, wake)) = this.waiting.poll(cx) {
                match wake {
                    Wake::Closing => {
                        this.ended = true;
                        return Poll::Ready(None);
                    }
                    Wake::Published => {
                        let caught = this.ring.since(this.next, CATCH_UP, &mut this.pending);
                        if caught.dropped > 0 {
                            let lag =
                                control("lag", &format!("{{\"dropped\":{}}}", caught.dropped));
                            this.pending.push_front(lag);
                        }
                        this.next = caught.next;
                        this.waiting.set(next_wake(published, closing));
                        continue;
                    }
                }
            }
            if this.heartbeat.as_mut().poll(cx).is_ready() {
                this.pending.push_back(Bytes::from_static(KEEP_ALIVE));
                continue;
            }
            return Poll::Pending;
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests;
