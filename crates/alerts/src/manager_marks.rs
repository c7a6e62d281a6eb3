//! The alert manager's side of acknowledgements, shelves and notes (`marks.rs` keeps them):
//! checking that the alert exists and is in a state that allows the change, one alert's detail
//! (labels, annotations, state, what mutes it, its marks) and its timeline (`timeline.rs`).
//! These methods are the stable API the HTTP handlers, the Alerta-compatible API and the
//! console use; fingerprints are Alertmanager's (`Alert::fingerprint`), times milliseconds.

use tocsin_model::Alert;

use super::AlertManager;
use crate::error::{Error, Result};
use crate::events::EventKind;
use crate::ha::Op;
use crate::marks::{Ack, AckEnd, Marks, Shelve};
use crate::timeline::{self, TimelineEvent};
use crate::AlertStatus;

/// One alert as `GET /api/v1/alerts/{fingerprint}` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertDetail {
    /// The alert as stored; an alert known only from its history has its labels, start and
    /// end, and no annotations.
    pub alert: Alert,
    /// False once it has resolved.
    pub firing: bool,
    pub status: AlertStatus,
    /// Receivers of the routes its labels lead to.
    pub receivers: Vec<String>,
    pub ack: Option<Ack>,
    pub shelve: Option<Shelve>,
    /// How many notes it has.
    pub notes: usize,
}

/// Parses a fingerprint as Alertmanager prints it (hex, up to 16 digits); the error names it.
pub fn parse_fingerprint(s: &str) -> Result<u64> {
    if s.is_empty() || s.len() > 16 {
        return Err(Error::BadData(format!(
            "fingerprint: {s:?} is not an alert fingerprint (16 hex digits)"
        )));
    }
    u64::from_str_radix(s, 16).map_err(|_| {
        Error::BadData(format!(
            "fingerprint: {s:?} is not an alert fingerprint (16 hex digits)"
        ))
    })
}

fn not_found(fp: u64) -> Error {
    Error::NotFound(format!("alert {fp:016x}: no alert with this fingerprint"))
}

impl AlertManager {
    /// The manager's clock, for callers turning a duration into an expiry.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The acknowledgements, shelves and notes.
    pub fn marks(&self) -> &Marks {
        &self.marks
    }

    pub(super) fn end_ack(&self, fp: u64, at: i64, why: &AckEnd) {
        if let Err(e) = self.marks.end_ack(fp, at, why) {
            tracing::warn!(fingerprint = %format!("{fp:016x}"), error = %e, "ending an acknowledgement");
        }
    }

    /// Ends lapsed acknowledgements and shelves, and acknowledgements of alerts no longer
    /// firing (those resolved by their end passing rather than by a sender's resolve).
    pub(super) fn sweep_marks(&self, now: i64) {
        self.marks.sweep(now, |fp| {
            self.store
                .get(fp)
                .map(|a| a.resolved_at(now).then_some(a.ends_at))
        });
    }

    /// The firing alert `fp`: `NotFound` when unknown, `Conflict` when it has resolved.
    pub(super) fn firing_alert(&self, fp: u64, what: &str, now: i64) -> Result<Alert> {
        match self.store.get(fp) {
            Some(a) if !a.resolved_at(now) => Ok(a),
            Some(a) => Err(Error::Conflict(format!(
                "alert {fp:016x} resolved at {}; only a firing alert can be {what}",
                tocsin_model::time::format_rfc3339_millis(a.ends_at)
            ))),
            None if self.known(fp)? => Err(Error::Conflict(format!(
                "alert {fp:016x} is not firing; only a firing alert can be {what}"
            ))),
            None => Err(not_found(fp)),
        }
    }

    /// Whether anything is known of alert `fp`: held now, or in the state db.
    fn known(&self, fp: u64) -> Result<bool> {
        if self.store.get(fp).is_some() {
            return Ok(true);
        }
        timeline::known(self.marks.db(), fp)
    }

    /// Acknowledges the firing alert `fp` for `by`, until it resolves, its severity changes,
    /// `expires_ms` passes (`None`: no expiry) or someone unacks it. Acknowledging again
    /// replaces the acknowledgement; the same one again (by, comment, expiry) changes nothing
    /// and returns false.
    pub fn ack(&self, fp: u64, by: &str, comment: &str, expires_ms: Option<i64>) -> Result<bool> {
        let now = self.clock.now_ms();
        if let Some(e) = expires_ms {
            if e <= now {
                return Err(Error::BadData(format!(
                    "expires: {} is not in the future",
                    tocsin_model::time::format_rfc3339_millis(e)
                )));
            }
        }
        let a = self.firing_alert(fp, "acknowledged", now)?;
        let changed = self.marks.ack(&a, by, comment, expires_ms, now)?;
        if changed {
            self.tell(fp, EventKind::Acknowledged);
            self.share(Op::Ack {
                fingerprint: fp,
                by: by.into(),
                comment: comment.into(),
                expires_at: expires_ms,
                at: now,
            });
        }
        Ok(changed)
    }

