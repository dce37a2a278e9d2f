//! Scheduled import (SPEC §5), pure: the incremental cursor and the query it
//! asks for, the source record as the mapping sees it, mapping with
//! primary/secondary fields and transforms, import rules, lifecycle
//! (termination, deactivation), loop prevention, and the action for each
//! person. [`engine`] runs one page of an import over the ports.

pub mod engine;
pub mod mapping;
pub mod rules;

#[cfg(test)]
mod tests;

use crate::config::{ImportSettings, ImportSource, TerminationAction};
use crate::ports::LearnerUpsert;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

pub use mapping::{MappedPerson, map_person};
pub use rules::rules_decide;

/// Where the import stands in its source: the `(SystemModstamp, Id)` (or
/// HRIS `(modified_at, id)`) of the last record processed. Compared as
/// (time, id); records at the same time are ordered by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub id: String,
}

impl Checkpoint {
    /// Whether `(at, id)` is at or before this checkpoint (already processed).
    pub fn covers(&self, at: OffsetDateTime, id: &str) -> bool {
        (at, id) <= (self.at, self.id.as_str())
    }

    /// The later of two checkpoints.
    pub fn max(a: Option<Checkpoint>, b: Option<Checkpoint>) -> Option<Checkpoint> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if (b.at, &b.id) > (a.at, &a.id) { b } else { a }),
            (a, None) => a,
            (None, b) => b,
        }
    }
}

/// A Salesforce (`2026-11-23T10:00:00.000+0000`) or RFC 3339 timestamp.
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    let fixed;
    let s = match s.len().checked_sub(5).and_then(|i| s.get(i..).map(|tail| (i, tail))) {
        Some((i, tail))
            if (tail.starts_with('+') || tail.starts_with('-')) && tail[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            fixed = format!("{}{}:{}", &s[..i], &tail[..3], &tail[3..]);
            fixed.as_str()
        }
        _ => s,
    };
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// A date (`2026-11-23`) or the date of a timestamp.
pub fn parse_date(s: &str) -> Option<time::Date> {
    let s = s.trim();
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.get(..10).unwrap_or(s), &fmt).ok()
}

/// The source of a tenant's import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    SalesforceUser,
    SalesforceContact,
    Hris,
}

impl Source {
    pub fn of(settings: &ImportSettings) -> Option<Source> {
        match settings.source {
            ImportSource::None => None,
            ImportSource::SalesforceUser => Some(Source::SalesforceUser),
            ImportSource::SalesforceContact => Some(Source::SalesforceContact),
            ImportSource::Hris => Some(Source::Hris),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Source::SalesforceUser => "User",
            Source::SalesforceContact => "Contact",
            Source::Hris => "employees",
        }
    }

    fn id_field(self) -> &'static str {
        if self == Source::Hris { "id" } else { "Id" }
    }

    fn stamp_field(self) -> &'static str {
        if self == Source::Hris { "modified_at" } else { "SystemModstamp" }
    }

    /// The mappings used when a tenant configures none for a target.
    pub fn default_mappings(self) -> Vec<crate::config::Mapping> {
        let m = |target: &str, primary: &str, secondary: Option<&str>| crate::config::Mapping {
            target: target.into(),
            primary: primary.into(),
            secondary: secondary.map(Into::into),
            transforms: vec![crate::config::Transform::Trim],
        };
        match self {
            Source::SalesforceUser => vec![
                m("email", "Email", None),
                m("first_name", "FirstName", None),
                m("last_name", "LastName", None),
                m("fields.title", "Title", None),
                m("fields.department", "Department", None),
            ],
            Source::SalesforceContact => vec![
                m("email", "Email", None),
                m("first_name", "FirstName", None),
                m("last_name", "LastName", None),
                m("fields.title", "Title", None),
            ],
            Source::Hris => vec![
                m("email", "work_email", Some("personal_email")),
                m("first_name", "first_name", None),
                m("last_name", "last_name", None),
                m("fields.title", "job_title", None),
                m("fields.department", "department", None),
            ],
        }
    }
}

