//! Silences: create, update, expire, list; matching with equality, regex and negative matchers;
//! states pending/active/expired by time; persisted in the state db; expired ones are kept for
//! `retention` and then deleted, as Alertmanager.
//!
//! Update follows Alertmanager's rules: a change that does not rewrite what was already silenced
//! (same matchers; for an active silence the same start and an end not in the past; for a
//! pending one a start not in the past) edits the silence in place. Any other change to a silence
//! that has not expired expires it and creates a new one with a new id, so the record of what was
//! muted when stays true. Changing an expired silence always creates a new one.
//!
//! States follow Alertmanager's: pending before the start, active from the start up to and
//! including the end, expired once the clock is past the end. Expiring a silence that has
//! already expired is a successful no-op, as `DELETE /api/v2/silence/{id}` is there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use tocsin_model::{Clock, Labels, MatchOp, Matcher};

use crate::error::{Error, Result};
// A matcher as state.db keeps it, and as replicas share it: the same form both ways.
use crate::ha::ops::SharedMatcher as StoredMatcher;
use crate::state::StateDb;

#[path = "silence_shared.rs"]
mod shared;
pub use shared::shared_op;

/// How long an expired silence is kept before `gc` deletes it (Alertmanager's
/// `--data.retention` default).
pub const DEFAULT_RETENTION_MS: i64 = 120 * 3600 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    /// The name the v2 API uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    /// UUID string; empty when creating.
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub updated_at: i64,
    pub created_by: String,
    pub comment: String,
}

impl Silence {
    /// The state at `now_ms`: pending before the start, active up to and including the end,
    /// expired after it.
    pub fn state_at(&self, now_ms: i64) -> SilenceState {
        if now_ms < self.starts_at {
            SilenceState::Pending
        } else if now_ms >= self.active_until() {
            SilenceState::Expired
        } else {
            SilenceState::Active
        }
    }

    /// The first millisecond at which the silence no longer mutes.
    ///
    /// Alertmanager counts a silence expired only once its clock is past `ends_at`, so one
    /// ending at 12:00:00.000 still mutes at that instant. Its clock has nanoseconds, though:
    /// a silence ended "now" by an expire (or an update setting the end to now) is past its end
    /// for every query that follows. Ours has milliseconds, so a silence whose last change set
    /// its end to that very millisecond is taken to be past it already; otherwise a `DELETE`
    /// followed within the same millisecond by a flush or a `GET` would still see it active.
    fn active_until(&self) -> i64 {
        if self.updated_at >= self.ends_at {
            self.ends_at
        } else {
            self.ends_at.saturating_add(1)
        }
    }

    /// Whether every matcher matches `labels`; a label the set lacks is seen as "".
    pub fn matches(&self, labels: &Labels) -> bool {
        matchers_match(&self.matchers, labels)
    }
}

fn matchers_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
}

pub struct Silences {
    db: StateDb,
    /// Told of every silence written by `upsert` or `expire` (replicas share them), not of
    /// those `merge` takes from elsewhere.
    on_write: std::sync::OnceLock<shared::OnWrite>,
    clock: Arc<dyn Clock>,
    inner: RwLock<Inner>,
    retention_ms: AtomicI64,
    version: AtomicU64,
}

struct Inner {
    by_id: HashMap<String, Silence>,
    index: MuteIndex,
}

impl Silences {
    /// Loads the silences stored in `db` (None: in memory only).
    pub fn new(db: Option<StateDb>, clock: Arc<dyn Clock>) -> Result<Silences> {
        let db = match db {
            Some(db) => db,
            None => StateDb::in_memory()?,
        };
        let by_id = load(&db)?;
        let index = MuteIndex::build(by_id.values(), clock.now_ms());
        Ok(Silences {
            db,
            on_write: std::sync::OnceLock::new(),
            clock,
            inner: RwLock::new(Inner { by_id, index }),
            retention_ms: AtomicI64::new(DEFAULT_RETENTION_MS),
            version: AtomicU64::new(0),
        })
    }

    /// How long expired silences are kept (ms).
    pub fn set_retention(&self, ms: i64) {
        self.retention_ms.store(ms.max(0), Ordering::Relaxed);
    }

    pub fn retention(&self) -> i64 {
        self.retention_ms.load(Ordering::Relaxed)
    }

