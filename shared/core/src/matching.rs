//! Learner → Contact (SPEC §4.3), pure: which learners are synced at all
//! (department scope, domain filter, active), which Contact each one is, and
//! which Account a Contact belongs in. The worker feeds it the LMS's learners
//! and departments, what learnlink remembers of earlier links, and one query
//! result per batch; it never asks Salesforce anything per record.

use crate::config::{AccountPlacement, DepartmentScope, DomainFilter, FilterMode, PlacementRule, SyncSettings};
use crate::model::{Department, Learner};
use crate::ports::{LearnerLink, LinkState};
use crate::soql;
use std::collections::{HashMap, HashSet};

/// The department tree of an LMS.
#[derive(Debug, Clone, Default)]
pub struct DepartmentTree {
    by_id: HashMap<String, Department>,
}

impl DepartmentTree {
    pub fn new(departments: impl IntoIterator<Item = Department>) -> Self {
        DepartmentTree { by_id: departments.into_iter().map(|d| (d.id.clone(), d)).collect() }
    }

    pub fn name(&self, id: &str) -> Option<&str> {
        self.by_id.get(id).map(|d| d.name.as_str())
    }

    /// Whether `department` is `root`, or (with `deep`) below it. A parent
    /// cycle in the LMS's data ends the walk instead of looping.
    pub fn within(&self, department: &str, root: &str, deep: bool) -> bool {
        if department == root {
            return true;
        }
        if !deep {
            return false;
        }
        let mut seen = HashSet::new();
        let mut at = department;
        while let Some(parent) = self.by_id.get(at).and_then(|d| d.parent_id.as_deref()) {
            if parent == root {
                return true;
            }
            if !seen.insert(parent) {
                return false;
            }
            at = parent;
        }
        false
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// Why a learner's records are not synced, before any Contact is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Sync,
    OutOfScope,
    DomainFiltered,
}

impl Gate {
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Gate::Sync => None,
            Gate::OutOfScope => Some("out_of_scope"),
            Gate::DomainFiltered => Some("domain_filtered"),
        }
    }
}

/// The domain of an email address, trimmed and lowercased.
pub fn email_domain(email: &str) -> Option<String> {
    let e = email.trim();
    let (_, domain) = e.rsplit_once('@')?;
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

/// Whether `domain` is `listed` or one of its subdomains (`eu.acme.com` is
/// under `acme.com`).
fn domain_matches(domain: &str, listed: &str) -> bool {
    let listed = listed.trim().trim_start_matches('@').to_ascii_lowercase();
    domain == listed || domain.strip_suffix(listed.as_str()).is_some_and(|p| p.ends_with('.'))
}

fn domain_allowed(email: &str, filter: &DomainFilter) -> bool {
    let Some(domain) = email_domain(email) else {
        // No domain: only a filter that is off lets it through.
        return filter.mode == FilterMode::Off;
    };
    let listed = filter.domains.iter().any(|d| domain_matches(&domain, d));
    match filter.mode {
        FilterMode::Off => true,
        FilterMode::Allow => listed,
        FilterMode::Deny => !listed,
    }
}

fn in_scope(learner: &Learner, scope: &DepartmentScope, tree: &DepartmentTree) -> bool {
    learner
        .department_id
        .as_deref()
        .is_some_and(|d| tree.within(d, &scope.department_id, scope.include_sub_departments))
}

/// Department scope first, then the domain filter (SPEC §4.3 order).
pub fn gate(learner: &Learner, settings: &SyncSettings, tree: &DepartmentTree) -> Gate {
    if let Some(scope) = &settings.department_scope
        && !in_scope(learner, scope, tree)
    {
        return Gate::OutOfScope;
    }
    if let Some(filter) = &settings.domain_filter
        && !domain_allowed(&learner.email, filter)
    {
        return Gate::DomainFiltered;
    }
    Gate::Sync
}

/// The learner's value compared with the matching field (SPEC §4.3: the
/// Contact field named by `matching_field`, default `Email`, is compared
/// with the learner's email).
pub fn match_value(learner: &Learner, _field: &str) -> Option<String> {
    let v = normalize(&learner.email);
    (!v.is_empty()).then_some(v)
}

/// A learner field by its configuration path: `email`, `first_name`,
/// `last_name`, `department_id`, `id`, or `fields.<name>` (a profile field;
/// a bare unknown name is read from the profile fields too).
pub fn learner_field<'a>(learner: &'a Learner, path: &str) -> Option<&'a str> {
    match path {
        "id" => Some(learner.id.as_str()),
        "email" => Some(learner.email.as_str()),
        "first_name" => Some(learner.first_name.as_str()),
        "last_name" => Some(learner.last_name.as_str()),
        "department_id" => learner.department_id.as_deref(),
        other => {
            let name = other.strip_prefix("fields.").unwrap_or(other);
            learner.fields.get(name).map(String::as_str)
        }
    }
}

