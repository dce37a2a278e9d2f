//! EventBridge schedules from the template, fired as asynchronous
//! invocations (two retries on error, as Lambda's async invoke does).

use crate::events::scheduled_event;
use crate::lambda::FunctionHost;
use crate::schedule::Schedule;
use crate::wiring::ScheduleSpec;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(
    spec: ScheduleSpec,
    host: Arc<FunctionHost>,
    region: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Ok(schedule) = Schedule::parse(&spec.expression) else { return };
    let start = time::OffsetDateTime::now_utc();
    loop {
        let now = time::OffsetDateTime::now_utc();
        let Some(next) = schedule.next_after(start, now) else { return };
        let wait = (next - now).max(time::Duration::ZERO);
        let wait = Duration::from_millis(wait.whole_milliseconds().max(0) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        let ev = scheduled_event(&spec, &region, time::OffsetDateTime::now_utc());
        let host = host.clone();
        let rule = spec.rule_name.clone();
        tokio::spawn(async move {
            for attempt in 0..3u64 {
                match host.invoke(Bytes::from(ev.to_string())).await {
                    Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(rule = %rule, attempt, error = %e, "scheduled invocation failed");
                        tokio::time::sleep(Duration::from_secs(1 + attempt)).await;
                    }
                }
            }
        });
    }
}