/// The mappings in force: the tenant's, then the defaults for targets it
/// does not map.
pub fn effective_mappings(settings: &ImportSettings, source: Source) -> Vec<crate::config::Mapping> {
    let mut out = settings.mappings.clone();
    for d in source.default_mappings() {
        if !out.iter().any(|m| m.target == d.target) {
            out.push(d);
        }
    }
    out
}

/// The Salesforce fields an import reads: the system fields, every mapped
/// primary/secondary field, the rules' fields and the group field.
pub fn soql_fields(settings: &ImportSettings, source: Source) -> Result<Vec<String>, crate::soql::SoqlError> {
    let mut fields: Vec<String> = vec!["Id".into(), "SystemModstamp".into(), "LastModifiedById".into()];
    if source == Source::SalesforceUser {
        fields.push("IsActive".into());
    }
    if source == Source::SalesforceContact && settings.deactivate_missing {
        fields.push("IsDeleted".into());
    }
    let mut add = |f: &str| -> Result<(), crate::soql::SoqlError> {
        crate::soql::identifier(f)?;
        if !fields.iter().any(|x| x.eq_ignore_ascii_case(f)) {
            fields.push(f.to_string());
        }
        Ok(())
    };
    for m in effective_mappings(settings, source) {
        add(&m.primary)?;
        if let Some(s) = &m.secondary {
            add(s)?;
        }
    }
    if let Some(r) = &settings.rules {
        for c in &r.conditions {
            add(&c.field)?;
        }
    }
    if let Some(g) = settings.group_sync.as_ref().filter(|g| g.enabled)
        && let Some(f) = &g.field
    {
        add(f)?;
    }
    Ok(fields)
}

/// The first query of a run: everything at or after the checkpoint minus
/// the lookback (a late commit with an older `SystemModstamp` is caught),
/// truncated to the second (SOQL literals have none), ordered by
/// `(SystemModstamp, Id)`. `None`: the whole object.
pub fn run_query(
    settings: &ImportSettings,
    source: Source,
    checkpoint: Option<&Checkpoint>,
) -> Result<String, crate::soql::SoqlError> {
    let since = checkpoint.map(|c| c.at - time::Duration::minutes(i64::from(settings.lookback_minutes())));
    query_from(settings, source, since)
}

/// A query that resumes a run after `checkpoint` when its query locator is
/// gone: `>=` the checkpoint's second; [`after`] drops what it covers.
pub fn resume_query(
    settings: &ImportSettings,
    source: Source,
    checkpoint: &Checkpoint,
) -> Result<String, crate::soql::SoqlError> {
    query_from(settings, source, Some(checkpoint.at))
}

fn query_from(
    settings: &ImportSettings,
    source: Source,
    since: Option<OffsetDateTime>,
) -> Result<String, crate::soql::SoqlError> {
    let fields = soql_fields(settings, source)?.join(", ");
    let object = source.name();
    let filter = match since {
        Some(t) => format!(" WHERE SystemModstamp >= {}", crate::soql::datetime_literal(t)),
        None => String::new(),
    };
    Ok(format!("SELECT {fields} FROM {object}{filter} ORDER BY SystemModstamp ASC, Id ASC"))
}

/// The HRIS `modified_after` of a run's first page (exclusive, so one
/// millisecond earlier than the lookback's start).
pub fn hris_modified_after(settings: &ImportSettings, checkpoint: Option<&Checkpoint>) -> Option<String> {
    checkpoint.map(|c| {
        let t =
            c.at - time::Duration::minutes(i64::from(settings.lookback_minutes())) - time::Duration::milliseconds(1);
        t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
    })
}

/// The records of a page not covered by `after` (the Id tie-break of a
/// resumed query).
pub fn after<'a>(
    source: Source,
    records: &'a [Map<String, Value>],
    after: Option<&Checkpoint>,
) -> Vec<&'a Map<String, Value>> {
    records
        .iter()
        .filter(|r| match (after, position(source, r)) {
            (Some(c), Some((at, id))) => !c.covers(at, id),
            _ => true,
        })
        .collect()
}