/// Matching compares trimmed, case-insensitive values.
pub fn normalize(v: &str) -> String {
    v.trim().to_lowercase()
}

/// A Contact as the batch's query returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRow {
    pub id: String,
    pub account_id: Option<String>,
    pub learner_id: Option<String>,
    pub match_value: Option<String>,
}

impl ContactRow {
    /// Read a row of [`contact_queries`]' answer.
    pub fn from_record(r: &serde_json::Map<String, serde_json::Value>, field: &str) -> Option<ContactRow> {
        let s = |k: &str| r.get(k).and_then(serde_json::Value::as_str).map(str::to_string);
        Some(ContactRow {
            id: s("Id")?,
            account_id: s("AccountId"),
            learner_id: s(crate::sync::CONTACT_EXTERNAL_ID).filter(|v| !v.is_empty()),
            match_value: s(field),
        })
    }
}

/// The Contacts of one batch, indexed for resolution.
#[derive(Debug, Default)]
pub struct ContactIndex {
    by_learner: HashMap<String, Vec<ContactRow>>,
    by_value: HashMap<String, Vec<ContactRow>>,
}

impl ContactIndex {
    pub fn new(rows: impl IntoIterator<Item = ContactRow>) -> Self {
        let mut idx = ContactIndex::default();
        let mut seen = HashSet::new();
        for r in rows {
            if !seen.insert(r.id.clone()) {
                continue; // the same Contact from two query chunks
            }
            if let Some(l) = &r.learner_id {
                idx.by_learner.entry(l.clone()).or_default().push(r.clone());
            }
            if let Some(v) = &r.match_value {
                let v = normalize(v);
                if !v.is_empty() {
                    idx.by_value.entry(v).or_default().push(r);
                }
            }
        }
        idx
    }
}

/// Which Contact a learner's records go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// `LMS_Learner_Id__c` already carries the learner id.
    Linked { contact_id: String, account_id: Option<String> },
    /// One Contact matched: link it (set `LMS_Learner_Id__c`).
    Link { contact_id: String, account_id: Option<String> },
    /// Several matched: the review queue decides.
    Ambiguous { value: String, candidates: Vec<String> },
    /// None matched and `create_contacts` is on.
    Create,
    /// None matched.
    NoContact,
}

/// Resolve an active, in-scope learner against the batch's Contacts.
/// A Contact already linked to another learner is never taken over.
pub fn resolve(learner: &Learner, field: &str, create_contacts: bool, contacts: &ContactIndex) -> Resolution {
    if let Some(linked) = contacts.by_learner.get(&learner.id)
        && let Some(first) = linked.first()
    {
        // Salesforce enforces uniqueness of the external id; should two ever
        // carry it, the first (query order) wins deterministically.
        return Resolution::Linked { contact_id: first.id.clone(), account_id: first.account_id.clone() };
    }
    let Some(value) = match_value(learner, field) else {
        return if create_contacts { Resolution::Create } else { Resolution::NoContact };
    };
    let free: Vec<&ContactRow> = contacts
        .by_value
        .get(&value)
        .map(|rows| rows.iter().filter(|r| r.learner_id.is_none()).collect())
        .unwrap_or_default();
    match free.as_slice() {
        [] if create_contacts => Resolution::Create,
        [] => Resolution::NoContact,
        [one] => Resolution::Link { contact_id: one.id.clone(), account_id: one.account_id.clone() },
        many => {
            let mut candidates: Vec<String> = many.iter().map(|r| r.id.clone()).collect();
            candidates.sort();
            Resolution::Ambiguous { value, candidates }
        }
    }
}

