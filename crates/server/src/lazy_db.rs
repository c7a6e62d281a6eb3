//! The database as the rest of the server sees it while it may still be opening: every seam
//! (append, query, delete, stats, admin) answers "unavailable" (503) until WAL replay is done,
//! then goes to the open `Db`.

use std::sync::{Arc, OnceLock};

use tocsin_api::prom::{HeadStatus, TsdbStatsView, TsdbStatus};
use tocsin_storage::{Appendable, Appender, Querier, Queryable};
use tocsin_tsdb::Db;

/// Appends go to the database once it is open; before that they fail as unavailable (503).
pub(crate) struct LazyDb(pub(crate) Arc<OnceLock<Db>>);

struct Unready;

impl Appender for Unready {
    fn append(
        &mut self,
        _: &tocsin_model::Labels,
        _: i64,
        _: f64,
        _: &tocsin_storage::AppendOptions,
    ) -> tocsin_storage::Result<u64> {
        Err(tocsin_storage::Error::Unavailable(
            "storage is not ready yet (WAL replay in progress)".into(),
        ))
    }
    fn append_pairs(&mut self, _: &[(&str, &str)], _: i64, _: f64) -> tocsin_storage::Result<u64> {
        Err(tocsin_storage::Error::Unavailable(
            "storage is not ready yet (WAL replay in progress)".into(),
        ))
    }
    fn commit(self: Box<Self>) -> tocsin_storage::Result<tocsin_storage::CommitStats> {
        Err(tocsin_storage::Error::Unavailable(
            "storage is not ready yet (WAL replay in progress)".into(),
        ))
    }
    fn rollback(self: Box<Self>) {}
}

impl tocsin_storage::Deletable for LazyDb {
    fn delete(
        &self,
        mint: i64,
        maxt: i64,
        ms: &[tocsin_model::Matcher],
    ) -> tocsin_storage::Result<u64> {
        match self.0.get() {
            Some(db) => tocsin_storage::Deletable::delete(db, mint, maxt, ms),
            None => Err(tocsin_storage::Error::Unavailable(
                "storage is not ready yet (WAL replay in progress)".into(),
            )),
        }
    }
}

fn not_ready() -> tocsin_storage::Error {
    tocsin_storage::Error::Unavailable("storage is not ready yet (WAL replay in progress)".into())
}

impl Queryable for LazyDb {
    fn querier(&self, mint: i64, maxt: i64) -> tocsin_storage::Result<Box<dyn Querier>> {
        match self.0.get() {
            Some(db) => db.querier(mint, maxt),
            None => Err(not_ready()),
        }
    }
}

impl TsdbStatsView for LazyDb {
    fn tsdb_status(&self, limit: usize) -> tocsin_storage::Result<TsdbStatus> {
        let db = self.0.get().ok_or_else(not_ready)?;
        let head = db.head();
        let hs = head.stats();
        let ps = head.postings_stats(limit);
        Ok(TsdbStatus {
            head: HeadStatus {
                num_series: hs.series,
                num_label_pairs: ps.num_label_pairs,
                chunk_count: hs.chunks_in_memory + hs.chunks_spilled,
                min_time: hs.min_time,
                max_time: hs.max_time,
            },
            series_count_by_metric_name: ps.series_count_by_metric_name,
            label_value_count_by_label_name: ps.label_value_count_by_label_name,
            memory_in_bytes_by_label_name: ps.memory_in_bytes_by_label_name,
            series_count_by_label_value_pair: ps.series_count_by_label_value_pair,
            series_created_per_hour: head.series_created_per_hour(),
        })
    }
}

impl Appendable for LazyDb {
    fn appender(&self) -> Box<dyn Appender + '_> {
        match self.0.get() {
            Some(db) => db.appender(),
            None => Box::new(Unready),
        }
    }
}

impl tocsin_api::admin::TsdbAdmin for LazyDb {
    fn snapshot(&self, skip_head: bool) -> tocsin_storage::Result<String> {
        let db = self.0.get().ok_or_else(not_ready)?;
        db.snapshot(skip_head).map_err(tocsin_storage::Error::from)
    }

    fn clean_tombstones(&self) -> tocsin_storage::Result<()> {
        let db = self.0.get().ok_or_else(not_ready)?;
        db.clean_tombstones().map_err(tocsin_storage::Error::from)
    }
}
