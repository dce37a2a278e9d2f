//! Splitting a window into shards from the LMS's counts (SPEC §6.2).
//!
//! A window of `n` records is cut into `ceil(n / shard_size)` equal time
//! ranges, each counted; a range still holding more than 1.5 × `shard_size`
//! (data is rarely spread evenly in time) is cut again the same way, down to
//! one millisecond (LMS timestamps are milliseconds: a range that cannot be
//! cut stays one shard, however large). Empty ranges are dropped and small
//! neighbours merged up to `shard_size`, so the shards are few and even.

use super::Window;
use crate::PortError;
use async_trait::async_trait;
use time::Duration;

/// Counts records in a window (the LMS's `/enrollments/count`).
#[async_trait]
pub trait Counter: Send + Sync {
    async fn count(&self, window: &Window) -> Result<u64, PortError>;
}

/// A planned shard: its range and the records counted in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub window: Window,
    pub count: u64,
}

/// The most count requests one plan may make (a guard against a counter
/// that answers inconsistently).
pub const MAX_COUNTS: usize = 10_000;

/// Plan `windows` (disjoint, in order) into pieces of about `shard_size`
/// records. Returns the pieces and the count requests made.
pub async fn plan(counter: &dyn Counter, windows: &[Window], shard_size: u64) -> Result<(Vec<Piece>, u64), PortError> {
    let shard_size = shard_size.max(1);
    let mut counts = 0usize;
    let mut pieces = Vec::new();
    for w in windows {
        let n = counter.count(w).await?;
        counts += 1;
        split(counter, Piece { window: *w, count: n }, shard_size, &mut counts, &mut pieces).await?;
    }
    Ok((merge(pieces, shard_size), counts as u64))
}

async fn split(
    counter: &dyn Counter,
    piece: Piece,
    shard_size: u64,
    counts: &mut usize,
    out: &mut Vec<Piece>,
) -> Result<(), PortError> {
    // An explicit stack keeps this async fn non-recursive.
    let mut stack = vec![piece];
    while let Some(p) = stack.pop() {
        if p.count == 0 {
            continue;
        }
        let span_ms = (p.window.until - p.window.since).whole_milliseconds();
        if p.count * 2 <= shard_size * 3 || span_ms <= 1 {
            out.push(p);
            continue;
        }
        let parts = p.count.div_ceil(shard_size).min(span_ms as u64).max(2);
        let bounds = cut(p.window, parts);
        let mut children = Vec::with_capacity(bounds.len());
        let mut sum = 0u64;
        for w in bounds {
            if *counts >= MAX_COUNTS {
                return Err(PortError::permanent(format!(
                    "planning needed more than {MAX_COUNTS} count requests; the LMS's counts look inconsistent"
                )));
            }
            let n = counter.count(&w).await?;
            *counts += 1;
            sum += n;
            children.push(Piece { window: w, count: n });
        }
        if sum != p.count {
            // Records changed while counting (an update moves a record to
            // now). The children's counts are the fresher ones; the shard
            // reads whatever is in its range when it runs.
            tracing::debug!(parent = p.count, children = sum, "counts moved while planning");
        }
        // Pushed in reverse so pieces come out in time order.
        stack.extend(children.into_iter().rev());
    }
    Ok(())
}

/// `parts` consecutive ranges of (nearly) equal length, on millisecond
/// boundaries, covering `w` exactly.
pub fn cut(w: Window, parts: u64) -> Vec<Window> {
    let span = (w.until - w.since).whole_milliseconds().max(1) as u128;
    let parts = u128::from(parts.max(1)).min(span);
    let mut out = Vec::with_capacity(parts as usize);
    let mut from = w.since;
    for i in 1..=parts {
        let until = if i == parts { w.until } else { w.since + Duration::milliseconds((span * i / parts) as i64) };
        if until > from {
            out.push(Window { since: from, until });
            from = until;
        }
    }
    out
}

