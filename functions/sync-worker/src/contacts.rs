//! Learner → Contact for one tenant's batch (SPEC §4.3): the I/O around the
//! pure decisions of `learnlink_core::matching`. Per batch at most: one LMS
//! read of the learners (chunks of 100), the department tree (cached per
//! instance), one DynamoDB read of what learnlink remembers, one Contact
//! query for the learners that memory does not settle, one Account query
//! when a placement rule names Accounts. Never a query per record.

use crate::Deps;
use learnlink_core::ErrorClass;
use learnlink_core::config::PlacementRule;
use learnlink_core::matching::{self, AccountIndex, ContactIndex, ContactRow, Decision, DepartmentTree, Known};
use learnlink_core::model::{Learner, TenantId};
use learnlink_core::ports::{LearnerLink, LmsConnection};
use learnlink_core::salesforce::{SalesforceError, Session};
use learnlink_core::tenant::Tenant;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an instance keeps a tenant's department tree.
const DEPARTMENTS_TTL: Duration = Duration::from_secs(300);

/// Per-instance cache of department trees.
#[derive(Default)]
pub struct Caches {
    departments: Mutex<HashMap<TenantId, (Instant, Arc<DepartmentTree>)>>,
}

/// The outcome of resolving a batch's learners.
pub struct Resolved {
    pub learners: HashMap<String, Learner>,
    pub links: HashMap<String, LearnerLink>,
    pub decisions: HashMap<String, Decision>,
    /// Learners that could not be resolved now: their records go back to the queue.
    pub failed: HashMap<String, (ErrorClass, String)>,
    /// Salesforce queries made (for the logs and the benches).
    pub queries: usize,
}

/// Failure of the whole resolution step.
pub struct StepError {
    pub class: ErrorClass,
    pub reason: String,
    /// Salesforce said the session expired: refresh and retry.
    pub session_expired: bool,
}

impl StepError {
    fn port(what: &str, e: &learnlink_core::PortError) -> Self {
        StepError { class: e.class, reason: format!("{what}: {}", e.chain()), session_expired: false }
    }

    fn salesforce(what: &str, e: &SalesforceError) -> Self {
        use learnlink_core::Classify;
        StepError {
            class: e.class(),
            reason: format!("{what}: {e}"),
            session_expired: matches!(e, SalesforceError::SessionExpired),
        }
    }
}

async fn lms_connection(deps: &Deps, tenant: &Tenant) -> Result<LmsConnection, StepError> {
    use learnlink_core::credentials::{CredentialError, lms_connection};
    lms_connection(deps.secrets.as_ref(), &deps.names, tenant).await.map_err(|e| match e {
        CredentialError::Store(e) => StepError::port("reading the LMS API key", &e),
        // The key may be set any moment (`learnlink config set`): keep the work in the queue.
        CredentialError::Missing(m) | CredentialError::NotConfigured(m) => {
            StepError { class: ErrorClass::Retryable, reason: m, session_expired: false }
        }
        CredentialError::Unreadable(m) => StepError { class: ErrorClass::Permanent, reason: m, session_expired: false },
    })
}

fn needs_departments(tenant: &Tenant) -> bool {
    let s = &tenant.sync;
    s.department_scope.is_some()
        || s.account_placement.as_ref().is_some_and(|p| p.rule == PlacementRule::DepartmentName)
}

async fn departments(deps: &Deps, tenant: &Tenant, lms: &LmsConnection) -> Result<Arc<DepartmentTree>, StepError> {
    if !needs_departments(tenant) {
        return Ok(Arc::new(DepartmentTree::default()));
    }
    {
        let cache = deps.caches.departments.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, tree)) = cache.get(&tenant.id)
            && at.elapsed() < DEPARTMENTS_TTL
        {
            return Ok(tree.clone());
        }
    }
    let list = deps.lms.departments(lms).await.map_err(|e| StepError::port("reading the LMS departments", &e))?;
    let tree = Arc::new(DepartmentTree::new(list));
    deps.caches
        .departments
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(tenant.id.clone(), (Instant::now(), tree.clone()));
    Ok(tree)
}

