//! The org's daily API allowance and the share of it learnlink's jobs may
//! use (SPEC §6.6).
//!
//! Usage comes from the `Sforce-Limit-Info: api-usage=N/M` header that
//! Salesforce sends on every REST answer, or from `/limits`
//! (`DailyApiRequests {Max, Remaining}`). The rule: a job may use at most
//! `max_share_percent` (default 50 %) of the calls that remained when it
//! started, and never more than what actually remains; when the budget is
//! spent the job pauses and resumes in a later window instead of failing.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The org's API usage as of one response: `used` of `limit` calls in the
/// rolling 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiUsage {
    pub used: u64,
    pub limit: u64,
}

impl ApiUsage {
    /// Parse a `Sforce-Limit-Info` header value, e.g. `api-usage=25/5000`
    /// or `api-usage=25/5000; per-app-api-usage=17/250(appName=app)`.
    /// `None` when it carries no `api-usage` entry.
    pub fn parse_header(value: &str) -> Option<ApiUsage> {
        value.split([';', ',']).find_map(|part| {
            let (key, val) = part.trim().split_once('=')?;
            if key.trim() != "api-usage" {
                return None;
            }
            let (used, limit) = val.trim().split_once('/')?;
            let limit = limit.trim();
            // Tolerate a trailing annotation such as `(appName=…)`.
            let limit = limit.split(|c: char| !c.is_ascii_digit()).next().unwrap_or(limit);
            Some(ApiUsage { used: used.trim().parse().ok()?, limit: limit.parse().ok()? })
        })
    }

    /// Calls left today (0 when the org is over its limit).
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    pub fn from_limit(l: &Limit) -> ApiUsage {
        ApiUsage { used: l.max.saturating_sub(l.remaining), limit: l.max }
    }
}

/// One entry of `/limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    #[serde(rename = "Max")]
    pub max: u64,
    #[serde(rename = "Remaining")]
    pub remaining: u64,
}

/// The answer of `GET /services/data/vXX.X/limits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgLimits {
    pub daily_api_requests: Limit,
    pub daily_bulk_api_batches: Option<Limit>,
    pub daily_bulk_v2_query_jobs: Option<Limit>,
    pub daily_bulk_v2_query_file_storage_mb: Option<Limit>,
    /// Every top-level limit with `Max` and `Remaining`, by name.
    pub all: BTreeMap<String, Limit>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the /limits answer {0}")]
pub struct LimitsError(pub String);

impl OrgLimits {
    pub fn parse(body: &Value) -> Result<OrgLimits, LimitsError> {
        let obj = body.as_object().ok_or_else(|| LimitsError("is not a JSON object".into()))?;
        let mut all = BTreeMap::new();
        for (name, v) in obj {
            // Entries without numeric Max/Remaining (none today) are skipped.
            if let Ok(l) = serde_json::from_value::<Limit>(v.clone()) {
                all.insert(name.clone(), l);
            }
        }
        let daily_api_requests = *all
            .get("DailyApiRequests")
            .ok_or_else(|| LimitsError("has no DailyApiRequests {Max, Remaining}".into()))?;
        Ok(OrgLimits {
            daily_api_requests,
            daily_bulk_api_batches: all.get("DailyBulkApiBatches").copied(),
            daily_bulk_v2_query_jobs: all.get("DailyBulkV2QueryJobs").copied(),
            daily_bulk_v2_query_file_storage_mb: all.get("DailyBulkV2QueryFileStorageMB").copied(),
            all,
        })
    }

    pub fn api_usage(&self) -> ApiUsage {
        ApiUsage::from_limit(&self.daily_api_requests)
    }
}

/// A tenant's budget policy (SPEC §6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetPolicy {
    /// The share (percent, 0–100) of the calls remaining at the start of a
    /// job that the job may use.
    pub max_share_percent: u8,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        BudgetPolicy { max_share_percent: 50 }
    }
}

/// A job's API budget: fixed when the job (or its window) starts, consumed
/// as usage grows. Serializable, so a job can checkpoint it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiBudget {
    pub policy: BudgetPolicy,
    /// Usage when the window started.
    pub start: ApiUsage,
    /// The latest usage seen.
    pub current: ApiUsage,
}

impl ApiBudget {
    pub fn new(policy: BudgetPolicy, start: ApiUsage) -> Self {
        ApiBudget { policy, start, current: start }
    }

    /// The calls this job may make in the window: the policy's share of
    /// what remained at its start.
    pub fn allowance(&self) -> u64 {
        let pct = u64::from(self.policy.max_share_percent.min(100));
        // u128: no overflow for any limit.
        (u128::from(self.start.remaining()) * u128::from(pct) / 100) as u64
    }

