//! Silences shared between replicas: every silence this replica writes is handed to the
//! `on_write` hook (which publishes it), and silences written elsewhere come back through
//! `merge`, which keeps whichever copy was changed last, as Alertmanager's gossip merges.

use std::sync::atomic::Ordering;

use super::{from_stored, store, to_stored, MuteIndex, Silence, Silences};
use crate::error::{Error, Result};
use crate::ha::Op;

pub(super) type OnWrite = Box<dyn Fn(Op) + Send + Sync>;

impl Silences {
    /// Sets where written silences go; only the first call counts.
    pub fn on_write(&self, f: OnWrite) {
        let _ = self.on_write.set(f);
    }

    pub(super) fn told(&self, s: &Silence) {
        if let Some(f) = self.on_write.get() {
            f(shared_op(s));
        }
    }

    /// Takes a silence another replica wrote; true when it changed anything here.
    pub fn merge(&self, op: &Op) -> Result<bool> {
        let s = from_op(op)?;
        let now = self.clock.now_ms();
        let mut inner = self.inner.write();
        if inner
            .by_id
            .get(&s.id)
            .is_some_and(|old| old.updated_at >= s.updated_at)
        {
            return Ok(false);
        }
        self.db.write_durable(|tx| store(tx, &s))?;
        inner.by_id.insert(s.id.clone(), s);
        inner.index = MuteIndex::build(inner.by_id.values(), now);
        self.version.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }
}

/// The silence as replicas share it.
pub fn shared_op(s: &Silence) -> Op {
    Op::Silence {
        id: s.id.clone(),
        matchers: to_stored(&s.matchers),
        starts_at: s.starts_at,
        ends_at: s.ends_at,
        updated_at: s.updated_at,
        created_by: s.created_by.clone(),
        comment: s.comment.clone(),
    }
}

fn from_op(op: &Op) -> Result<Silence> {
    let Op::Silence {
        id,
        matchers,
        starts_at,
        ends_at,
        updated_at,
        created_by,
        comment,
    } = op
    else {
        return Err(Error::Internal("not a silence".into()));
    };
    let matchers = from_stored(matchers.clone()).map_err(Error::BadData)?;
    Ok(Silence {
        id: id.clone(),
        matchers,
        starts_at: *starts_at,
        ends_at: *ends_at,
        updated_at: *updated_at,
        created_by: created_by.clone(),
        comment: comment.clone(),
    })
}