/// Merge adjacent pieces while the sum stays within `shard_size`.
fn merge(pieces: Vec<Piece>, shard_size: u64) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        match out.last_mut() {
            Some(last) if last.window.until == p.window.since && last.count + p.count <= shard_size => {
                last.window.until = p.window.until;
                last.count += p.count;
            }
            _ => out.push(p),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    use time::OffsetDateTime;
    use time::macros::datetime;

    /// Records at the given instants.
    struct Points {
        at: Vec<OffsetDateTime>,
        calls: AtomicU64,
        log: Mutex<Vec<Window>>,
    }

    impl Points {
        fn new(mut at: Vec<OffsetDateTime>) -> Points {
            at.sort();
            Points { at, calls: AtomicU64::new(0), log: Mutex::new(Vec::new()) }
        }
    }

    #[async_trait]
    impl Counter for Points {
        async fn count(&self, w: &Window) -> Result<u64, PortError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.log.lock().unwrap().push(*w);
            Ok(self.at.iter().filter(|t| w.contains(**t)).count() as u64)
        }
    }

    fn t0() -> OffsetDateTime {
        datetime!(2026-01-01 00:00 UTC)
    }

    fn check_partition(pieces: &[Piece], window: Window, total: u64) {
        assert_eq!(pieces.iter().map(|p| p.count).sum::<u64>(), total);
        for pair in pieces.windows(2) {
            assert!(pair[0].window.until <= pair[1].window.since, "disjoint, in order");
        }
        for p in pieces {
            assert!(window.since <= p.window.since && p.window.until <= window.until);
        }
    }

    #[tokio::test]
    async fn even_data_gives_even_shards_with_one_count_per_shard() {
        // 100,000 records, one every 10 s.
        let at: Vec<_> = (0..100_000).map(|i| t0() + Duration::seconds(10 * i)).collect();
        let window = Window { since: t0(), until: t0() + Duration::seconds(1_000_000) };
        let c = Points::new(at);
        let (pieces, counts) = plan(&c, &[window], 10_000).await.unwrap();
        check_partition(&pieces, window, 100_000);
        assert_eq!(pieces.len(), 10);
        assert!(pieces.iter().all(|p| p.count == 10_000), "{pieces:?}");
        assert_eq!(counts, 11, "the window, then each tenth");
    }

    #[tokio::test]
    async fn skewed_data_is_cut_again_where_it_is_dense() {
        // 1,000 records spread over a day, then 30,000 within one minute.
        let mut at: Vec<_> = (0..1_000).map(|i| t0() + Duration::seconds(86 * i)).collect();
        let burst = t0() + Duration::hours(30);
        at.extend((0..30_000).map(|i| burst + Duration::milliseconds(2 * i)));
        let window = Window { since: t0(), until: t0() + Duration::hours(48) };
        let (pieces, _) = plan(&Points::new(at), &[window], 5_000).await.unwrap();
        check_partition(&pieces, window, 31_000);
        assert!(pieces.iter().all(|p| p.count <= 7_500), "{pieces:?}");
        assert!(pieces.len() <= 10, "neighbours merged: {}", pieces.len());
    }

    #[tokio::test]
    async fn records_in_one_millisecond_stay_one_shard_and_empty_windows_none() {
        let at = vec![t0() + Duration::milliseconds(5); 50];
        let window = Window { since: t0(), until: t0() + Duration::seconds(1) };
        let (pieces, _) = plan(&Points::new(at), &[window], 10).await.unwrap();
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].count, 50);
        assert_eq!(pieces[0].window.until - pieces[0].window.since, Duration::milliseconds(1));
        let (none, counts) = plan(&Points::new(vec![]), &[window], 10).await.unwrap();
        assert!(none.is_empty());
        assert_eq!(counts, 1);
    }

    #[test]
    fn cut_covers_the_window_exactly() {
        let w = Window { since: t0(), until: t0() + Duration::milliseconds(10) };
        let parts = cut(w, 3);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].since, w.since);
        assert_eq!(parts[2].until, w.until);
        assert_eq!(cut(w, 50).len(), 10, "never below a millisecond");
    }
}