/// Accounts by name, as the batch's Account query returned them.
#[derive(Debug, Default, Clone)]
pub struct AccountIndex {
    by_name: HashMap<String, Vec<String>>,
}

impl AccountIndex {
    pub fn new<'a>(rows: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
        for (id, name) in rows {
            let ids = by_name.entry(normalize(name)).or_default();
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        }
        AccountIndex { by_name }
    }

    fn unique(&self, name: &str) -> Option<&str> {
        match self.by_name.get(&normalize(name)).map(Vec::as_slice) {
            Some([one]) => Some(one.as_str()),
            _ => None,
        }
    }
}

/// Where a Contact belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// No placement rule: created Contacts have no Account, linked ones stay.
    Unplaced,
    Account(String),
    /// The rule names no existing Account and there is no default.
    NoAccount {
        wanted: Option<String>,
    },
}

/// The Account name a placement rule asks for, if the rule looks one up.
pub fn wanted_account_name<'a>(
    learner: &'a Learner,
    placement: &AccountPlacement,
    tree: &'a DepartmentTree,
) -> Option<&'a str> {
    let name = match placement.rule {
        PlacementRule::None | PlacementRule::DefaultAccount => None,
        PlacementRule::DepartmentName => learner.department_id.as_deref().and_then(|d| tree.name(d)),
        PlacementRule::LearnerField => placement.learner_field.as_deref().and_then(|f| learner_field(learner, f)),
    };
    name.map(str::trim).filter(|n| !n.is_empty())
}

/// The three placement rules of SPEC §4.3. learnlink never creates an
/// Account: with no such Account it falls back to the default, else
/// `NoAccount`.
pub fn place(
    learner: &Learner,
    placement: Option<&AccountPlacement>,
    tree: &DepartmentTree,
    accounts: &AccountIndex,
) -> Placement {
    let Some(p) = placement else { return Placement::Unplaced };
    let default = p.default_account_id.as_deref().filter(|d| !d.is_empty());
    let fallback = |wanted: Option<&str>| match default {
        Some(d) => Placement::Account(d.to_string()),
        None => Placement::NoAccount { wanted: wanted.map(str::to_string) },
    };
    match p.rule {
        PlacementRule::None => Placement::Unplaced,
        PlacementRule::DefaultAccount => fallback(None),
        PlacementRule::DepartmentName | PlacementRule::LearnerField => {
            let wanted = wanted_account_name(learner, p, tree);
            match wanted.and_then(|n| accounts.unique(n)) {
                Some(id) => Placement::Account(id.to_string()),
                None => fallback(wanted),
            }
        }
    }
}

/// What to do for one learner of a batch — the plan's unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Records go to this learner's Contact; `contact_write` (if any) goes first.
    Sync { contact_id: Option<String>, contact_write: Option<ContactWrite> },
    /// Not synced, with the activity-log reason.
    Skip { reason: String, message: String },
    /// Held in the review queue.
    Review { value: String, candidates: Vec<String> },
    /// Deactivated: unlink (if linked) and skip its records.
    Unlink { contact_id: Option<String> },
}

/// A write to a Contact, ahead of the learner's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactWrite {
    /// Set `LMS_Learner_Id__c` (and move to an Account).
    Link { contact_id: String, account_id: Option<String> },
    /// Move a linked Contact to another Account.
    Move { contact_id: String, account_id: String },
    /// Create the Contact, by external id (idempotent on redelivery).
    Create { account_id: Option<String> },
    /// Clear `LMS_Learner_Id__c`; the Contact stays.
    Unlink { contact_id: String },
}

