//! Tests of `silence.rs`: validation, updates and expiry, muting, persistence.
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
    let s = Silences::new(Some(StateDb::open(&path).unwrap()), Arc::new(clock.clone())).unwrap();
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
