//! The windows completed backfills covered, per tenant (`--only-changed`).
//!
//! An LMS record's `updated_at` moves forward whenever it changes, so a
//! record whose `updated_at` lies in a window a backfill completed (read,
//! written, nothing failed) is unchanged since: its latest version is in
//! Salesforce. A later backfill with `only_changed` reads only the parts of
//! its window no completed backfill covered. Windows with failures are not
//! added, so their records are read again.

use super::Window;
use serde::{Deserialize, Serialize};

/// Disjoint, sorted, merged windows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    pub windows: Vec<Window>,
}

impl Coverage {
    /// Add a completed window (merging overlapping or touching ones).
    pub fn add(&mut self, w: Window) {
        let mut all = std::mem::take(&mut self.windows);
        all.push(w);
        all.sort_by_key(|w| (w.since, w.until));
        let mut merged: Vec<Window> = Vec::with_capacity(all.len());
        for w in all {
            match merged.last_mut() {
                Some(last) if w.since <= last.until => {
                    if w.until > last.until {
                        last.until = w.until;
                    }
                }
                _ => merged.push(w),
            }
        }
        self.windows = merged;
    }

    /// The parts of `w` not covered, in order.
    pub fn uncovered(&self, w: Window) -> Vec<Window> {
        let mut out = Vec::new();
        let mut from = w.since;
        for c in &self.windows {
            if c.until <= from || c.since >= w.until {
                continue;
            }
            if c.since > from {
                out.push(Window { since: from, until: c.since });
            }
            from = from.max(c.until);
            if from >= w.until {
                break;
            }
        }
        if from < w.until {
            out.push(Window { since: from, until: w.until });
        }
        out
    }

    /// The parts of `w` covered, in order.
    pub fn covered(&self, w: Window) -> Vec<Window> {
        self.windows
            .iter()
            .filter(|c| c.until > w.since && c.since < w.until)
            .map(|c| Window { since: c.since.max(w.since), until: c.until.min(w.until) })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn w(a: i64, b: i64) -> Window {
        let t0 = datetime!(2026-01-01 00:00 UTC);
        Window { since: t0 + time::Duration::hours(a), until: t0 + time::Duration::hours(b) }
    }

    #[test]
    fn add_merges_overlapping_and_touching_windows() {
        let mut c = Coverage::default();
        c.add(w(10, 20));
        c.add(w(0, 5));
        c.add(w(5, 8));
        c.add(w(15, 30));
        assert_eq!(c.windows, vec![w(0, 8), w(10, 30)]);
        c.add(w(7, 11));
        assert_eq!(c.windows, vec![w(0, 30)]);
    }

    #[test]
    fn uncovered_and_covered_partition_the_window() {
        let mut c = Coverage::default();
        c.add(w(2, 4));
        c.add(w(6, 8));
        assert_eq!(c.uncovered(w(0, 10)), vec![w(0, 2), w(4, 6), w(8, 10)]);
        assert_eq!(c.covered(w(0, 10)), vec![w(2, 4), w(6, 8)]);
        assert_eq!(c.uncovered(w(3, 7)), vec![w(4, 6)]);
        assert_eq!(c.covered(w(3, 7)), vec![w(3, 4), w(6, 7)]);
        assert_eq!(c.uncovered(w(2, 4)), vec![]);
        assert_eq!(c.uncovered(w(10, 12)), vec![w(10, 12)]);
        assert_eq!(Coverage::default().uncovered(w(0, 1)), vec![w(0, 1)]);
    }
}