/// What the worker knows when deciding for one learner.
pub struct Known<'a> {
    pub settings: &'a SyncSettings,
    pub tree: &'a DepartmentTree,
    pub contacts: &'a ContactIndex,
    pub accounts: &'a AccountIndex,
}

/// Whether a learner needs the batch's Contact query: true unless what
/// learnlink remembers settles it.
pub fn needs_lookup(
    learner: &Learner,
    link: Option<&LearnerLink>,
    settings: &SyncSettings,
    tree: &DepartmentTree,
) -> bool {
    if !learner.active {
        return link.is_none_or(|l| l.state == LinkState::Unlinked);
    }
    if gate(learner, settings, tree) != Gate::Sync {
        return false;
    }
    !matches!(link.map(|l| l.state), Some(LinkState::Linked | LinkState::Chosen))
}

/// Decide for one learner (SPEC §4.3, in its order).
pub fn decide(learner: &Learner, link: Option<&LearnerLink>, k: &Known<'_>) -> Decision {
    if !learner.active {
        // Unlink what learnlink linked, or what the query found linked.
        let remembered = link.filter(|l| l.state == LinkState::Linked).map(|l| l.contact_id.clone());
        let found = k.contacts.by_learner.get(&learner.id).and_then(|r| r.first()).map(|r| r.id.clone());
        return Decision::Unlink { contact_id: remembered.or(found) };
    }
    if let Some(reason) = gate(learner, k.settings, k.tree).reason() {
        let message = match reason {
            "out_of_scope" => format!(
                "department {} is outside the synced department scope",
                learner.department_id.as_deref().unwrap_or("(none)")
            ),
            _ => format!(
                "the email domain {} is filtered out",
                email_domain(&learner.email).unwrap_or_else(|| "(none)".into())
            ),
        };
        return Decision::Skip { reason: reason.into(), message };
    }
    let placement = || place(learner, k.settings.account_placement.as_ref(), k.tree, k.accounts);
    let moving = k.settings.move_contacts;
    // What learnlink remembers settles linked and admin-chosen Contacts.
    let resolution = match link.map(|l| l.state) {
        Some(LinkState::Linked) => {
            let l = link.map(|l| (l.contact_id.clone(), l.account_id.clone()));
            let (contact_id, account_id) = l.unwrap_or_default();
            Resolution::Linked { contact_id, account_id }
        }
        Some(LinkState::Chosen) => {
            let contact_id = link.map(|l| l.contact_id.clone()).unwrap_or_default();
            Resolution::Link { contact_id, account_id: None }
        }
        _ => resolve(learner, k.settings.matching_field(), k.settings.create_contacts, k.contacts),
    };
    match resolution {
        Resolution::Linked { contact_id, account_id } => {
            let write = match (moving, placement()) {
                (true, Placement::Account(a)) if account_id.as_deref() != Some(a.as_str()) => {
                    Some(ContactWrite::Move { contact_id: contact_id.clone(), account_id: a })
                }
                _ => None,
            };
            Decision::Sync { contact_id: Some(contact_id), contact_write: write }
        }
        Resolution::Link { contact_id, account_id } => {
            let account = match (moving, placement()) {
                (true, Placement::Account(a)) if account_id.as_deref() != Some(a.as_str()) => Some(a),
                _ => None,
            };
            Decision::Sync {
                contact_id: Some(contact_id.clone()),
                contact_write: Some(ContactWrite::Link { contact_id, account_id: account }),
            }
        }
        Resolution::Ambiguous { value, candidates } => Decision::Review { value, candidates },
        Resolution::Create => match placement() {
            Placement::NoAccount { wanted } => Decision::Skip {
                reason: "no_account".into(),
                message: match wanted {
                    Some(n) => format!(
                        "no single Account named {n:?} and no default Account; learnlink never creates Accounts"
                    ),
                    None => "the placement rule names no Account and there is no default Account".into(),
                },
            },
            Placement::Account(a) => {
                Decision::Sync { contact_id: None, contact_write: Some(ContactWrite::Create { account_id: Some(a) }) }
            }
            Placement::Unplaced => {
                Decision::Sync { contact_id: None, contact_write: Some(ContactWrite::Create { account_id: None }) }
            }
        },
        Resolution::NoContact => Decision::Skip {
            reason: "no_contact".into(),
            message: format!(
                "no Contact has {} = {:?} and creating Contacts is off",
                k.settings.matching_field(),
                match_value(learner, k.settings.matching_field()).unwrap_or_default()
            ),
        },
    }
}