/// A record's `(time, id)` in its source's order.
pub fn position(source: Source, record: &Map<String, Value>) -> Option<(OffsetDateTime, &str)> {
    let id = record.get(source.id_field())?.as_str()?;
    let at = parse_timestamp(record.get(source.stamp_field())?.as_str()?)?;
    Some((at, id))
}

/// The checkpoint after a page: its last record with a readable position.
pub fn page_checkpoint(source: Source, records: &[Map<String, Value>]) -> Option<Checkpoint> {
    records.iter().filter_map(|r| position(source, r)).max().map(|(at, id)| Checkpoint { at, id: id.to_string() })
}

/// A field's value as text: strings as they are, numbers and booleans
/// printed, `null`/absent → `None`. `A.B` reads a parent relationship
/// (`{"Account": {"Name": …}}`); a list (HRIS groups) is joined with `;`.
pub fn field_text(record: &Map<String, Value>, path: &str) -> Option<String> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut v = get_ci(record, first)?;
    for p in parts {
        v = match v {
            Value::Object(m) => get_ci(m, p)?,
            _ => return None,
        };
    }
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect();
            Some(parts.join(";"))
        }
        Value::Object(_) => None,
    }
}

fn get_ci<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// Why a person is not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SkipReason {
    /// Last modified by the integration user (learnlink's own write).
    LoopPrevention,
    /// An import rule said so.
    Rule { rule: String },
    /// No usable email after mapping.
    NoEmail { detail: String },
    /// Inactive or deleted in the source, and deactivation is off.
    Inactive,
    /// The record carries no id.
    NoId,
}

impl SkipReason {
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::LoopPrevention => "loop_prevention",
            SkipReason::Rule { .. } => "import_rule",
            SkipReason::NoEmail { .. } => "no_email",
            SkipReason::Inactive => "inactive_in_source",
            SkipReason::NoId => "no_id",
        }
    }

    pub fn sentence(&self) -> String {
        match self {
            SkipReason::LoopPrevention => "last modified by the integration user (learnlink's own change)".into(),
            SkipReason::Rule { rule } => format!("import rule: {rule}"),
            SkipReason::NoEmail { detail } => format!("no usable email: {detail}"),
            SkipReason::Inactive => {
                "inactive or deleted in the source (deactivation of missing learners is off)".into()
            }
            SkipReason::NoId => "the record has no id".into(),
        }
    }
}

/// Why a learner is deactivated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeactivateReason {
    /// Deleted in the source.
    Deleted,
    /// Inactive in the source (User.IsActive false, HRIS INACTIVE).
    Inactive,
    /// Termination date reached; the configured action disables login.
    Terminated,
}

impl DeactivateReason {
    pub fn code(self) -> &'static str {
        match self {
            DeactivateReason::Deleted => "deleted_in_source",
            DeactivateReason::Inactive => "inactive_in_source",
            DeactivateReason::Terminated => "terminated",
        }
    }
}

/// What the import does with one person of the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PersonAction {
    /// Create or update the learner (the LMS matches by external id, then email).
    Import {
        learner: LearnerUpsert,
    },
    /// Deactivate the learner with this external id (login disabled, records kept).
    Deactivate {
        external_id: String,
        reason: DeactivateReason,
    },
    Skip {
        external_id: Option<String>,
        skip: SkipReason,
    },
}

/// What a person's evaluation needs besides the settings.
#[derive(Debug, Clone, Copy)]
pub struct PlanContext<'a> {
    pub source: Source,
    /// The integration user's id (Salesforce sources): its changes are ignored.
    pub integration_user: Option<&'a str>,
    pub today: time::Date,
    /// HRIS group id → name.
    pub group_names: Option<&'a std::collections::BTreeMap<String, String>>,
}

