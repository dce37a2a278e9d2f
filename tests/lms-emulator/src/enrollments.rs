//! Enrollments that change over time. `POST /__emulator/enrollments/advance`
//! moves chosen enrollments forward, each step a new version stamped with the
//! emulator's clock; every version is kept beside the compact generated rows,
//! so webhooks can carry a whole history (`"history": true` on the emit
//! request), while the API — `GET /api/v1/enrollments` (and so a backfill),
//! the counts, webhooks chosen by `count` — sees each enrollment's current
//! version, moved to the end of the `(updated_at, id)` order.
//!
//! One step, by status (deterministic: a function of the data set's seed,
//! the enrollment and its version number):
//!
//! | from | to |
//! |---|---|
//! | `enrolled` | `in_progress`, `progress_pct` 1–40 |
//! | `in_progress`, progress < 70 | `in_progress`, progress up by 10–39 (at most 99) |
//! | `in_progress`, progress ≥ 70 | `completed`: progress 100, a score, `completed_at` = the step's time |
//! | `completed` | `completed` again with a new score (a retake) |
//! | `expired` | `enrolled` again: `enrolled_at` = the step's time, progress 0, no score |
//!
//! Stamps: every step of one request shares one `updated_at` per step
//! (`steps` > 1: consecutive milliseconds), strictly after every generated
//! enrollment and every earlier step, so an enrollment's versions strictly
//! increase and a cursor handed out before a change never skips it.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{PoisonError, RwLockReadGuard, RwLockWriteGuard};

use serde::Deserialize;

use crate::data::{Dataset, Enrollment, EnrollmentRow, Status, enrollment_id, parse_id};
use crate::prng::SplitMix64;

const KIND_ADVANCE: u64 = 5;
/// Most enrollments one advance request moves.
pub const MAX_ADVANCE: usize = 100_000;
/// Most steps one advance request takes per enrollment.
pub const MAX_STEPS: u32 = 20;

/// Every version of the enrollments moved since generation.
#[derive(Debug, Default)]
pub struct EnrollmentChanges {
    /// Each moved enrollment's versions, oldest (the generated one) first.
    history: HashMap<u32, Vec<EnrollmentRow>>,
    /// `(updated_at, index)` of each moved enrollment's current version:
    /// the end of the paging order.
    tail: BTreeSet<(i64, u32)>,
    /// The latest stamp handed out.
    last_stamp: i64,
    /// Steps taken (versions stored beyond the generated ones).
    steps: u64,
}

/// Body of `POST /__emulator/enrollments/advance`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvanceRequest {
    /// These enrollments, in this order ...
    #[serde(default)]
    pub enrollment_ids: Option<Vec<String>>,
    /// ... or the first `count` in the current `(updated_at, id)` order (the
    /// least recently changed: repeated calls move on to others).
    #[serde(default)]
    pub count: Option<usize>,
    /// Steps per enrollment (default 1), each its own version.
    #[serde(default = "one")]
    pub steps: u32,
}

fn one() -> u32 {
    1
}

/// What an advance did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Advanced {
    /// Enrollments moved.
    pub advanced: usize,
    /// Versions stored by this request (enrollments × steps).
    pub versions: u64,
    /// The stamp of the last step (RFC 3339).
    pub updated_at: Option<String>,
    /// Each moved enrollment's current version, in request order.
    pub enrollments: Vec<Enrollment>,
}

/// The next version of `row` at time `t`.
pub fn step(row: &EnrollmentRow, g: &mut SplitMix64, t: i64) -> EnrollmentRow {
    let mut next = *row;
    next.updated_at = t;
    let below = |g: &mut SplitMix64, n: u64| u8::try_from(g.below(n)).unwrap_or(0);
    match row.status {
        Status::Enrolled => {
            next.status = Status::InProgress;
            next.progress = 1 + below(g, 40);
        }
        Status::InProgress if row.progress < 70 => {
            next.progress = row.progress.saturating_add(10 + below(g, 30)).min(99);
        }
        Status::InProgress => {
            next.status = Status::Completed;
            next.progress = 100;
            next.score_tenths = Some(u16::try_from(500 + g.below(501)).unwrap_or(1000));
            next.completed_at = Some(t);
        }
        Status::Completed => {
            next.score_tenths = Some(u16::try_from(500 + g.below(501)).unwrap_or(1000));
        }
        Status::Expired => {
            next.status = Status::Enrolled;
            next.progress = 0;
            next.score_tenths = None;
            next.completed_at = None;
            next.enrolled_at = t;
        }
    }
    next
}

