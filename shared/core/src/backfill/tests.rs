use super::*;
use time::macros::datetime;

fn backfill(expected: u64, shards: u32) -> Backfill {
    let t0 = datetime!(2026-01-01 00:00 UTC);
    Backfill {
        id: "bf-1".into(),
        tenant: TenantId::parse("acme").unwrap(),
        window: Window { since: t0 - time::Duration::days(30), until: t0 },
        origin: Origin::Admin,
        options: BackfillOptions { only_changed: false, bulk_threshold: 2000, shard_size: 10_000 },
        status: BackfillStatus::Running,
        kill_switch: KillSwitch::Off,
        expected,
        shards,
        skipped: vec![],
        budget: None,
        created_at: t0,
        updated_at: t0,
        finished_at: None,
        paused_at: None,
        reason: None,
    }
}

#[test]
fn progress_counts_done_shards_and_estimates_the_rest() {
    let b = backfill(40_000, 4);
    let t0 = b.created_at;
    let mut shards: Vec<Shard> = (0..4).map(|i| Shard::new(i, b.window, 10_000)).collect();
    for s in shards.iter_mut().take(1) {
        s.status = ShardStatus::Done;
        s.counts = ShardCounts {
            pages: 10,
            read: 10_000,
            created: 9_990,
            updated: 0,
            failed: 10,
            handed_over: 0,
            stale: 0,
            api_calls: 5,
        };
    }
    let p = progress(&b, &shards, t0 + time::Duration::seconds(60));
    assert_eq!((p.shards_done, p.shards_total), (1, 4));
    assert_eq!(p.written, 9_990);
    assert_eq!(p.counts.failed, 10);
    assert_eq!(p.percent, 25.0);
    assert_eq!(p.eta_seconds, Some(180));
    let mut done = b.clone();
    done.status = BackfillStatus::Completed;
    done.finished_at = Some(t0 + time::Duration::seconds(90));
    let p = progress(&done, &shards, t0 + time::Duration::seconds(500));
    assert_eq!((p.percent, p.eta_seconds, p.elapsed_seconds), (100.0, None, 90));
}

#[test]
fn windows_and_ids_are_checked() {
    let t0 = datetime!(2026-01-01 00:00 UTC);
    assert!(Window::new(t0, t0).unwrap_err().contains("empty"));
    assert!(Window::new(t0, t0 + time::Duration::seconds(1)).is_ok());
    let id = new_id(t0, "a1b2c3d4e5");
    assert_eq!(id, "bf-20260101T000000-a1b2c3d4");
    assert!(valid_id(&id));
    assert!(!valid_id("../x") && !valid_id(""));
}