/// The action for one source record (SPEC §5.2–§5.5), in this order: no id
/// → skip; loop prevention; deleted / inactive → deactivate (or skip when
/// deactivation is off); termination date reached with `disable_login` →
/// deactivate; import rules; mapping (no usable email → skip); import.
pub fn plan_person(settings: &ImportSettings, ctx: &PlanContext<'_>, record: &Map<String, Value>) -> PersonAction {
    let Some(external_id) = field_text(record, ctx.source.id_field()).filter(|s| !s.trim().is_empty()) else {
        return PersonAction::Skip { external_id: None, skip: SkipReason::NoId };
    };
    let skip = |skip: SkipReason| PersonAction::Skip { external_id: Some(external_id.clone()), skip };
    if ctx.source != Source::Hris
        && let (Some(user), Some(by)) = (ctx.integration_user, field_text(record, "LastModifiedById"))
        && same_sf_id(user, &by)
    {
        return skip(SkipReason::LoopPrevention);
    }
    let flag = |f: &str| field_text(record, f).map(|v| v.eq_ignore_ascii_case("true"));
    let (deleted, inactive) = match ctx.source {
        Source::SalesforceUser => (flag("IsDeleted") == Some(true), flag("IsActive") == Some(false)),
        Source::SalesforceContact => (flag("IsDeleted") == Some(true), false),
        Source::Hris => (
            flag("remote_was_deleted") == Some(true),
            field_text(record, "employment_status").is_some_and(|s| s.eq_ignore_ascii_case("INACTIVE")),
        ),
    };
    if deleted || inactive {
        let reason = if deleted { DeactivateReason::Deleted } else { DeactivateReason::Inactive };
        return if settings.deactivate_missing {
            PersonAction::Deactivate { external_id, reason }
        } else {
            skip(SkipReason::Inactive)
        };
    }
    let mappings = effective_mappings(settings, ctx.source);
    let termination = field_text(record, "termination_date").or_else(|| {
        mappings.iter().find(|m| m.target == "termination_date").and_then(|m| mapping::mapped_value(record, m))
    });
    if settings.termination_action == TerminationAction::DisableLogin
        && termination.as_deref().and_then(parse_date).is_some_and(|d| d <= ctx.today)
    {
        return PersonAction::Deactivate { external_id, reason: DeactivateReason::Terminated };
    }
    if let Some(rules) = &settings.rules
        && let Some(why) = rules_decide(rules, record)
    {
        return skip(SkipReason::Rule { rule: why });
    }
    let mapped = match map_person(&mappings, record) {
        Ok(m) => m,
        Err(detail) => return skip(SkipReason::NoEmail { detail }),
    };
    let groups = settings.group_sync.as_ref().filter(|g| g.enabled).map(|g| {
        let raw = match (&g.field, ctx.source) {
            (Some(f), _) => field_text(record, f),
            (None, Source::Hris) => field_text(record, "groups"),
            (None, _) => None,
        };
        let mut names: Vec<String> = raw
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match ctx.group_names {
                Some(names) if ctx.source == Source::Hris => names.get(s).cloned().unwrap_or_else(|| s.to_string()),
                _ => s.to_string(),
            })
            .collect();
        names.sort();
        names.dedup();
        names
    });
    PersonAction::Import {
        learner: LearnerUpsert {
            external_id,
            email: mapped.email,
            first_name: mapped.first_name,
            last_name: mapped.last_name,
            department_id: mapped.department_id,
            fields: mapped.fields,
            active: true,
            groups,
        },
    }
}

/// Salesforce ids compare by their first 15 characters (the 18-character
/// form adds a case-safe suffix).
pub fn same_sf_id(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    a.get(..15).zip(b.get(..15)).is_some_and(|(x, y)| x == y) || a == b
}

/// Counts of one import run (or dry run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCounts {
    pub pages: u64,
    pub seen: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub deactivated: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Dry runs: what would be imported (created or updated).
    pub would_import: u64,
}

impl ImportCounts {
    pub fn add(&mut self, o: &ImportCounts) {
        self.pages += o.pages;
        self.seen += o.seen;
        self.created += o.created;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.deactivated += o.deactivated;
        self.skipped += o.skipped;
        self.failed += o.failed;
        self.would_import += o.would_import;
    }
}