    /// Calls made since the window started (by anyone in the org: the
    /// header counts them all, which errs on the safe side).
    pub fn spent(&self) -> u64 {
        self.current.used.saturating_sub(self.start.used)
    }

    /// Calls the job may still make: within its allowance and within what
    /// the org has left.
    pub fn remaining_for_jobs(&self) -> u64 {
        self.allowance().saturating_sub(self.spent()).min(self.current.remaining())
    }

    /// Whether `calls` more calls fit.
    pub fn allows(&self, calls: u64) -> bool {
        calls <= self.remaining_for_jobs()
    }

    /// Take in a newer usage figure. Usage that went down (the rolling
    /// window moved on, or a new day) starts a new window.
    pub fn observe(&mut self, usage: ApiUsage) {
        if usage.used < self.start.used || usage.limit != self.start.limit {
            *self = ApiBudget::new(self.policy, usage);
        } else if usage.used >= self.current.used {
            self.current = usage;
        }
    }

    /// Count calls made without a usage figure (e.g. a response without the
    /// header).
    pub fn record_calls(&mut self, calls: u64) {
        self.current.used = self.current.used.saturating_add(calls);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn header_forms() {
        assert_eq!(ApiUsage::parse_header("api-usage=895/15000"), Some(ApiUsage { used: 895, limit: 15000 }));
        assert_eq!(
            ApiUsage::parse_header("api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)"),
            Some(ApiUsage { used: 25, limit: 5000 })
        );
        assert_eq!(
            ApiUsage::parse_header("per-app-api-usage=17/250(appName=x); api-usage=110018/100000; api-bursts=1/750"),
            Some(ApiUsage { used: 110018, limit: 100000 })
        );
        assert_eq!(ApiUsage::parse_header("api-usage=110018/100000").map(|u| u.remaining()), Some(0));
        for bad in ["", "api-usage", "api-usage=x/5", "api-usage=5", "per-app-api-usage=1/2"] {
            assert_eq!(ApiUsage::parse_header(bad), None, "{bad}");
        }
    }

    #[test]
    fn limits_document() {
        let body = json!({
            "DailyApiRequests": {"Max": 15000, "Remaining": 14976},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 9999},
            "PermissionSets": {"Max": 1500, "Remaining": 1498, "CreateCustom": {"Max": 1000, "Remaining": 998}},
        });
        let l = OrgLimits::parse(&body).unwrap();
        assert_eq!(l.daily_api_requests, Limit { max: 15000, remaining: 14976 });
        assert_eq!(l.api_usage(), ApiUsage { used: 24, limit: 15000 });
        assert_eq!(l.daily_bulk_v2_query_jobs, Some(Limit { max: 10000, remaining: 9999 }));
        assert_eq!(l.daily_bulk_api_batches, None);
        assert_eq!(l.all.len(), 3);
        assert!(OrgLimits::parse(&json!({"X": {"Max": 1, "Remaining": 1}})).is_err());
        assert!(OrgLimits::parse(&json!([])).is_err());
    }

    #[test]
    fn half_of_the_remaining_calls_by_default() {
        let mut b = ApiBudget::new(BudgetPolicy::default(), ApiUsage { used: 5_000, limit: 15_000 });
        assert_eq!(b.allowance(), 5_000);
        assert_eq!(b.remaining_for_jobs(), 5_000);
        assert!(b.allows(5_000) && !b.allows(5_001));
        b.observe(ApiUsage { used: 9_000, limit: 15_000 });
        assert_eq!(b.spent(), 4_000);
        assert_eq!(b.remaining_for_jobs(), 1_000);
        b.record_calls(1_000);
        assert_eq!(b.remaining_for_jobs(), 0);
        assert!(!b.allows(1) && b.allows(0));
        // an older (smaller) figure arriving late does not rewind the budget
        b.observe(ApiUsage { used: 9_500, limit: 15_000 });
        assert_eq!(b.remaining_for_jobs(), 0);
        // the rolling window moved on: a new window starts
        b.observe(ApiUsage { used: 1_000, limit: 15_000 });
        assert_eq!(b.allowance(), 7_000);
    }

    #[test]
    fn never_more_than_the_org_has_left() {
        let mut b = ApiBudget::new(BudgetPolicy { max_share_percent: 100 }, ApiUsage { used: 0, limit: 100 });
        b.observe(ApiUsage { used: 90, limit: 100 });
        assert_eq!(b.remaining_for_jobs(), 10);
        let over = ApiBudget::new(BudgetPolicy::default(), ApiUsage { used: 120, limit: 100 });
        assert_eq!(over.remaining_for_jobs(), 0);
        let silly = ApiBudget::new(BudgetPolicy { max_share_percent: 250 }, ApiUsage { used: 0, limit: 10 });
        assert_eq!(silly.allowance(), 10);
    }
}
