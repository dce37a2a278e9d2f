//! `GET /limits`: the org's limits, as a Developer Edition org lists them.
//! `DailyApiRequests` reflects the daily counter (this call included, as on
//! Salesforce), `DailyBulkApiBatches` the Bulk ingest uploads and
//! `DailyBulkV2QueryJobs` the Bulk query jobs of the day; `PermissionSets` counts
//! the org's permission sets.

use serde_json::{Map, Value as Json, json};

use crate::schema::Schema;
use crate::state::Org;
use crate::values::FieldValue;

/// Every limit of a Developer Edition org with its maximum.
const LIMITS: &[(&str, u64)] = &[
    ("AnalyticsExternalDataSizeMB", 40960),
    ("CdpAiInferenceApiMonthlyLimit", 500_000_000),
    ("ConcurrentAsyncGetReportInstances", 200),
    ("ConcurrentEinsteinDataInsightsStoryCreation", 5),
    ("ConcurrentEinsteinDiscoveryStoryCreation", 2),
    ("ConcurrentSyncReportRuns", 20),
    ("ContentDistBandwidthLimitMB", 51200),
    ("ContentDistViewLimit", 50000),
    ("ContentPublicationLimit", 2500),
    ("DailyAnalyticsDataflowJobExecutions", 60),
    ("DailyAnalyticsUploadedFilesSizeMB", 51200),
    ("DailyApexCursorLimit", 10000),
    ("DailyApexCursorRowsLimit", 100_000_000),
    ("DailyApexPCursorLimit", 200_000),
    ("DailyApiRequests", 15000),
    ("DailyAsyncApexExecutions", 250_000),
    ("DailyAsyncApexTests", 500),
    ("DailyBulkApiBatches", 15000),
    ("DailyBulkV2QueryFileStorageMB", 976_562),
    ("DailyBulkV2QueryJobs", 10000),
    ("DailyDeliveredPlatformEvents", 10000),
    ("DailyDurableGenericStreamingApiEvents", 10000),
    ("DailyDurableStreamingApiEvents", 10000),
    ("DailyEinsteinDataInsightsStoryCreation", 1000),
    ("DailyEinsteinDiscoveryOptimizationJobRuns", 25),
    ("DailyEinsteinDiscoveryPredictAPICalls", 50000),
    ("DailyEinsteinDiscoveryPredictionsByCDC", 500_000),
    ("DailyEinsteinDiscoveryStoryCreation", 100),
    ("DailyFunctionsApiCallLimit", 50000),
    ("DailyGenericStreamingApiEvents", 10000),
    ("DailyMetadataRetrievesWithDependencies", 25),
    ("DailyServiceEmailAgentforceCalls", 5000),
    ("DailyStandardVolumePlatformEvents", 10000),
    ("DailyStreamingApiEvents", 10000),
    ("DailyWorkflowEmails", 8040),
    ("DataStorageMB", 5),
    ("DurableStreamingApiConcurrentClients", 20),
    ("ExternalServicesActiveObjects", 3000),
    ("ExternalServicesActiveOperations", 3000),
    ("ExternalServicesObjectProperties", 400_000),
    ("ExternalServicesObjects", 10000),
    ("ExternalServicesOperations", 10000),
    ("ExternalServicesRegistrations", 700),
    ("FileStorageMB", 20),
    ("HourlyAsyncReportRuns", 1200),
    ("HourlyDashboardRefreshes", 200),
    ("HourlyDashboardResults", 5000),
    ("HourlyDashboardStatuses", 999_999_999),
    ("HourlyElevateAsyncReportRuns", 1200),
    ("HourlyElevateSyncReportRuns", 500),
    ("HourlyLongTermIdMapping", 100_000),
    ("HourlyManagedContentPublicRequests", 50000),
    ("HourlyODataCallout", 1000),
    ("HourlyPublishedPlatformEvents", 50000),
    ("HourlyPublishedStandardVolumePlatformEvents", 1000),
    ("HourlyShortTermIdMapping", 100_000),
    ("HourlySyncReportRuns", 500),
    ("HourlyTimeBasedWorkflow", 1000),
    ("MassEmail", 10),
    ("MaxContentDocumentsLimit", 30_000_000),
    ("MonthlyEinsteinDiscoveryStoryCreation", 500),
    ("Package2VersionCreates", 6),
    ("Package2VersionCreatesWithoutValidation", 500),
    ("PermissionSets", 1500),
    ("PlatformEventTriggersWithParallelProcessing", 5),
    ("PrivateConnectOutboundCalloutHourlyLimitMB", 0),
    ("PublishCallbackUsageInApex", 5_242_880),
    ("ScheduledFlowRunLimit", 250_000),
    ("ScheduledPathRunLimit", 250_000),
    ("SingleEmail", 15),
    ("StreamingApiConcurrentClients", 20),
];

/// The body of `GET /limits`.
pub fn limits(schema: &Schema, org: &mut Org) -> Json {
    let used = org.api_used_today();
    let limit = org.daily_api_limit;
    let (ingest_batches, query_jobs) = org.bulk.today_counts();
    let (custom_ps, all_ps) = permission_sets(schema, org);
    let mut m = Map::new();
    for (name, max) in LIMITS {
        let entry = match *name {
            "DailyApiRequests" => json!({"Max": limit, "Remaining": limit.saturating_sub(used)}),
            "DailyBulkApiBatches" => json!({"Max": max, "Remaining": max.saturating_sub(ingest_batches)}),
            "DailyBulkV2QueryJobs" => json!({"Max": max, "Remaining": max.saturating_sub(query_jobs)}),
            "PermissionSets" => json!({
                "Max": max,
                "Remaining": max.saturating_sub(all_ps),
                "CreateCustom": {"Max": 1000, "Remaining": 1000u64.saturating_sub(custom_ps)},
            }),
            _ => json!({"Max": max, "Remaining": max}),
        };
        m.insert((*name).to_owned(), entry);
    }
    Json::Object(m)
}

/// (custom permission sets, permission sets not owned by a profile).
fn permission_sets(schema: &Schema, org: &Org) -> (u64, u64) {
    let (Some(o), Some(def)) = (schema.object_index("PermissionSet"), schema.object("PermissionSet")) else {
        return (0, 0);
    };
    let (Some(owned), Some(custom)) = (def.field_index("IsOwnedByProfile"), def.field_index("IsCustom")) else {
        return (0, 0);
    };
    let Some(t) = org.store.table(o) else { return (0, 0) };
    let mut counts = (0, 0);
    for (_, r) in t.live() {
        if *r.get(owned) != FieldValue::Bool(true) {
            counts.1 += 1;
            if *r.get(custom) == FieldValue::Bool(true) {
                counts.0 += 1;
            }
        }
    }
    counts
}