    /// Withdraws the acknowledgement of alert `fp`; false when it had none.
    pub fn unack(&self, fp: u64, by: &str, comment: &str) -> Result<bool> {
        let now = self.clock.now_ms();
        if !self.marks.holds_ack(fp) && !self.known(fp)? {
            return Err(not_found(fp));
        }
        let changed = self.marks.unack(fp, by, comment, now)?;
        if changed {
            self.tell(fp, EventKind::Unacknowledged);
            self.share(Op::Unack {
                fingerprint: fp,
                by: by.into(),
                comment: comment.into(),
                at: now,
            });
        }
        Ok(changed)
    }

    /// Shelves the firing alert `fp` (left out of the console's list) until `until_ms`,
    /// replacing an earlier shelf. Notifications are not affected: that is a silence's job.
    pub fn shelve(&self, fp: u64, by: &str, comment: &str, until_ms: i64) -> Result<()> {
        let now = self.clock.now_ms();
        if until_ms <= now {
            return Err(Error::BadData(
                "duration: the shelf must end in the future".into(),
            ));
        }
        self.firing_alert(fp, "shelved", now)?;
        self.marks.shelve(fp, by, comment, until_ms, now)?;
        self.tell(fp, EventKind::Shelved);
        self.share(Op::Shelve {
            fingerprint: fp,
            by: by.into(),
            comment: comment.into(),
            until: until_ms,
            at: now,
        });
        Ok(())
    }

    /// Takes alert `fp` off the shelf; false when it was not shelved.
    pub fn unshelve(&self, fp: u64, by: &str) -> Result<bool> {
        let now = self.clock.now_ms();
        if !self.marks.holds_shelve(fp) && !self.known(fp)? {
            return Err(not_found(fp));
        }
        let changed = self.marks.unshelve(fp, by, now)?;
        if changed {
            self.tell(fp, EventKind::Unshelved);
            self.share(Op::Unshelve {
                fingerprint: fp,
                by: by.into(),
                at: now,
            });
        }
        Ok(changed)
    }

    /// Adds a note to alert `fp` (firing, or known from its history); returns the note's id.
    pub fn note(&self, fp: u64, by: &str, text: &str) -> Result<i64> {
        if !self.known(fp)? {
            return Err(not_found(fp));
        }
        let now = self.clock.now_ms();
        let id = self.marks.note(fp, by, text, now)?;
        self.tell(fp, EventKind::Noted);
        self.share(Op::Note {
            fingerprint: fp,
            by: by.into(),
            text: text.into(),
            at: now,
        });
        Ok(id)
    }

    /// Alert `fp` with its state, what mutes it and its marks; an alert no longer held comes
    /// from its latest history row.
    pub fn alert_detail(&self, fp: u64) -> Result<AlertDetail> {
        let now = self.clock.now_ms();
        let rt = self.runtime.read().clone();
        let (grouped, held) = {
            let d = self.dispatcher.lock();
            let mut grouped = false;
            let mut held = None;
            for a in d.alerts().filter(|a| a.fingerprint() == fp) {
                grouped = true;
                held = Some(a.clone());
            }
            (grouped, held)
        };
        let alert = match self.store.get(fp).or(held) {
            Some(a) => a,
            None => self.latest_in_history(fp)?.ok_or_else(|| not_found(fp))?,
        };
        let firing = !alert.resolved_at(now);
        let view = self.view(&rt, alert, grouped, now);
        Ok(AlertDetail {
            firing,
            status: view.status,
            receivers: view.receivers,
            alert: view.alert,
            ack: self.marks.ack_of(fp, now),
            shelve: self.marks.shelve_of(fp, now),
            notes: self.marks.notes_count(fp)?,
        })
    }

    /// The latest history row of `fp` as an alert.
    fn latest_in_history(&self, fp: u64) -> Result<Option<Alert>> {
        let rows = self.store.history_of(fp, 1)?;
        Ok(rows.into_iter().next().map(|h| Alert {
            labels: h.labels,
            annotations: Default::default(),
            starts_at: h.starts_at,
            // A row still open belongs to an alert the store no longer holds (it is being
            // collected); it is not firing any more.
            ends_at: if h.ends_at == 0 {
                h.starts_at
            } else {
                h.ends_at
            },
            generator_url: String::new(),
            updated_at: h.starts_at,
            timeout: false,
        }))
    }

    /// The newest `limit` entries of alert `fp`'s timeline, newest first.
    pub fn timeline(&self, fp: u64, limit: usize) -> Result<Vec<TimelineEvent>> {
        if !self.known(fp)? {
            return Err(not_found(fp));
        }
        timeline::timeline(self.marks.db(), fp, limit)
    }
}