    /// Bumped on every change, so callers can cache "which silences mute this alert" until the
    /// set changes (the cache must still be re-checked as time passes: silences start and end).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Creates a silence (empty id) or updates one, returning its id. Validation errors are
    /// `Error::BadData` naming the field.
    pub fn upsert(&self, s: Silence) -> Result<String> {
        let mut s = s;
        let now = self.clock.now_ms();
        if s.starts_at == 0 {
            s.starts_at = now;
        }
        // `op` and `value` are public, so a matcher changed after construction may carry a
        // regex that was never compiled (and would match nothing): rebuild every one.
        for (i, m) in s.matchers.iter_mut().enumerate() {
            *m = Matcher::new(m.op, m.name.clone(), m.value.clone())
                .map_err(|e| Error::BadData(format!("matchers[{i}]: {e}")))?;
        }
        validate(&s, now)?;

        let mut inner = self.inner.write();
        let prev = if s.id.is_empty() {
            None
        } else {
            match inner.by_id.get(&s.id) {
                Some(p) => Some(p.clone()),
                None => return Err(Error::NotFound(format!("silence {}", s.id))),
            }
        };

        let mut writes = Vec::with_capacity(2);
        match &prev {
            Some(p) if can_update(p, &s, now) => {
                if p.state_at(now) == SilenceState::Active {
                    // Equal to the second (the API's resolution); keep the stored instant.
                    s.starts_at = p.starts_at;
                }
                s.updated_at = now;
                writes.push(s.clone());
            }
            _ => {
                if let Some(p) = &prev {
                    if p.state_at(now) != SilenceState::Expired {
                        writes.push(expired_copy(p, now));
                    }
                }
                s.id = new_id();
                if s.starts_at < now {
                    s.starts_at = now;
                }
                s.updated_at = now;
                writes.push(s.clone());
            }
        }

        self.db.write_durable(|tx| {
            for w in &writes {
                store(tx, w)?;
            }
            Ok(())
        })?;
        for w in &writes {
            inner.by_id.insert(w.id.clone(), w.clone());
        }
        inner.index = MuteIndex::build(inner.by_id.values(), now);
        self.version.fetch_add(1, Ordering::AcqRel);
        // Outside the lock: sharing may wait on the database.
        drop(inner);
        for w in &writes {
            self.told(w);
        }
        Ok(s.id)
    }