impl Dataset {
    fn enrollment_changes(&self) -> RwLockReadGuard<'_, EnrollmentChanges> {
        self.enrollment_changes.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn enrollment_changes_mut(&self) -> RwLockWriteGuard<'_, EnrollmentChanges> {
        self.enrollment_changes.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn current_in(&self, changes: &EnrollmentChanges, i: u32) -> Option<EnrollmentRow> {
        match changes.history.get(&i).and_then(|v| v.last()) {
            Some(row) => Some(*row),
            None => self.enrollments.get(i as usize).copied(),
        }
    }

    /// Enrollment `i`'s current version.
    pub fn current_enrollment(&self, i: u32) -> Option<EnrollmentRow> {
        self.current_in(&self.enrollment_changes(), i)
    }

    /// Every version of enrollment `i`, oldest first (one for an enrollment
    /// never moved; none for an unknown one).
    pub fn enrollment_versions(&self, i: u32) -> Vec<EnrollmentRow> {
        let changes = self.enrollment_changes();
        match changes.history.get(&i) {
            Some(v) => v.clone(),
            None => self.enrollments.get(i as usize).copied().into_iter().collect(),
        }
    }

    /// Versions stored beyond the generated ones.
    pub fn enrollment_steps(&self) -> u64 {
        self.enrollment_changes().steps
    }

    /// The index of the enrollment `id` names (canonical ids only: `E0000009`).
    pub fn enrollment_index(&self, id: &str) -> Option<u32> {
        parse_id(id, 'E').filter(|i| (*i as usize) < self.enrollments.len() && enrollment_id(*i) == id)
    }

    fn generated_updated_at(&self, i: u32) -> i64 {
        self.enrollments.get(i as usize).map_or(0, |e| e.updated_at)
    }

    /// One page in `(updated_at, index)` order of the current versions with
    /// `since <= updated_at < until` (each bound optional) and a key after
    /// `after`: at most `limit`, with the key of the last one when more follow.
    pub fn enrollments_page(
        &self,
        since: Option<i64>,
        until: Option<i64>,
        after: Option<(i64, u32)>,
        limit: usize,
    ) -> (Vec<Enrollment>, Option<(i64, u32)>) {
        let changes = self.enrollment_changes();
        let keys = self.ordered_keys(&changes, since, until, after, limit.saturating_add(1));
        let more = keys.len() > limit;
        let keys = &keys[..keys.len().min(limit)];
        let data = keys
            .iter()
            .filter_map(|(_, i)| self.current_in(&changes, *i).map(|row| self.render_enrollment(*i, &row)))
            .collect();
        (data, if more { keys.last().copied() } else { None })
    }

    /// Up to `limit` keys in the current order, within the bounds: the
    /// generated enrollments never moved, then the moved ones (all later).
    fn ordered_keys(
        &self,
        changes: &EnrollmentChanges,
        since: Option<i64>,
        until: Option<i64>,
        after: Option<(i64, u32)>,
        limit: usize,
    ) -> Vec<(i64, u32)> {
        let at = |i: u32| self.generated_updated_at(i);
        let order = &self.enrollments_order;
        let mut start = since.map_or(0, |s| order.partition_point(|i| at(*i) < s));
        if let Some(a) = after {
            start = start.max(order.partition_point(|i| (at(*i), *i) <= a));
        }
        let before_until = |t: i64| until.is_none_or(|u| t < u);
        let mut keys: Vec<(i64, u32)> = Vec::with_capacity(limit.min(1024));
        for &i in order.get(start..).unwrap_or_default() {
            if keys.len() == limit || !before_until(at(i)) {
                return keys;
            }
            if !changes.history.contains_key(&i) {
                keys.push((at(i), i));
            }
        }
        let lower = match (since.map(|s| (s, 0)), after) {
            (Some(s), Some(a)) if s > a => Bound::Included(s),
            (_, Some(a)) => Bound::Excluded(a),
            (Some(s), None) => Bound::Included(s),
            (None, None) => Bound::Unbounded,
        };
        for key in changes.tail.range((lower, Bound::Unbounded)) {
            if keys.len() == limit || !before_until(key.0) {
                break;
            }
            keys.push(*key);
        }
        keys
    }

