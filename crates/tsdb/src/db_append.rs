//! Appending to the database: the appender behind `Appendable for Db`, which puts samples in the
//! head as they arrive and makes them durable in the WAL at commit, and the series references it
//! hands out.

use super::*;

/// Samples become visible in the head as they are appended (one stripe lock per sample, the
/// series touched once) and durable at `commit`, which writes them to the WAL and hands them to
/// the OS before returning; only then may a caller acknowledge them. `rollback` cannot take back
/// what is already in the head: it only skips the WAL write, so those samples vanish at restart.
/// Writers validate whole requests before appending, so rollback happens only on internal errors.
struct DbAppender<'a> {
    db: &'a Db,
    samples: Vec<RefSample>,
    stats: CommitStats,
}

impl DbAppender<'_> {
    fn reject(&mut self, r: Reject, t: i64) {
        match r {
            Reject::OutOfOrder => self.stats.rejected_out_of_order += 1,
            Reject::TooOld => self.stats.rejected_too_old += 1,
            Reject::Duplicate => self.stats.rejected_duplicate += 1,
        }
        if self.stats.first_rejection.is_none() {
            self.stats.first_rejection = Some(rejection_message(r, t));
        }
    }
}

/// A series reference handed to appenders' callers: the head slot (plus one, so 0 means none)
/// and the low 32 bits of the series id, which tell a reused slot apart. A false match needs a
/// caller to keep a reference across the removal of its series and 2^32 series creations.
fn pack_ref(slot: u32, id: u64) -> SeriesRef {
    ((slot as u64 + 1) << 32) | (id & 0xffff_ffff)
}

fn unpack_ref(r: SeriesRef) -> Option<(u32, u32)> {
    let hi = r >> 32;
    if hi == 0 {
        return None;
    }
    Some(((hi - 1) as u32, r as u32))
}

impl Appender for DbAppender<'_> {
    fn append(
        &mut self,
        labels: &Labels,
        t: i64,
        v: f64,
        _opts: &AppendOptions,
    ) -> tocsin_storage::Result<SeriesRef> {
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        self.append_pairs(&pairs, t, v)
    }

    /// Per-sample rejections are counted in the commit stats rather than returned, so one call
    /// per sample stays cheap; only a sample older than the persisted range errors here, matching
    /// what a caller can know without the series.
    fn append_pairs(
        &mut self,
        pairs: &[(&str, &str)],
        t: i64,
        v: f64,
    ) -> tocsin_storage::Result<SeriesRef> {
        let (created, slot, res) = self.db.inner.head.append(pairs, t, v);
        if created {
            self.stats.series_created += 1;
        }
        match res {
            Ok(Some(a)) => {
                self.samples.push(RefSample {
                    r: a.id,
                    t: a.t,
                    v: a.v,
                });
                Ok(pack_ref(slot, a.id))
            }
            Ok(None) => Ok(0),
            Err(r) => {
                self.reject(r, t);
                Ok(0)
            }
        }
    }

    fn append_ref(&mut self, r: SeriesRef, t: i64, v: f64) -> tocsin_storage::Result<bool> {
        let Some((slot, id_low)) = unpack_ref(r) else {
            return Ok(false);
        };
        match self.db.inner.head.append_slot(slot, id_low, t, v) {
            None => Ok(false),
            Some(Ok(Some(a))) => {
                self.samples.push(RefSample {
                    r: a.id,
                    t: a.t,
                    v: a.v,
                });
                Ok(true)
            }
            Some(Ok(None)) => Ok(true),
            Some(Err(rej)) => {
                self.reject(rej, t);
                Ok(true)
            }
        }
    }

    fn commit(self: Box<Self>) -> tocsin_storage::Result<CommitStats> {
        let inner = &self.db.inner;
        let mut st = self.stats;
        let mut g = inner.wal.lock();
        let Some(w) = g.as_mut() else {
            return Err(tocsin_storage::Error::Unavailable(
                "the database is closed or read-only".into(),
            ));
        };
        let series: Vec<RefSeries> = inner
            .head
            .take_unlogged()
            .into_iter()
            .map(|(r, labels)| RefSeries { r, labels })
            .collect();
        if !series.is_empty() {
            w.log_series(&series)?;
        }
        if !self.samples.is_empty() {
            w.log_samples(&self.samples)?;
        }
        w.flush()?;
        drop(g);
        st.samples = self.samples.len() as u64;
        let m = &inner.metrics;
        m.samples_appended.fetch_add(st.samples, Ordering::Relaxed);
        m.rejected_out_of_order
            .fetch_add(st.rejected_out_of_order, Ordering::Relaxed);
        m.rejected_too_old
            .fetch_add(st.rejected_too_old, Ordering::Relaxed);
        m.rejected_duplicate
            .fetch_add(st.rejected_duplicate, Ordering::Relaxed);
        Ok(st)
    }

    fn rollback(self: Box<Self>) {}
}

fn rejection_message(r: Reject, t: i64) -> String {
    match r {
        Reject::OutOfOrder => {
            format!("out of order sample at {t}: older than the newest sample of its series")
        }
        Reject::TooOld => format!(
            "sample at {t} is too old: outside the out-of-order window or already persisted"
        ),
        Reject::Duplicate => format!("duplicate sample at {t} with a different value"),
    }
}

impl Appendable for Db {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(DbAppender {
            db: self,
            samples: Vec::new(),
            stats: CommitStats::default(),
        })
    }
}