    /// Ends a silence now: an active one gets `ends_at = now`; a pending one never starts
    /// (both times become now). An already expired silence is left as it is and this succeeds,
    /// as in Alertmanager, so a repeated `DELETE` (a client retrying) is not an error; only an
    /// unknown (or collected) id is `NotFound`.
    pub fn expire(&self, id: &str) -> Result<()> {
        let now = self.clock.now_ms();
        let mut inner = self.inner.write();
        let Some(prev) = inner.by_id.get(id) else {
            return Err(Error::NotFound(format!("silence {id}")));
        };
        if prev.state_at(now) == SilenceState::Expired {
            return Ok(());
        }
        let s = expired_copy(prev, now);
        self.db.write_durable(|tx| store(tx, &s))?;
        inner.by_id.insert(s.id.clone(), s.clone());
        inner.index = MuteIndex::build(inner.by_id.values(), now);
        self.version.fetch_add(1, Ordering::AcqRel);
        drop(inner);
        self.told(&s);
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<(Silence, SilenceState)> {
        let now = self.clock.now_ms();
        let inner = self.inner.read();
        inner.by_id.get(id).map(|s| (s.clone(), s.state_at(now)))
    }

    /// All silences with their state at now, newest first (last changed; on a tie, such as a
    /// replacement and the silence it expired, the later start).
    pub fn list(&self) -> Vec<(Silence, SilenceState)> {
        let now = self.clock.now_ms();
        let inner = self.inner.read();
        let mut out: Vec<(Silence, SilenceState)> = inner
            .by_id
            .values()
            .map(|s| (s.clone(), s.state_at(now)))
            .collect();
        out.sort_by(|a, b| {
            b.0.updated_at
                .cmp(&a.0.updated_at)
                .then_with(|| b.0.starts_at.cmp(&a.0.starts_at))
                .then_with(|| a.0.id.cmp(&b.0.id))
        });
        out
    }

    /// Ids of the silences active at `now_ms` that match `labels`.
    pub fn mutes(&self, labels: &Labels, now_ms: i64) -> Vec<String> {
        let inner = self.inner.read();
        let mut ids = inner.index.mutes(labels, now_ms);
        ids.sort_unstable();
        ids
    }

    /// Deletes silences expired for longer than the retention. Returns how many went.
    pub fn gc(&self, now_ms: i64) -> Result<usize> {
        let retention = self.retention();
        let mut inner = self.inner.write();
        let doomed: Vec<String> = inner
            .by_id
            .values()
            .filter(|s| s.ends_at.saturating_add(retention) <= now_ms)
            .map(|s| s.id.clone())
            .collect();
        if !doomed.is_empty() {
            // Losing a delete to a power cut only brings back an expired silence: no need to sync.
            self.db.write(|tx| {
                let mut del = tx.prepare_cached("DELETE FROM silences WHERE id = ?1")?;
                for id in &doomed {
                    del.execute([id])?;
                }
                Ok(())
            })?;
            for id in &doomed {
                inner.by_id.remove(id);
            }
            self.version.fetch_add(1, Ordering::AcqRel);
        }
        // Rebuilt even when nothing was deleted: it drops silences that expired since the
        // last change from the matching path.
        inner.index = MuteIndex::build(inner.by_id.values(), now_ms);
        Ok(doomed.len())
    }
}

/// Whether `b` may replace `a` under the same id without rewriting what `a` already silenced.
fn can_update(a: &Silence, b: &Silence, now: i64) -> bool {
    if a.matchers != b.matchers {
        return false;
    }
    match a.state_at(now) {
        SilenceState::Active => {
            // Clients echo timestamps back at second resolution.
            a.starts_at.div_euclid(1000) == b.starts_at.div_euclid(1000) && b.ends_at >= now
        }
        SilenceState::Pending => b.starts_at >= now,
        SilenceState::Expired => false,
    }
}

fn expired_copy(s: &Silence, now: i64) -> Silence {
    let mut s = s.clone();
    if s.state_at(now) == SilenceState::Pending {
        s.starts_at = now;
    }
    s.ends_at = now;
    s.updated_at = now;
    s
}

fn validate(s: &Silence, now: i64) -> Result<()> {
    let bad = |m: String| Err(Error::BadData(m));
    if s.matchers.is_empty() {
        return bad("matchers: at least one matcher required".into());
    }
    for (i, m) in s.matchers.iter().enumerate() {
        if let Err(e) = tocsin_model::labels::validate_label_name(&m.name) {
            return bad(format!("matchers[{i}]: {e}"));
        }
    }
    if s.matchers.iter().all(Matcher::matches_empty) {
        return bad("matchers: at least one matcher must not match the empty string".into());
    }
    if s.ends_at == 0 {
        return bad("endsAt: required".into());
    }
    if s.ends_at <= s.starts_at {
        return bad("endsAt: start time must be before end time".into());
    }
    if s.ends_at < now {
        return bad("endsAt: end time can't be in the past".into());
    }
    if s.created_by.trim().is_empty() {
        return bad("createdBy: required".into());
    }
    if s.comment.trim().is_empty() {
        return bad("comment: required".into());
    }
    Ok(())
}

/// A random (version 4) UUID in its usual text form.
fn new_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn to_stored(ms: &[Matcher]) -> Vec<StoredMatcher> {
    ms.iter()
        .map(|m| StoredMatcher {
            name: m.name.clone(),
            op: m.op.as_str().to_string(),
            value: m.value.clone(),
        })
        .collect()
}

fn from_stored(stored: Vec<StoredMatcher>) -> std::result::Result<Vec<Matcher>, String> {
    stored
        .into_iter()
        .map(|m| {
            let op = op_from_str(&m.op).ok_or_else(|| format!("unknown matcher op {:?}", m.op))?;
            Matcher::new(op, m.name, m.value).map_err(|e| e.to_string())
        })
        .collect()
}

fn op_from_str(s: &str) -> Option<MatchOp> {
    Some(match s {
        "=" => MatchOp::Equal,
        "!=" => MatchOp::NotEqual,
        "=~" => MatchOp::Regex,
        "!~" => MatchOp::NotRegex,
        _ => return None,
    })
}

fn store(tx: &rusqlite::Transaction<'_>, s: &Silence) -> rusqlite::Result<()> {
    let json = serde_json::to_string(&to_stored(&s.matchers))
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.prepare_cached(
        "INSERT INTO silences (id, matchers, starts_at, ends_at, updated_at, created_by, comment)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (id) DO UPDATE SET matchers = excluded.matchers,
           starts_at = excluded.starts_at, ends_at = excluded.ends_at,
           updated_at = excluded.updated_at, created_by = excluded.created_by,
           comment = excluded.comment",
    )?
    .execute(rusqlite::params![
        s.id,
        json,
        s.starts_at,
        s.ends_at,
        s.updated_at,
        s.created_by,
        s.comment
    ])?;
    Ok(())
}

type Row = (String, String, i64, i64, i64, String, String);

fn load(db: &StateDb) -> Result<HashMap<String, Silence>> {
    let rows: Vec<Row> = db.with_conn(|c| {
        let mut st = c.prepare(
            "SELECT id, matchers, starts_at, ends_at, updated_at, created_by, comment FROM silences",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?;
        rows.collect()
    })?;
    let mut out = HashMap::with_capacity(rows.len());
    for (id, matchers, starts_at, ends_at, updated_at, created_by, comment) in rows {
        match decode_matchers(&matchers) {
            Ok(matchers) => {
                let s = Silence {
                    id: id.clone(),
                    matchers,
                    starts_at,
                    ends_at,
                    updated_at,
                    created_by,
                    comment,
                };
                out.insert(id, s);
            }
            // Refusing to start over one unreadable row would take every other silence down
            // with it; the row stays in the file for inspection.
            Err(e) => {
                tracing::error!(path = db.path(), id, error = %e, "skipping unreadable silence")
            }
        }
    }
    Ok(out)
}

fn decode_matchers(json: &str) -> std::result::Result<Vec<Matcher>, String> {
    from_stored(serde_json::from_str(json).map_err(|e| e.to_string())?)
}

/// The silences that can still mute something, arranged so that `mutes` (run for every alert
/// on every flush) only tests the silences that can possibly match: each silence with an
/// equality matcher on a non-empty value is filed under that (name, value), and only the alert's
/// own label pairs are looked up; the others are tested for every alert.
#[derive(Default)]
struct MuteIndex {
    silences: Vec<Indexed>,
    by_pair: HashMap<String, HashMap<String, Vec<usize>>>,
    unanchored: Vec<usize>,
}

struct Indexed {
    id: String,
    matchers: Vec<Matcher>,
    starts_at: i64,
    /// `Silence::active_until`.
    active_until: i64,
}

impl MuteIndex {
    fn build<'a>(all: impl Iterator<Item = &'a Silence>, now: i64) -> MuteIndex {
        let mut ix = MuteIndex::default();
        for s in all {
            if s.state_at(now) == SilenceState::Expired {
                continue;
            }
            let pos = ix.silences.len();
            let anchor = s
                .matchers
                .iter()
                .find(|m| m.op == MatchOp::Equal && !m.value.is_empty());
            match anchor {
                Some(m) => ix
                    .by_pair
                    .entry(m.name.clone())
                    .or_default()
                    .entry(m.value.clone())
                    .or_default()
                    .push(pos),
                None => ix.unanchored.push(pos),
            }
            ix.silences.push(Indexed {
                id: s.id.clone(),
                matchers: s.matchers.clone(),
                starts_at: s.starts_at,
                active_until: s.active_until(),
            });
        }
        ix
    }

    fn mutes(&self, labels: &Labels, now: i64) -> Vec<String> {
        let mut out = Vec::new();
        let mut test = |pos: usize| {
            if let Some(s) = self.silences.get(pos) {
                if s.starts_at <= now && now < s.active_until && matchers_match(&s.matchers, labels)
                {
                    out.push(s.id.clone());
                }
            }
        };
        for &pos in &self.unanchored {
            test(pos);
        }
        if !self.by_pair.is_empty() {
            for l in labels.iter() {
                if let Some(list) = self.by_pair.get(&l.name).and_then(|v| v.get(&l.value)) {
                    for &pos in list {
                        test(pos);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "silence_tests.rs"]
mod tests;
