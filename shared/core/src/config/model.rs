//! The typed configuration, mirroring the schema. Optional sections fall
//! back to the documented defaults through the accessor methods.

use super::Violation;
use crate::tenant::SalesforceEnvironment;
use crate::webhook::Dialect;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub name: String,
    #[serde(default)]
    pub paused: bool,
    pub salesforce: SalesforceSettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lms: Option<LmsSettings>,
    #[serde(default)]
    pub webhooks: Webhooks,
    #[serde(default)]
    pub sync: SyncSettings,
    #[serde(default)]
    pub import: ImportSettings,
    #[serde(default)]
    pub backfill: BackfillSettings,
    #[serde(default)]
    pub api_budget: ApiBudgetSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSettings {
    pub environment: SalesforceEnvironment,
    pub client_id: String,
}

/// The LMS's REST API (job 1 reads learners and departments from it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmsSettings {
    pub base_url: String,
    /// Write-only: moved to Secrets Manager by the admin API.
    #[serde(default, skip_serializing)]
    pub api_key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhooks {
    #[serde(default)]
    pub sources: Vec<SourceSettings>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    pub name: String,
    pub dialect: Dialect,
    /// Write-only; removed before the document is stored.
    #[serde(default, skip_serializing)]
    pub secrets: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterMode {
    Off,
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainFilter {
    pub mode: FilterMode,
    #[serde(default)]
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentScope {
    pub department_id: String,
    #[serde(default)]
    pub include_sub_departments: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlacementRule {
    None,
    DefaultAccount,
    DepartmentName,
    LearnerField,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountPlacement {
    pub rule: PlacementRule,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learner_field: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Transform {
    Trim,
    Lowercase,
    Uppercase,
    ValueTable {
        table: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default: Option<String>,
    },
    DateFormat {
        format: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub target: String,
    pub primary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncMappings {
    #[serde(default)]
    pub contact: Vec<Mapping>,
    #[serde(default)]
    pub enrollment: Vec<Mapping>,
    #[serde(default)]
    pub certification: Vec<Mapping>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_filter: Option<DomainFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department_scope: Option<DepartmentScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matching_field: Option<String>,
    #[serde(default)]
    pub create_contacts: bool,
    #[serde(default)]
    pub move_contacts: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_placement: Option<AccountPlacement>,
    #[serde(default)]
    pub mappings: SyncMappings,
}

impl SyncSettings {
    pub fn matching_field(&self) -> &str {
        self.matching_field.as_deref().unwrap_or("Email")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportSource {
    #[default]
    None,
    SalesforceUser,
    SalesforceContact,
    Hris,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    Equals,
    NotEquals,
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    IsBlank,
    IsNotBlank,
    In,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ConditionValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: String,
    pub operator: Operator,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<ConditionValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    All,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    Skip,
    Import,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRules {
    pub combine: Combine,
    pub action: RuleAction,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminationAction {
    #[default]
    None,
    DisableLogin,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSync {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default)]
    pub remove_missing: bool,
}

/// The unified HRIS API an `hris` import reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HrisSettings {
    pub base_url: String,
    /// Write-only: moved to Secrets Manager by the admin API.
    #[serde(default, skip_serializing)]
    pub api_key: Option<String>,
    /// Write-only: moved to Secrets Manager by the admin API.
    #[serde(default, skip_serializing)]
    pub account_token: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSettings {
    #[serde(default)]
    pub source: ImportSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hris: Option<HrisSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookback_minutes: Option<u32>,
    #[serde(default)]
    pub mappings: Vec<Mapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<ImportRules>,
    #[serde(default)]
    pub termination_action: TerminationAction,
    #[serde(default)]
    pub deactivate_missing: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_sync: Option<GroupSync>,
    #[serde(default)]
    pub welcome_email: bool,
}

impl ImportSettings {
    /// Daily at 03:00 UTC unless set.
    pub fn schedule(&self) -> &str {
        self.schedule.as_deref().unwrap_or("cron(0 3 * * ? *)")
    }
    pub fn lookback_minutes(&self) -> u32 {
        self.lookback_minutes.unwrap_or(5)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk_threshold: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_switch: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relink_overlap_minutes: Option<u64>,
}

impl BackfillSettings {
    pub fn bulk_threshold(&self) -> u64 {
        self.bulk_threshold.unwrap_or(2_000)
    }
    pub fn shard_size(&self) -> u64 {
        self.shard_size.unwrap_or(10_000)
    }
    pub fn kill_switch(&self) -> bool {
        self.kill_switch.unwrap_or(true)
    }
    pub fn relink_overlap_minutes(&self) -> u64 {
        self.relink_overlap_minutes.unwrap_or(60)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiBudgetSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_share_of_remaining: Option<f64>,
}

impl ApiBudgetSettings {
    pub fn max_share_of_remaining(&self) -> f64 {
        self.max_share_of_remaining.unwrap_or(0.5)
    }

    /// The governor's policy (SPEC §6.6): the share as a whole percent, 1–100.
    pub fn policy(&self) -> crate::budget::BudgetPolicy {
        let pct = (self.max_share_of_remaining() * 100.0).round().clamp(1.0, 100.0) as u8;
        crate::budget::BudgetPolicy { max_share_percent: pct }
    }
}

impl TenantConfig {
    /// The rules the schema cannot express.
    pub fn check(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, s) in self.webhooks.sources.iter().enumerate() {
            if !seen.insert(s.name.as_str()) {
                v.push(Violation::new(
                    format!("/webhooks/sources/{i}/name"),
                    format!("duplicate source name {:?}", s.name),
                ));
            }
        }
        if let Some(p) = &self.sync.account_placement {
            match p.rule {
                PlacementRule::DefaultAccount if p.default_account_id.is_none() => v.push(Violation::new(
                    "/sync/account_placement/default_account_id",
                    "the default_account rule needs default_account_id",
                )),
                PlacementRule::LearnerField if p.learner_field.is_none() => v.push(Violation::new(
                    "/sync/account_placement/learner_field",
                    "the learner_field rule needs learner_field",
                )),
                _ => {}
            }
        }
        if let Some(f) = &self.sync.domain_filter
            && f.mode != FilterMode::Off
            && f.domains.is_empty()
        {
            v.push(Violation::new("/sync/domain_filter/domains", "an allow or deny filter needs at least one domain"));
        }
        if let Some(s) = &self.import.schedule
            && let Err(e) = crate::schedule::parse(s)
        {
            v.push(Violation::new("/import/schedule", e));
        }
        if let Some(rules) = &self.import.rules {
            for (i, c) in rules.conditions.iter().enumerate() {
                let path = format!("/import/rules/conditions/{i}/value");
                match (c.operator, &c.value) {
                    (Operator::IsBlank | Operator::IsNotBlank, Some(_)) => {
                        v.push(Violation::new(path, "is_blank and is_not_blank take no value"))
                    }
                    (Operator::IsBlank | Operator::IsNotBlank, None) => {}
                    (Operator::In, Some(ConditionValue::Many(_))) => {}
                    (Operator::In, _) => v.push(Violation::new(path, "the in operator needs a list of values")),
                    (_, Some(ConditionValue::One(_))) => {}
                    (_, Some(ConditionValue::Many(_))) => {
                        v.push(Violation::new(path, "only the in operator takes a list of values"))
                    }
                    (_, None) => v.push(Violation::new(path, "this operator needs a value")),
                }
            }
        }
        if let Some(g) = &self.import.group_sync
            && g.enabled
            && g.field.is_none()
        {
            v.push(Violation::new("/import/group_sync/field", "group sync needs the source field holding the groups"));
        }
        v
    }

    pub fn source(&self, name: &str) -> Option<&SourceSettings> {
        self.webhooks.sources.iter().find(|s| s.name == name)
    }
}