    /// Current versions with `since <= updated_at < until`.
    pub fn enrollments_count(&self, since: Option<i64>, until: Option<i64>) -> usize {
        let changes = self.enrollment_changes();
        let inside = |t: i64| since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u);
        let at = |i: &u32| self.generated_updated_at(*i);
        let order = &self.enrollments_order;
        let start = since.map_or(0, |s| order.partition_point(|i| at(i) < s));
        let end = until.map_or(order.len(), |u| order.partition_point(|i| at(i) < u));
        let generated = end.saturating_sub(start);
        let moved_away = changes.history.keys().filter(|i| inside(self.generated_updated_at(**i))).count();
        let moved_here = changes.tail.iter().filter(|(t, _)| inside(*t)).count();
        generated - moved_away.min(generated) + moved_here
    }

    /// The first `n` enrollments in the current `(updated_at, id)` order.
    pub fn first_enrollments(&self, n: usize) -> Vec<u32> {
        let changes = self.enrollment_changes();
        self.ordered_keys(&changes, None, None, None, n).into_iter().map(|(_, i)| i).collect()
    }

    /// Moves each enrollment `steps` steps forward (see the module doc), at
    /// `now_ms` or later; their current versions, in order. An index listed
    /// twice moves once.
    pub fn advance_enrollments(&self, indexes: &[u32], steps: u32, now_ms: i64) -> Advanced {
        let mut seen = std::collections::HashSet::new();
        let seed = self.params.map_or(0, |p| p.seed);
        let generated_max = self.enrollments_order.last().map_or(i64::MIN, |i| self.generated_updated_at(*i));
        let mut changes = self.enrollment_changes_mut();
        let mut stamps = Vec::with_capacity(steps as usize);
        for _ in 0..steps {
            let t = now_ms.max(generated_max.saturating_add(1)).max(changes.last_stamp.saturating_add(1));
            changes.last_stamp = t;
            stamps.push(t);
        }
        let mut out = Vec::with_capacity(indexes.len());
        let mut versions = 0;
        for &i in indexes.iter().filter(|i| seen.insert(**i)) {
            let Some(current) = self.current_in(&changes, i) else { continue };
            let history = changes.history.entry(i).or_insert_with(|| vec![current]);
            for &t in &stamps {
                let Some(last) = history.last().copied() else { break };
                let n = history.len() as u64;
                let mut g = SplitMix64::for_entity(seed, KIND_ADVANCE, (u64::from(i) << 16) ^ n);
                history.push(step(&last, &mut g, t));
                versions += 1;
            }
            let now = history.last().copied().unwrap_or(current);
            changes.tail.remove(&(current.updated_at, i));
            changes.tail.insert((now.updated_at, i));
            out.push(self.render_enrollment(i, &now));
        }
        changes.steps += versions;
        Advanced {
            advanced: out.len(),
            versions,
            updated_at: stamps.last().map(|t| crate::data::rfc3339_ms(*t)),
            enrollments: out,
        }
    }

    /// Checks an advance request and chooses its enrollments.
    pub fn advance_selection(&self, req: &AdvanceRequest) -> Result<Vec<u32>, String> {
        if !(1..=MAX_STEPS).contains(&req.steps) {
            return Err(format!("steps must be between 1 and {MAX_STEPS}"));
        }
        let chosen = match (&req.count, &req.enrollment_ids) {
            (Some(_), Some(_)) => return Err("give either count or enrollment_ids, not both".to_owned()),
            (None, None) => return Err("give count or enrollment_ids".to_owned()),
            (Some(n), None) => self.first_enrollments((*n).min(MAX_ADVANCE)),
            (None, Some(ids)) => ids
                .iter()
                .map(|id| self.enrollment_index(id).ok_or_else(|| format!("unknown enrollment id {id}")))
                .collect::<Result<Vec<u32>, String>>()?,
        };
        if chosen.len() > MAX_ADVANCE {
            return Err(format!("at most {MAX_ADVANCE} enrollments per request"));
        }
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DatasetParams, generate};

    fn data() -> Dataset {
        generate(DatasetParams { seed: 11, learners: 50, departments: 3, courses: 6, enrollments_per_learner: 4 })
    }

    #[test]
    fn steps_move_forward_and_stamps_strictly_increase() {
        let d = data();
        let ids: Vec<u32> = (0..200).collect();
        let mut last: HashMap<u32, i64> = HashMap::new();
        for round in 0..4 {
            let a = d.advance_enrollments(&ids, 1, crate::data::EPOCH_MS);
            assert_eq!((a.advanced, a.versions), (200, 200), "round {round}");
            for (i, e) in ids.iter().zip(&a.enrollments) {
                let t = crate::data::parse_rfc3339(&e.updated_at).unwrap();
                assert!(last.get(i).is_none_or(|p| t > *p), "strictly later");
                last.insert(*i, t);
            }
        }
        for i in 0..200 {
            let v = d.enrollment_versions(i);
            assert_eq!(v.len(), 5);
            for w in v.windows(2) {
                let (a, b) = (w[0], w[1]);
                assert!(b.updated_at > a.updated_at);
                match a.status {
                    Status::Enrolled => assert_eq!(b.status, Status::InProgress),
                    Status::InProgress => {
                        assert!(b.progress > a.progress);
                        if b.status == Status::Completed {
                            assert_eq!((b.progress, b.completed_at), (100, Some(b.updated_at)));
                            assert!(b.score_tenths.is_some());
                        }
                    }
                    Status::Completed => assert_eq!(b.status, Status::Completed),
                    Status::Expired => assert_eq!((b.status, b.enrolled_at), (Status::Enrolled, b.updated_at)),
                }
            }
        }
        assert_eq!(d.enrollment_steps(), 800);
    }

    #[test]
    fn moved_enrollments_page_and_count_at_the_end_of_the_order() {
        let d = data();
        let n = d.enrollments.len();
        let all = |d: &Dataset, since: Option<i64>, until: Option<i64>, limit: usize| {
            let mut out = Vec::new();
            let mut after = None;
            loop {
                let (page, next) = d.enrollments_page(since, until, after, limit);
                out.extend(page);
                match next {
                    Some(k) => after = Some(k),
                    None => return out,
                }
            }
        };
        let before = all(&d, None, None, 7);
        assert_eq!(before.len(), n);
        let first: Vec<u32> = d.first_enrollments(3);
        assert_eq!(first, d.enrollments_order[..3]);
        let moved = d.advance_enrollments(&[5, first[0]], 2, crate::data::EPOCH_MS);
        let t = crate::data::parse_rfc3339(moved.updated_at.as_deref().unwrap()).unwrap();
        for limit in [1, 3, 7, 1000] {
            let after = all(&d, None, None, limit);
            assert_eq!(after.len(), n, "limit {limit}: each once");
            let ids: Vec<&str> = after.iter().map(|e| e.id.as_str()).collect();
            let want = [crate::data::enrollment_id(first[0].min(5)), crate::data::enrollment_id(first[0].max(5))];
            assert_eq!(&ids[n - 2..], want.iter().map(String::as_str).collect::<Vec<_>>(), "limit {limit}");
        }
        let unmoved: Vec<u32> = d.enrollments_order.iter().copied().filter(|i| ![5, first[0]].contains(i)).collect();
        assert_eq!(d.first_enrollments(2), unmoved[..2], "count moves on");
        // Counts and windows see the current versions only.
        assert_eq!(d.enrollments_count(None, None), n);
        assert_eq!(d.enrollments_count(Some(t), None), 2);
        assert_eq!(d.enrollments_count(Some(t - 1), Some(t)), 0);
        assert_eq!(all(&d, Some(t), None, 1).len(), 2);
        let older = d.enrollment_versions(5)[0].updated_at;
        assert_eq!(d.enrollments_count(Some(older), Some(older + 1)), 0, "its old version left the window");
        assert_eq!(all(&d, None, Some(t), 1000).len(), n - 2);
        assert_eq!(d.enrollment(5).unwrap().updated_at, crate::data::rfc3339_ms(t));
    }

    #[test]
    fn selection_is_checked() {
        let d = data();
        let req = |v: serde_json::Value| serde_json::from_value::<AdvanceRequest>(v).unwrap();
        assert!(d.advance_selection(&req(serde_json::json!({}))).unwrap_err().contains("count or enrollment_ids"));
        assert!(
            d.advance_selection(&req(serde_json::json!({"enrollment_ids": ["E9999999"]})))
                .unwrap_err()
                .contains("unknown enrollment id")
        );
        assert!(d.advance_selection(&req(serde_json::json!({"count": 1, "steps": 0}))).unwrap_err().contains("steps"));
        assert_eq!(d.advance_selection(&req(serde_json::json!({"enrollment_ids": ["E0000003"]}))).unwrap(), [3]);
    }
}