/// Resolve every learner of the batch. `learner_ids` are unique.
pub async fn resolve(
    deps: &Deps,
    tenant: &Tenant,
    session: &Session,
    learner_ids: &[String],
) -> Result<Resolved, StepError> {
    let lms = lms_connection(deps, tenant).await?;
    let learners: HashMap<String, Learner> = deps
        .lms
        .learners(&lms, learner_ids)
        .await
        .map_err(|e| StepError::port("reading learners from the LMS", &e))?
        .into_iter()
        .map(|l| (l.id.clone(), l))
        .collect();
    let mut failed = HashMap::new();
    for id in learner_ids {
        if !learners.contains_key(id) {
            // The webhook may run ahead of the LMS's API: retry later.
            failed
                .insert(id.clone(), (ErrorClass::Retryable, format!("learner {id} is not (yet) known to the LMS API")));
        }
    }
    let tree = departments(deps, tenant, &lms).await?;
    let known_ids: Vec<String> = learners.keys().cloned().collect();
    let links =
        deps.links.links(&tenant.id, &known_ids).await.map_err(|e| StepError::port("reading learner links", &e))?;
    let settings = &tenant.sync;

    // One Contact query (in as few chunks as fit) for what memory does not settle.
    let field = settings.matching_field();
    let mut lookup_ids: Vec<&str> = Vec::new();
    let mut lookup_values: Vec<String> = Vec::new();
    for l in learners.values() {
        if matching::needs_lookup(l, links.get(&l.id), settings, &tree) {
            lookup_ids.push(l.id.as_str());
            if l.active
                && let Some(v) = matching::match_value(l, field)
            {
                lookup_values.push(v);
            }
        }
    }
    lookup_ids.sort_unstable();
    lookup_values.sort_unstable();
    lookup_values.dedup();
    let values: Vec<&str> = lookup_values.iter().map(String::as_str).collect();
    let statements = matching::contact_queries(field, &lookup_ids, &values).map_err(|e| StepError {
        class: ErrorClass::Permanent,
        reason: format!("the matching field {field:?} cannot be queried: {e}"),
        session_expired: false,
    })?;
    let mut queries = 0;
    let mut rows = Vec::new();
    for q in &statements {
        queries += 1;
        let found =
            deps.salesforce.query(session, q).await.map_err(|e| StepError::salesforce("looking up Contacts", &e))?;
        rows.extend(found.iter().filter_map(|r| ContactRow::from_record(r, field)));
    }
    let contacts = ContactIndex::new(rows);

    // Accounts named by the placement rule, for Contacts that may be created or moved.
    let mut accounts = AccountIndex::default();
    if let Some(p) = &settings.account_placement
        && matches!(p.rule, PlacementRule::DepartmentName | PlacementRule::LearnerField)
        && (settings.create_contacts || settings.move_contacts)
    {
        let mut names: Vec<&str> =
            learners.values().filter_map(|l| matching::wanted_account_name(l, p, &tree)).collect();
        names.sort_unstable();
        names.dedup();
        let mut rows: Vec<(String, String)> = Vec::new();
        for q in matching::account_queries(&names).map_err(|e| StepError {
            class: ErrorClass::Permanent,
            reason: format!("an Account name cannot be queried: {e}"),
            session_expired: false,
        })? {
            queries += 1;
            let found = deps
                .salesforce
                .query(session, &q)
                .await
                .map_err(|e| StepError::salesforce("looking up Accounts", &e))?;
            for r in found {
                let get = |k: &str| r.get(k).and_then(serde_json::Value::as_str).map(str::to_string);
                if let (Some(id), Some(name)) = (get("Id"), get("Name")) {
                    rows.push((id, name));
                }
            }
        }
        accounts = AccountIndex::new(rows.iter().map(|(i, n)| (i.as_str(), n.as_str())));
    }

    let known = Known { settings, tree: &tree, contacts: &contacts, accounts: &accounts };
    let decisions: HashMap<String, Decision> =
        learners.values().map(|l| (l.id.clone(), matching::decide(l, links.get(&l.id), &known))).collect();
    Ok(Resolved { learners, links, decisions, failed, queries })
}

/// Unique learner ids, in first-seen order.
pub fn unique<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut seen = HashSet::new();
    ids.into_iter().filter(|i| seen.insert(*i)).map(str::to_string).collect()
}
