//! Alert change events for live consoles: the manager publishes a small event (fingerprint, kind,
//! time) on a broadcast channel whenever an alert starts firing, resolves, changes, or is muted
//! or unmuted by a silence; subscribers (the `GET /api/v1/events` stream) refetch what changed.
//!
//! Publishing never waits: a subscriber that falls behind by more than the channel's capacity
//! loses the oldest events and is told so (`Lagged`), so it can refetch everything instead. The
//! bus is closed at shutdown, which ends every subscription, so open streams do not hold up the
//! HTTP server's graceful stop.

use tokio::sync::{broadcast, watch};

/// Events kept for a slow subscriber before it is told it lagged. Large enough for a burst of a
/// few thousand alerts in one post; a bigger burst makes consoles refetch, which is what they
/// would do anyway.
pub const CAPACITY: usize = 4096;

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// New, or firing again after it resolved.
    Firing,
    Resolved,
    /// Still firing, with other annotations or generator URL.
    Updated,
    /// A silence that matches it was created or changed.
    Silenced,
    /// A silence that matched it expired or was changed not to match.
    Unsilenced,
    Acknowledged,
    Unacknowledged,
    Shelved,
    Unshelved,
    /// A note was added to it.
    Noted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Firing => "firing",
            EventKind::Resolved => "resolved",
            EventKind::Updated => "updated",
            EventKind::Silenced => "silenced",
            EventKind::Unsilenced => "unsilenced",
            EventKind::Acknowledged => "acknowledged",
            EventKind::Unacknowledged => "unacknowledged",
            EventKind::Shelved => "shelved",
            EventKind::Unshelved => "unshelved",
            EventKind::Noted => "noted",
        }
    }
}

/// One change to one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertEvent {
    pub fingerprint: u64,
    pub kind: EventKind,
    /// When it was published (ms).
    pub at_ms: i64,
}

/// The publishing side; cheap to clone (every clone publishes on the same channel).
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<AlertEvent>,
    closed: watch::Sender<bool>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(CAPACITY)
    }
}

impl EventBus {
    pub fn new(capacity: usize) -> EventBus {
        let (tx, _) = broadcast::channel(capacity.max(1));
        let (closed, _) = watch::channel(false);
        EventBus { tx, closed }
    }

    /// Sends to every current subscriber; with none, the events are dropped at once.
    pub fn publish(&self, events: impl IntoIterator<Item = AlertEvent>) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        for e in events {
            // Err only when the last subscriber left meanwhile: nobody to tell.
            let _ = self.tx.send(e);
        }
    }

    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
            closed: self.closed.subscribe(),
        }
    }

    /// Ends every subscription, now and later (shutdown).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// What a subscriber receives next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    Event(AlertEvent),
    /// This many events were lost: refetch everything.
    Lagged(u64),
    /// The bus closed (shutdown): end the stream.
    Closed,
}

pub struct Subscription {
    rx: broadcast::Receiver<AlertEvent>,
    closed: watch::Receiver<bool>,
}

impl Subscription {
    pub async fn recv(&mut self) -> Received {
        if *self.closed.borrow() {
            return Received::Closed;
        }
        tokio::select! {
            r = self.rx.recv() => match r {
                Ok(e) => Received::Event(e),
                Err(broadcast::error::RecvError::Lagged(n)) => Received::Lagged(n),
                Err(broadcast::error::RecvError::Closed) => Received::Closed,
            },
            // Err means the bus itself is gone: closed as well.
            _ = self.closed.wait_for(|c| *c) => Received::Closed,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ev(fp: u64) -> AlertEvent {
        AlertEvent {
            fingerprint: fp,
            kind: EventKind::Firing,
            at_ms: 1,
        }
    }

    #[tokio::test]
    async fn subscribers_receive_in_order_and_lag_is_reported() {
        let bus = EventBus::new(2);
        let mut s = bus.subscribe();
        bus.publish([ev(1)]);
        assert_eq!(s.recv().await, Received::Event(ev(1)));
        bus.publish([ev(2), ev(3), ev(4)]);
        assert_eq!(s.recv().await, Received::Lagged(1));
        assert_eq!(s.recv().await, Received::Event(ev(3)));
        assert_eq!(s.recv().await, Received::Event(ev(4)));
    }

    #[tokio::test]
    async fn close_ends_waiting_and_later_subscriptions() {
        let bus = EventBus::default();
        let mut s = bus.subscribe();
        let waiting = tokio::spawn(async move { s.recv().await });
        tokio::task::yield_now().await;
        bus.close();
        assert_eq!(waiting.await.unwrap(), Received::Closed);
        let mut later = bus.subscribe();
        assert_eq!(later.recv().await, Received::Closed);
    }

    #[test]
    fn publishing_without_subscribers_is_a_no_op() {
        let bus = EventBus::default();
        bus.publish([ev(1)]);
        assert_eq!(bus.subscribers(), 0);
    }
}