/// Longest SOQL statement learnlink sends through `GET /query` (the URL
/// stays well under Salesforce's 16,384-byte limit once encoded).
pub const MAX_SOQL_CHARS: usize = 6_000;

/// The batch's Contact lookups: Contacts linked to these learners, or whose
/// matching field carries one of these values — as few statements as fit.
pub fn contact_queries(field: &str, learner_ids: &[&str], values: &[&str]) -> Result<Vec<String>, soql::SoqlError> {
    let field = soql::identifier(field)?;
    let ext = crate::sync::CONTACT_EXTERNAL_ID;
    let head = if field.eq_ignore_ascii_case("Id") || field.eq_ignore_ascii_case(ext) {
        format!("SELECT Id, AccountId, {ext} FROM Contact WHERE ")
    } else {
        format!("SELECT Id, AccountId, {ext}, {field} FROM Contact WHERE ")
    };
    let mut out = Vec::new();
    let (mut ids, mut vals): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    // The head, both `<name> IN (…)` parts and the ` OR ` between them
    // (values count with their commas); at least 64 beyond the head.
    let start = head.len() + (ext.len() + field.len() + " IN ()".len() * 2 + " OR ".len()).max(64);
    let mut len = start;
    let flush = |ids: &mut Vec<&str>, vals: &mut Vec<&str>, out: &mut Vec<String>| -> Result<(), soql::SoqlError> {
        let mut parts = Vec::new();
        if !ids.is_empty() {
            parts.push(format!("{ext} IN {}", soql::in_list(ids.iter().copied())?));
        }
        if !vals.is_empty() {
            parts.push(format!("{field} IN {}", soql::in_list(vals.iter().copied())?));
        }
        if !parts.is_empty() {
            out.push(format!("{head}{}", parts.join(" OR ")));
        }
        ids.clear();
        vals.clear();
        Ok(())
    };
    let mut items: Vec<(bool, &str)> = learner_ids.iter().map(|i| (true, *i)).collect();
    items.extend(values.iter().map(|v| (false, *v)));
    for (is_id, v) in items {
        let cost = soql::quote(v).len() + 1;
        if len + cost > MAX_SOQL_CHARS && !(ids.is_empty() && vals.is_empty()) {
            flush(&mut ids, &mut vals, &mut out)?;
            len = start;
        }
        if is_id {
            ids.push(v)
        } else {
            vals.push(v)
        }
        len += cost;
    }
    flush(&mut ids, &mut vals, &mut out)?;
    Ok(out)
}

/// The batch's Account lookups by name.
pub fn account_queries(names: &[&str]) -> Result<Vec<String>, soql::SoqlError> {
    let head = "SELECT Id, Name FROM Account WHERE Name IN ";
    let mut out = Vec::new();
    let mut chunk: Vec<&str> = Vec::new();
    // The statement's length: head, `(`, each value and its comma, `)` in
    // place of the last comma.
    let start = head.len() + 1;
    let mut len = start;
    for n in names {
        let cost = soql::quote(n).len() + 1;
        if len + cost > MAX_SOQL_CHARS && !chunk.is_empty() {
            out.push(format!("{head}{}", soql::in_list(chunk.drain(..))?));
            len = start;
        }
        chunk.push(n);
        len += cost;
    }
    if !chunk.is_empty() {
        out.push(format!("{head}{}", soql::in_list(chunk)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
