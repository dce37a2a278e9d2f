//! Full calls under load (SPEC §4.4: up to 1,000 records per Composite call).
//!
//! A worker batch is whatever the queue held when the poller gathered it, so
//! under a busy stream its size is arbitrary: 1,400 records cost two calls,
//! the second 40 % empty. [`defer_to_fill`] picks the messages of one
//! tenant's batch that wait for the next batch instead, so that the calls
//! that go out are full:
//!
//! - a light batch (under a quarter of a call) is written at once: the
//!   stream is slow and latency comes first;
//! - a message seen for the second time or more is never deferred (at most
//!   one receive of its `maxReceiveCount` is spent waiting, and nothing waits
//!   twice), and neither is a message whose receive count is unknown;
//! - the redelivered messages are written, with first deliveries filling the
//!   calls they need; with none, as many whole calls as the batch fills;
//! - the first deliveries that do not fit wait, in order; a later, smaller
//!   one may still fill a gap.
//!
//! Pure: record counts in, one flag per message out.

use crate::sync::{MAX_COLLECTIONS_PER_COMPOSITE, MAX_RECORDS_PER_COLLECTION};

/// Records one Composite call carries.
pub const RECORDS_PER_CALL: usize = MAX_RECORDS_PER_COLLECTION * MAX_COLLECTIONS_PER_COMPOSITE;

/// Below this many records a batch is written at once.
pub const LIGHT_BATCH: usize = RECORDS_PER_CALL / 4;

/// One message of a batch: how many records it carries, and whether this is
/// its first delivery (`ApproximateReceiveCount` = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub records: usize,
    pub first_delivery: bool,
}

/// Which messages wait for the next batch (`true`), in the order given.
pub fn defer_to_fill(loads: &[Load]) -> Vec<bool> {
    let total: usize = loads.iter().map(|l| l.records).sum();
    if total < LIGHT_BATCH {
        return vec![false; loads.len()];
    }
    let must: usize = loads.iter().filter(|l| !l.first_delivery).map(|l| l.records).sum();
    let capacity = if must > 0 {
        must.div_ceil(RECORDS_PER_CALL) * RECORDS_PER_CALL
    } else {
        (total / RECORDS_PER_CALL) * RECORDS_PER_CALL
    };
    let mut used = must;
    loads
        .iter()
        .map(|l| {
            if !l.first_delivery || used + l.records <= capacity {
                used += if l.first_delivery { l.records } else { 0 };
                false
            } else {
                true
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fresh(records: usize) -> Load {
        Load { records, first_delivery: true }
    }

    fn again(records: usize) -> Load {
        Load { records, first_delivery: false }
    }

    fn written(loads: &[Load], deferred: &[bool]) -> usize {
        loads.iter().zip(deferred).filter(|(_, d)| !**d).map(|(l, _)| l.records).sum()
    }

    #[test]
    fn a_light_batch_is_written_at_once() {
        let loads = vec![fresh(25); 9]; // 225 < 250
        assert_eq!(defer_to_fill(&loads), vec![false; 9]);
        assert_eq!(defer_to_fill(&[]), Vec::<bool>::new());
    }

    #[test]
    fn a_busy_batch_writes_whole_calls_and_the_rest_waits() {
        let loads = vec![fresh(25); 58]; // 1,450 records
        let d = defer_to_fill(&loads);
        assert_eq!(written(&loads, &d), 1_000);
        assert_eq!(d.iter().filter(|x| **x).count(), 18);
        // The first ones go, the last ones wait.
        assert!(!d[0] && d[57]);
    }

    #[test]
    fn a_busy_batch_under_one_call_waits_whole() {
        let loads = vec![fresh(25); 24]; // 600 records, first deliveries only
        assert_eq!(defer_to_fill(&loads), vec![true; 24]);
    }

    #[test]
    fn redelivered_messages_are_written_and_first_deliveries_fill_their_call() {
        let mut loads = vec![again(25); 10]; // 250 that waited once
        loads.extend(vec![fresh(25); 40]); // 1,000 new
        let d = defer_to_fill(&loads);
        assert!(d[..10].iter().all(|x| !x), "nothing waits twice");
        assert_eq!(written(&loads, &d), 1_000);
        // All redelivered, more than a call: the next whole call.
        let loads = vec![again(25); 48]; // 1,200
        assert_eq!(defer_to_fill(&loads), vec![false; 48]);
    }

    #[test]
    fn a_later_smaller_message_may_fill_a_gap() {
        let loads = vec![fresh(900), fresh(200), fresh(100), fresh(300)]; // 1,500
        assert_eq!(defer_to_fill(&loads), vec![false, true, false, true]);
    }

    proptest! {
        /// Never defers a redelivery; what is written fills whole calls
        /// unless redeliveries need a partial one or nothing waits; a light
        /// batch waits for nothing.
        #[test]
        fn invariants(loads in prop::collection::vec((1usize..400, any::<bool>()), 0..80)) {
            let loads: Vec<Load> = loads.into_iter().map(|(records, first_delivery)| Load { records, first_delivery }).collect();
            let d = defer_to_fill(&loads);
            prop_assert_eq!(d.len(), loads.len());
            for (l, deferred) in loads.iter().zip(&d) {
                prop_assert!(!*deferred || l.first_delivery, "a redelivery was deferred");
            }
            let total: usize = loads.iter().map(|l| l.records).sum();
            let w = written(&loads, &d);
            if total < LIGHT_BATCH {
                prop_assert_eq!(w, total);
            }
            let must: usize = loads.iter().filter(|l| !l.first_delivery).map(|l| l.records).sum();
            let calls_written = w.div_ceil(RECORDS_PER_CALL);
            let calls_needed = must.div_ceil(RECORDS_PER_CALL).max(total / RECORDS_PER_CALL);
            if total >= LIGHT_BATCH {
                prop_assert!(calls_written <= calls_needed.max(1), "{} calls for {} records", calls_written, w);
            }
        }
    }
}
