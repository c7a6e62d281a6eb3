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
use serde::{Deserialize, Serialize};
use tocsin_model::{Clock, Labels, MatchOp, Matcher};

use crate::error::{Error, Result};
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

#[derive(Serialize, Deserialize)]
struct StoredMatcher {
    name: String,
    op: String,
    value: String,
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
    let matchers: Vec<StoredMatcher> = s
        .matchers
        .iter()
        .map(|m| StoredMatcher {
            name: m.name.clone(),
            op: m.op.as_str().to_string(),
            value: m.value.clone(),
        })
        .collect();
    let json = serde_json::to_string(&matchers)
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
    let stored: Vec<StoredMatcher> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    stored
        .into_iter()
        .map(|m| {
            let op = op_from_str(&m.op).ok_or_else(|| format!("unknown matcher op {:?}", m.op))?;
            Matcher::new(op, m.name, m.value).map_err(|e| e.to_string())
        })
        .collect()
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
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tocsin_model::ManualClock;

    const MIN: i64 = 60_000;
    const T0: i64 = 1_700_000_000_000;

    fn setup() -> (Silences, ManualClock) {
        let clock = ManualClock::new(T0);
        let s = Silences::new(None, Arc::new(clock.clone())).unwrap();
        (s, clock)
    }

    fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
        Matcher::new(op, name, value).unwrap()
    }

    fn sil(matchers: Vec<Matcher>, starts_at: i64, ends_at: i64) -> Silence {
        Silence {
            id: String::new(),
            matchers,
            starts_at,
            ends_at,
            updated_at: 0,
            created_by: "alice".into(),
            comment: "maintenance".into(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs)
    }

    fn bad(r: Result<String>) -> String {
        match r {
            Err(Error::BadData(m)) => m,
            other => panic!("expected BadData, got {other:?}"),
        }
    }

    #[test]
    fn create_assigns_uuid_and_clamps_past_start() {
        let (s, _c) = setup();
        let id = s
            .upsert(sil(
                vec![m(MatchOp::Equal, "job", "x")],
                T0 - 10 * MIN,
                T0 + 10 * MIN,
            ))
            .unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4", "version nibble");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "variant");
        let (got, st) = s.get(&id).unwrap();
        assert_eq!(got.starts_at, T0);
        assert_eq!(got.updated_at, T0);
        assert_eq!(st, SilenceState::Active);
        let zero_start = s
            .upsert(sil(vec![m(MatchOp::Equal, "job", "x")], 0, T0 + MIN))
            .unwrap();
        assert_eq!(s.get(&zero_start).unwrap().0.starts_at, T0);
        assert_ne!(id, zero_start);
    }

    #[test]
    fn states_follow_the_clock() {
        let (s, c) = setup();
        let id = s
            .upsert(sil(
                vec![m(MatchOp::Equal, "a", "b")],
                T0 + MIN,
                T0 + 2 * MIN,
            ))
            .unwrap();
        assert_eq!(s.get(&id).unwrap().1, SilenceState::Pending);
        c.set(T0 + MIN);
        assert_eq!(s.get(&id).unwrap().1, SilenceState::Active);
        c.set(T0 + 2 * MIN - 1);
        assert_eq!(s.get(&id).unwrap().1, SilenceState::Active);
        // Alertmanager: expired only once past the end; at the end itself it still mutes.
        c.set(T0 + 2 * MIN);
        assert_eq!(s.get(&id).unwrap().1, SilenceState::Active);
        assert_eq!(
            s.mutes(&labels(&[("a", "b")]), T0 + 2 * MIN),
            vec![id.clone()]
        );
        c.set(T0 + 2 * MIN + 1);
        assert_eq!(s.get(&id).unwrap().1, SilenceState::Expired);
        assert!(s.mutes(&labels(&[("a", "b")]), T0 + 2 * MIN + 1).is_empty());
        assert_eq!(s.gc(T0 + 2 * MIN + 1).unwrap(), 0, "kept for the retention");
        assert!(s.mutes(&labels(&[("a", "b")]), T0 + 2 * MIN + 1).is_empty());
    }

    #[test]
    fn compatible_update_of_active_silence_keeps_id() {
        let (s, c) = setup();
        let ms = vec![m(MatchOp::Equal, "a", "b")];
        let id = s.upsert(sil(ms.clone(), T0, T0 + 10 * MIN)).unwrap();
        c.advance(MIN);
        let mut upd = sil(ms, T0 + 400, T0 + 20 * MIN); // same second as stored start
        upd.id = id.clone();
        upd.comment = "longer".into();
        assert_eq!(s.upsert(upd).unwrap(), id);
        let (got, st) = s.get(&id).unwrap();
        assert_eq!(st, SilenceState::Active);
        assert_eq!(got.starts_at, T0);
        assert_eq!(got.ends_at, T0 + 20 * MIN);
        assert_eq!(got.comment, "longer");
        assert_eq!(got.updated_at, T0 + MIN);
        assert_eq!(s.list().len(), 1);
    }

    #[test]
    fn changing_matchers_of_active_silence_expires_it_and_creates_new() {
        let (s, c) = setup();
        let id = s
            .upsert(sil(vec![m(MatchOp::Equal, "a", "b")], T0, T0 + 10 * MIN))
            .unwrap();
        c.advance(MIN);
        let mut upd = sil(vec![m(MatchOp::Equal, "a", "c")], T0, T0 + 10 * MIN);
        upd.id = id.clone();
        let new = s.upsert(upd).unwrap();
        assert_ne!(new, id);
        let (old, st) = s.get(&id).unwrap();
        assert_eq!(st, SilenceState::Expired);
        assert_eq!(old.ends_at, T0 + MIN);
        assert_eq!(old.matchers, vec![m(MatchOp::Equal, "a", "b")]);
        let (n, st) = s.get(&new).unwrap();
        assert_eq!(st, SilenceState::Active);
        assert_eq!(n.starts_at, T0 + MIN, "past start clamped to now");
        assert_eq!(s.list().len(), 2);
        assert_eq!(s.list()[0].0.id, new, "newest first");
    }

    #[test]
    fn moving_start_of_active_silence_creates_new() {
        let (s, c) = setup();
        let ms = vec![m(MatchOp::Equal, "a", "b")];
        let id = s.upsert(sil(ms.clone(), T0, T0 + 10 * MIN)).unwrap();
        c.advance(MIN);
        let mut upd = sil(ms, T0 + 5 * MIN, T0 + 10 * MIN);
        upd.id = id.clone();
        let new = s.upsert(upd).unwrap();
        assert_ne!(new, id);
        assert_eq!(s.get(&id).unwrap().1, SilenceState::Expired);
        assert_eq!(s.get(&new).unwrap().1, SilenceState::Pending);
    }

    #[test]
    fn pending_silence_updates_in_place_unless_start_moves_to_the_past() {
        let (s, c) = setup();
        let ms = vec![m(MatchOp::Equal, "a", "b")];
        let id = s
            .upsert(sil(ms.clone(), T0 + 10 * MIN, T0 + 20 * MIN))
            .unwrap();
        let mut upd = sil(ms.clone(), T0 + 5 * MIN, T0 + 30 * MIN);
        upd.id = id.clone();
        assert_eq!(s.upsert(upd).unwrap(), id);
        assert_eq!(s.get(&id).unwrap().0.starts_at, T0 + 5 * MIN);

        c.advance(MIN);
        let mut upd = sil(ms, T0, T0 + 30 * MIN);
        upd.id = id.clone();
        let new = s.upsert(upd).unwrap();
        assert_ne!(new, id);
        let (old, st) = s.get(&id).unwrap();
        assert_eq!(st, SilenceState::Expired);
        assert_eq!((old.starts_at, old.ends_at), (T0 + MIN, T0 + MIN));
        assert_eq!(s.get(&new).unwrap().0.starts_at, T0 + MIN);
    }

    #[test]
    fn updating_expired_silence_creates_new_and_leaves_old() {
        let (s, c) = setup();
        let ms = vec![m(MatchOp::Equal, "a", "b")];
        let id = s.upsert(sil(ms.clone(), T0, T0 + MIN)).unwrap();
        c.advance(2 * MIN);
        let mut upd = sil(ms, T0 + 2 * MIN, T0 + 10 * MIN);
        upd.id = id.clone();
        let new = s.upsert(upd).unwrap();
        assert_ne!(new, id);
        let (old, st) = s.get(&id).unwrap();
        assert_eq!(st, SilenceState::Expired);
        assert_eq!(old.ends_at, T0 + MIN, "untouched");
        assert_eq!(old.updated_at, T0);
    }

    #[test]
    fn update_of_unknown_id_is_not_found() {
        let (s, _c) = setup();
        let mut x = sil(vec![m(MatchOp::Equal, "a", "b")], T0, T0 + MIN);
        x.id = "nope".into();
        assert!(matches!(s.upsert(x), Err(Error::NotFound(_))));
        assert!(matches!(s.expire("nope"), Err(Error::NotFound(_))));
    }

    #[test]
    fn expire_active_pending_and_expired() {
        let (s, c) = setup();
        let ms = vec![m(MatchOp::Equal, "a", "b")];
        let active = s.upsert(sil(ms.clone(), T0, T0 + 10 * MIN)).unwrap();
        let pending = s.upsert(sil(ms, T0 + 5 * MIN, T0 + 10 * MIN)).unwrap();
        c.advance(MIN);
        s.expire(&active).unwrap();
        let (a, st) = s.get(&active).unwrap();
        assert_eq!(st, SilenceState::Expired);
        assert_eq!(
            (a.starts_at, a.ends_at, a.updated_at),
            (T0, T0 + MIN, T0 + MIN)
        );
        s.expire(&pending).unwrap();
        let (p, st) = s.get(&pending).unwrap();
        assert_eq!(st, SilenceState::Expired);
        assert_eq!((p.starts_at, p.ends_at), (T0 + MIN, T0 + MIN));
        assert!(s.mutes(&labels(&[("a", "b")]), c.now_ms()).is_empty());
        // Expiring again is a successful no-op, as in Alertmanager, now and later.
        let v = s.version();
        s.expire(&active).unwrap();
        c.advance(MIN);
        s.expire(&active).unwrap();
        s.expire(&pending).unwrap();
        assert_eq!(s.version(), v, "nothing changed");
        assert_eq!(s.get(&active).unwrap().0, a);
        assert_eq!(s.get(&pending).unwrap().0, p);
        // A silence whose end comes by itself is expired once past it, and then a no-op too.
        let timed = s
            .upsert(sil(
                vec![m(MatchOp::Equal, "c", "d")],
                c.now_ms(),
                c.now_ms() + MIN,
            ))
            .unwrap();
        let before = s.get(&timed).unwrap().0;
        c.advance(MIN + 1);
        s.expire(&timed).unwrap();
        assert_eq!(s.get(&timed).unwrap().0, before);
    }

    #[test]
    fn an_expired_silence_stops_muting_within_the_same_millisecond() {
        let (s, c) = setup();
        let id = s
            .upsert(sil(vec![m(MatchOp::Equal, "a", "b")], T0, T0 + 10 * MIN))
            .unwrap();
        c.advance(MIN);
        let now = c.now_ms();
        assert_eq!(s.mutes(&labels(&[("a", "b")]), now), vec![id.clone()]);
        s.expire(&id).unwrap();
        // Alertmanager's nanosecond clock puts every later query past the end it just set.
        assert_eq!(s.get(&id).unwrap().1, SilenceState::Expired);
        assert!(s.mutes(&labels(&[("a", "b")]), now).is_empty());
        // Ending an active silence now through an update does the same.
        let ms = vec![m(MatchOp::Equal, "x", "y")];
        let id = s.upsert(sil(ms.clone(), now, now + MIN)).unwrap();
        c.advance(MIN);
        let now = c.now_ms();
        let mut upd = sil(ms, now - MIN, now);
        upd.id = id.clone();
        assert_eq!(s.upsert(upd).unwrap(), id, "edited in place");
        assert_eq!(s.get(&id).unwrap().1, SilenceState::Expired);
        assert!(s.mutes(&labels(&[("x", "y")]), now).is_empty());
    }

    #[test]
    fn matching_operators_and_missing_labels() {
        let (s, _c) = setup();
        let end = T0 + 10 * MIN;
        let eq = s
            .upsert(sil(vec![m(MatchOp::Equal, "job", "api")], T0, end))
            .unwrap();
        let ne = s
            .upsert(sil(
                vec![
                    m(MatchOp::Equal, "alertname", "Down"),
                    m(MatchOp::NotEqual, "env", "prod"),
                ],
                T0,
                end,
            ))
            .unwrap();
        let re = s
            .upsert(sil(
                vec![m(MatchOp::Regex, "instance", "web-[0-9]+")],
                T0,
                end,
            ))
            .unwrap();
        let nre = s
            .upsert(sil(
                vec![
                    m(MatchOp::Regex, "severity", "warn.*"),
                    m(MatchOp::NotRegex, "team", "db|infra"),
                ],
                T0,
                end,
            ))
            .unwrap();
        let at = |p: &[(&str, &str)]| s.mutes(&labels(p), T0 + MIN);

        assert_eq!(at(&[("job", "api")]), vec![eq.clone()]);
        assert!(at(&[("job", "api2")]).is_empty());
        // `env` missing is "", which is != "prod".
        assert_eq!(at(&[("alertname", "Down")]), vec![ne.clone()]);
        assert!(at(&[("alertname", "Down"), ("env", "prod")]).is_empty());
        assert_eq!(at(&[("alertname", "Down"), ("env", "dev")]), vec![ne]);
        // Regexes are anchored at both ends.
        assert_eq!(at(&[("instance", "web-12")]), vec![re]);
        assert!(at(&[("instance", "xweb-12")]).is_empty());
        assert!(at(&[("instance", "web-12x")]).is_empty());
        assert_eq!(at(&[("severity", "warning")]), vec![nre.clone()]);
        assert!(at(&[("severity", "warning"), ("team", "db")]).is_empty());
        assert_eq!(at(&[("severity", "warning"), ("team", "dba")]), vec![nre]);
        // Several at once, sorted.
        let mut both = vec![eq.clone()];
        both.extend(at(&[("instance", "web-1")]));
        both.sort();
        assert_eq!(at(&[("job", "api"), ("instance", "web-1")]), both);
        // Only while active: from the start through the end itself.
        assert!(s.mutes(&labels(&[("job", "api")]), T0 - 1).is_empty());
        assert_eq!(s.mutes(&labels(&[("job", "api")]), end), vec![eq.clone()]);
        assert!(s.mutes(&labels(&[("job", "api")]), end + 1).is_empty());
    }

    #[test]
    fn validation_names_the_field() {
        let (s, _c) = setup();
        let ok = || sil(vec![m(MatchOp::Equal, "a", "b")], T0, T0 + MIN);
        assert!(bad(s.upsert(sil(vec![], T0, T0 + MIN))).starts_with("matchers:"));
        let e = bad(s.upsert(sil(vec![Matcher::equal("1bad", "x")], T0, T0 + MIN)));
        assert!(e.starts_with("matchers[0]:") && e.contains("1bad"), "{e}");
        assert_eq!(
            bad(s.upsert(sil(
                vec![m(MatchOp::Regex, "a", ".*"), m(MatchOp::NotEqual, "b", "c")],
                T0,
                T0 + MIN
            ))),
            "matchers: at least one matcher must not match the empty string"
        );
        assert!(bad(s.upsert(sil(vec![m(MatchOp::Equal, "a", "b")], T0, 0))).starts_with("endsAt:"));
        assert!(
            bad(s.upsert(sil(vec![m(MatchOp::Equal, "a", "b")], T0 + MIN, T0 + MIN)))
                .contains("before end")
        );
        assert!(bad(s.upsert(sil(
            vec![m(MatchOp::Equal, "a", "b")],
            T0 - 2 * MIN,
            T0 - MIN
        )))
        .contains("past"));
        let mut x = ok();
        x.created_by = " ".into();
        assert_eq!(bad(s.upsert(x)), "createdBy: required");
        let mut x = ok();
        x.comment.clear();
        assert_eq!(bad(s.upsert(x)), "comment: required");
        assert!(s.list().is_empty());
        // A regex set after construction is compiled (and rejected) here.
        let mut edited = Matcher::equal("a", "(");
        edited.op = MatchOp::Regex;
        let e = bad(s.upsert(sil(vec![edited], T0, T0 + MIN)));
        assert!(e.starts_with("matchers[0]:") && e.contains("regex"), "{e}");
        let mut edited = Matcher::equal("a", "x|y");
        edited.op = MatchOp::Regex;
        let id = s.upsert(sil(vec![edited], T0, T0 + MIN)).unwrap();
        assert_eq!(s.mutes(&labels(&[("a", "y")]), T0), vec![id]);
    }

    #[test]
    fn persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let clock = ManualClock::new(T0);
        let (a, b) = {
            let db = StateDb::open(&path).unwrap();
            let s = Silences::new(Some(db), Arc::new(clock.clone())).unwrap();
            let a = s
                .upsert(sil(
                    vec![
                        m(MatchOp::Regex, "job", "a|b"),
                        m(MatchOp::NotRegex, "env", "dev.*"),
                    ],
                    T0,
                    T0 + 10 * MIN,
                ))
                .unwrap();
            let b = s
                .upsert(sil(vec![m(MatchOp::Equal, "x", "y")], T0, T0 + 10 * MIN))
                .unwrap();
            clock.advance(MIN);
            s.expire(&b).unwrap();
            (a, b)
        };
        let db = StateDb::open(&path).unwrap();
        let s = Silences::new(Some(db), Arc::new(clock.clone())).unwrap();
        assert_eq!(s.list().len(), 2);
        let (ga, st) = s.get(&a).unwrap();
        assert_eq!(st, SilenceState::Active);
        assert_eq!(ga.created_by, "alice");
        assert_eq!(ga.matchers[1].op, MatchOp::NotRegex);
        assert_eq!(s.get(&b).unwrap().1, SilenceState::Expired);
        assert_eq!(
            s.mutes(&labels(&[("job", "b"), ("env", "prod")]), clock.now_ms()),
            vec![a.clone()]
        );
        assert!(s
            .mutes(&labels(&[("job", "b"), ("env", "dev1")]), clock.now_ms())
            .is_empty());
    }

    #[test]
    fn gc_deletes_after_retention_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let clock = ManualClock::new(T0);
        let s =
            Silences::new(Some(StateDb::open(&path).unwrap()), Arc::new(clock.clone())).unwrap();
        s.set_retention(60 * MIN);
        let short = s
            .upsert(sil(vec![m(MatchOp::Equal, "a", "b")], T0, T0 + MIN))
            .unwrap();
        let long = s
            .upsert(sil(vec![m(MatchOp::Equal, "a", "b")], T0, T0 + 100 * MIN))
            .unwrap();
        assert_eq!(s.gc(T0 + 61 * MIN - 1).unwrap(), 0);
        let v = s.version();
        assert_eq!(s.gc(T0 + 61 * MIN).unwrap(), 1);
        assert!(s.version() > v);
        assert!(s.get(&short).is_none());
        assert!(s.get(&long).is_some());
        drop(s);
        let s = Silences::new(Some(StateDb::open(&path).unwrap()), Arc::new(clock)).unwrap();
        assert!(s.get(&short).is_none());
        assert_eq!(s.list().len(), 1);
        assert_eq!(DEFAULT_RETENTION_MS, 5 * 24 * 3600 * 1000);
    }

    #[test]
    fn index_handles_many_silences_and_empty_equal_matchers() {
        let (s, _c) = setup();
        let mut ids = Vec::new();
        for i in 0..50 {
            ids.push(
                s.upsert(sil(
                    vec![m(MatchOp::Equal, "instance", &format!("h{i}"))],
                    T0,
                    T0 + MIN,
                ))
                .unwrap(),
            );
        }
        // `foo=""` matches alerts without `foo`; it must not be used to file the silence.
        let empty = s
            .upsert(sil(
                vec![m(MatchOp::Equal, "foo", ""), m(MatchOp::Equal, "job", "j")],
                T0,
                T0 + MIN,
            ))
            .unwrap();
        assert_eq!(
            s.mutes(&labels(&[("instance", "h7")]), T0),
            vec![ids[7].clone()]
        );
        assert_eq!(s.mutes(&labels(&[("job", "j")]), T0), vec![empty]);
        assert!(s
            .mutes(&labels(&[("job", "j"), ("foo", "1")]), T0)
            .is_empty());
    }
}
