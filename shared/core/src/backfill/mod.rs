//! SPEC §6, pure: backfills of a time window of LMS enrollments into
//! Salesforce, planned into shards, written shard by shard.
//!
//! - [`Backfill`] is the plan and its lifecycle (status, options, kill
//!   switch, API budget); [`Shard`] is one time range of the window with its
//!   own checkpoint (LMS cursor, Bulk job, counts). Both are stored with a
//!   version and written conditionally, so a redelivered shard message or
//!   two racing workers cannot count anything twice.
//! - [`plan`] splits a window into shards of about `shard_size` records from
//!   the LMS's counts (bisection by time).
//! - [`Progress`] is what `learnlink backfill status` shows: shards done of
//!   total, records written / failed, API calls, ETA.
//! - [`coverage`]: the windows earlier backfills completed, so
//!   `--only-changed` reads only what changed since.

pub mod coverage;
pub mod engine;
pub mod plan;

use crate::budget::ApiBudget;
use crate::model::TenantId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A half-open time range `[since, until)` of LMS `updated_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
}

impl Window {
    pub fn new(since: OffsetDateTime, until: OffsetDateTime) -> Result<Window, String> {
        if since >= until {
            return Err(format!(
                "the window is empty: since ({}) must be before until ({})",
                crate::model::salesforce_datetime(since),
                crate::model::salesforce_datetime(until)
            ));
        }
        Ok(Window { since, until })
    }

    pub fn contains(&self, t: OffsetDateTime) -> bool {
        self.since <= t && t < self.until
    }

    pub fn duration(&self) -> time::Duration {
        self.until - self.since
    }
}

/// Why a backfill runs (SPEC §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// `learnlink backfill start`.
    Admin,
    /// The gap of a disconnection, after the relink (SPEC §3.4).
    Relink { gap_id: String },
    /// All history, when a tenant is onboarded.
    Onboarding,
}

/// Where a backfill is in its life. `Completed`, `Failed` and `Cancelled`
/// are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackfillStatus {
    /// Shards are being counted and stored (nothing enqueued yet).
    Planning,
    Running,
    /// The API budget is spent: nothing is written until the next window.
    Paused,
    Completed,
    Failed,
    Cancelled,
}

impl BackfillStatus {
    pub fn is_final(self) -> bool {
        matches!(self, BackfillStatus::Completed | BackfillStatus::Failed | BackfillStatus::Cancelled)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            BackfillStatus::Planning => "planning",
            BackfillStatus::Running => "running",
            BackfillStatus::Paused => "paused",
            BackfillStatus::Completed => "completed",
            BackfillStatus::Failed => "failed",
            BackfillStatus::Cancelled => "cancelled",
        }
    }
}

/// The automation kill switch (SPEC §6.4): `LMS_Sync_Settings__c`'s org
/// default `Bypass_Automation__c`, set before the first write and restored
/// when the backfill ends, however it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum KillSwitch {
    /// The tenant does not use it.
    Off,
    /// To be engaged before the first write.
    Pending,
    /// Engaged; `previous` is the value to restore (`None`: there was no
    /// org-default record, so restoring sets false).
    Engaged { previous: Option<bool> },
    /// Restored to `previous` after the backfill ended.
    Restored { previous: Option<bool> },
}

impl KillSwitch {
    /// Whether the org's automations are (or may be) bypassed because of
    /// this backfill: a final backfill in this state still owes a restore.
    pub fn owes_restore(&self) -> bool {
        matches!(self, KillSwitch::Engaged { .. })
    }
}

/// What a backfill writes and how (fixed when it is planned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillOptions {
    /// Skip the parts of the window earlier backfills completed.
    pub only_changed: bool,
    /// Shards at or above this many records go through Bulk API 2.0.
    pub bulk_threshold: u64,
    /// About this many records per shard.
    pub shard_size: u64,
}

/// One backfill: the plan and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backfill {
    pub id: String,
    pub tenant: TenantId,
    pub window: Window,
    pub origin: Origin,
    pub options: BackfillOptions,
    pub status: BackfillStatus,
    pub kill_switch: KillSwitch,
    /// Records the LMS counted in the window when it was planned.
    pub expected: u64,
    pub shards: u32,
    /// The parts of the window skipped by `only_changed` (already covered).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Window>,
    /// The API budget of the current window (SPEC §6.6); `None` until the
    /// first usage figure is seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<ApiBudget>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<OffsetDateTime>,
    /// Why it failed, paused or was cancelled (one sentence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Backfill {
    /// Whether the scheduler's sweep still has work with it: not final, or
    /// final with the kill switch still to restore.
    pub fn is_open(&self) -> bool {
        !self.status.is_final() || self.kill_switch.owes_restore()
    }
}

/// Where a shard is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardStatus {
    Pending,
    Done,
    Failed,
    Cancelled,
}

/// One time range of a backfill and its checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub window: Window,
    /// Records the LMS counted in the range at planning.
    pub expected: u64,
    pub status: ShardStatus,
    /// The LMS cursor after the last page written (Composite path): a
    /// resumed shard reads on from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The Bulk jobs holding this shard's records, stored once their
    /// uploads are complete: a resumed shard collects their results instead
    /// of sending the records again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bulk_jobs: Vec<String>,
    #[serde(default)]
    pub counts: ShardCounts,
    /// Deliveries of the shard's message that started work on it.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<OffsetDateTime>,
}

impl Shard {
    pub fn new(index: u32, window: Window, expected: u64) -> Shard {
        Shard {
            index,
            window,
            expected,
            status: ShardStatus::Pending,
            cursor: None,
            bulk_jobs: Vec::new(),
            counts: ShardCounts::default(),
            attempts: 0,
            error: None,
            finished_at: None,
        }
    }
}

/// What a shard did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCounts {
    pub pages: u64,
    pub read: u64,
    pub created: u64,
    pub updated: u64,
    pub failed: u64,
    /// Records handed to enrollment sync because their learner has no
    /// Contact yet (it matches or creates one, then writes them).
    #[serde(default)]
    pub handed_over: u64,
    /// Records enrollment sync had already written in a newer version than
    /// the backfill read: not written again (SPEC §4.2).
    #[serde(default)]
    pub stale: u64,
    pub api_calls: u64,
}

impl ShardCounts {
    pub fn add(&mut self, o: &ShardCounts) {
        self.pages += o.pages;
        self.read += o.read;
        self.created += o.created;
        self.updated += o.updated;
        self.failed += o.failed;
        self.handed_over += o.handed_over;
        self.stale += o.stale;
        self.api_calls += o.api_calls;
    }
    pub fn written(&self) -> u64 {
        self.created + self.updated
    }
}

/// A backfill's progress (SPEC §6.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub shards_total: u32,
    pub shards_done: u32,
    pub shards_failed: u32,
    pub expected: u64,
    #[serde(flatten)]
    pub counts: ShardCounts,
    pub written: u64,
    /// 0–100, by records of done shards against expected (shards when
    /// nothing was expected).
    pub percent: f64,
    pub elapsed_seconds: u64,
    /// Seconds left at the pace so far; `None` before the first shard ends
    /// or once the backfill is final.
    pub eta_seconds: Option<u64>,
}

/// Progress from the plan and its shards, at `now`.
pub fn progress(b: &Backfill, shards: &[Shard], now: OffsetDateTime) -> Progress {
    let mut counts = ShardCounts::default();
    let (mut done, mut failed, mut done_expected) = (0u32, 0u32, 0u64);
    for s in shards {
        counts.add(&s.counts);
        match s.status {
            ShardStatus::Done => {
                done += 1;
                done_expected += s.expected;
            }
            ShardStatus::Failed => failed += 1,
            _ => {}
        }
    }
    let total = b.shards;
    let percent = if b.status == BackfillStatus::Completed {
        100.0
    } else if b.expected > 0 {
        (done_expected as f64 * 100.0 / b.expected as f64).min(100.0)
    } else if total > 0 {
        f64::from(done) * 100.0 / f64::from(total)
    } else {
        0.0
    };
    let end = b.finished_at.unwrap_or(now);
    let elapsed = (end - b.created_at).whole_seconds().max(0) as u64;
    let eta_seconds = if b.status.is_final() || done_expected == 0 || elapsed == 0 {
        None
    } else {
        let left = b.expected.saturating_sub(done_expected);
        Some((elapsed as f64 * left as f64 / done_expected as f64).round() as u64)
    };
    Progress {
        shards_total: total,
        shards_done: done,
        shards_failed: failed,
        expected: b.expected,
        written: counts.written(),
        counts,
        percent: (percent * 10.0).round() / 10.0,
        elapsed_seconds: elapsed,
        eta_seconds,
    }
}

/// A backfill id: time-ordered, unique enough for one tenant.
pub fn new_id(now: OffsetDateTime, nonce: &str) -> String {
    let t = now.to_offset(time::UtcOffset::UTC);
    format!(
        "bf-{:04}{:02}{:02}T{:02}{:02}{:02}-{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        nonce.chars().filter(char::is_ascii_alphanumeric).take(8).collect::<String>()
    )
}

/// Whether a string can be a backfill id (checked before it reaches a store
/// key or a log).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests;
