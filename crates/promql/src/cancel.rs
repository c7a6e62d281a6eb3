//! Stopping a query that has run long enough: its deadline and a cancellation flag the caller can
//! raise (on timeout, or when its client goes away), both checked cooperatively by the
//! evaluator's loops; and the count of queries being evaluated, so the stop is observable.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::{Error, Result};

/// A flag that stops the queries it was given to at their next check.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_canceled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// A guard that raises the flag when dropped: held by whoever waits for the query, so a
    /// request dropped half-way (its client disconnected) stops its evaluation too.
    pub fn on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(self.clone())
    }
}

/// See [`Cancel::on_drop`].
#[derive(Debug)]
pub struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A query's deadline and cancellation flag.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    deadline: Instant,
    cancel: Option<Cancel>,
}

impl Stop {
    pub fn new(deadline: Instant, cancel: Option<Cancel>) -> Self {
        Stop { deadline, cancel }
    }

    pub fn check(&self) -> Result<()> {
        if self.cancel.as_ref().is_some_and(Cancel::is_canceled) {
            return Err(Error::Canceled);
        }
        if Instant::now() > self.deadline {
            return Err(Error::Timeout("query execution"));
        }
        Ok(())
    }

    /// A counter for inner loops that checks only every so much work, keeping the check's cost
    /// (a clock read) out of the per-sample path.
    pub fn ticker(&self) -> Ticker<'_> {
        Ticker {
            stop: self,
            work: 0,
        }
    }
}

/// Work between two checks: about a millisecond of the cheapest loops.
const TICK_WORK: usize = 1 << 16;

pub(crate) struct Ticker<'a> {
    stop: &'a Stop,
    work: usize,
}

impl Ticker<'_> {
    /// Counts `n` units of work (samples or steps) and checks once enough has accumulated.
    #[inline]
    pub fn tick(&mut self, n: usize) -> Result<()> {
        self.work += n + 1;
        if self.work >= TICK_WORK {
            self.work = 0;
            return self.stop.check();
        }
        Ok(())
    }
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Queries being parsed or evaluated in this process right now.
pub fn running_queries() -> usize {
    RUNNING.load(Ordering::Relaxed)
}

/// Counts a query as running for as long as it lives.
pub(crate) struct Running(());

impl Running {
    pub fn enter() -> Running {
        RUNNING.fetch_add(1, Ordering::Relaxed);
        Running(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}
