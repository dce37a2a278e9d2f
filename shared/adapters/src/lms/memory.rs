//! In-memory fake of the LMS API with the client's semantics: learners by id
//! (unknown ids absent, each at most once, in the order asked), every
//! department; counts calls, and plays outages and a wrong API key.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use learnlink_core::model::{Department, Learner};
use learnlink_core::ports::{LmsApi, LmsConnection};
use learnlink_core::{ErrorClass, PortError};
use secrecy::ExposeSecret;

#[derive(Default)]
struct Inner {
    learners: BTreeMap<String, Learner>,
    departments: Vec<Department>,
    /// When set, only this API key is accepted (others: permanent, as a 401).
    api_key: Option<String>,
    /// When set, every call fails with this class.
    outage: Option<ErrorClass>,
    learner_calls: usize,
    department_calls: usize,
    requested_ids: Vec<String>,
}

#[derive(Default)]
pub struct MemoryLms {
    inner: Mutex<Inner>,
}

impl MemoryLms {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces every learner.
    pub fn set_learners(&self, learners: impl IntoIterator<Item = Learner>) {
        self.lock().learners = learners.into_iter().map(|l| (l.id.clone(), l)).collect();
    }

    /// Adds or replaces one learner (by id).
    pub fn put_learner(&self, learner: Learner) {
        self.lock().learners.insert(learner.id.clone(), learner);
    }

    pub fn remove_learner(&self, id: &str) -> Option<Learner> {
        self.lock().learners.remove(id)
    }

    pub fn learner(&self, id: &str) -> Option<Learner> {
        self.lock().learners.get(id).cloned()
    }

    /// Replaces the department tree.
    pub fn set_departments(&self, departments: impl IntoIterator<Item = Department>) {
        self.lock().departments = departments.into_iter().collect();
    }

    /// Accept only this API key (`None`: any key).
    pub fn require_api_key(&self, key: Option<&str>) {
        self.lock().api_key = key.map(str::to_string);
    }

    /// Every call fails with this class (`None`: the outage is over).
    pub fn set_outage(&self, class: Option<ErrorClass>) {
        self.lock().outage = class;
    }

    /// Calls of [`LmsApi::learners`] (failed ones included).
    pub fn learner_calls(&self) -> usize {
        self.lock().learner_calls
    }

    /// Calls of [`LmsApi::departments`] (failed ones included).
    pub fn department_calls(&self) -> usize {
        self.lock().department_calls
    }

    /// Every id asked for, call after call, as asked.
    pub fn requested_ids(&self) -> Vec<String> {
        self.lock().requested_ids.clone()
    }

    fn check(inner: &Inner, lms: &LmsConnection) -> Result<(), PortError> {
        if let Some(class) = inner.outage {
            return Err(PortError::new(class, format!("LMS {}: scripted outage ({class})", lms.base_url)));
        }
        match &inner.api_key {
            Some(key) if key != lms.api_key.expose_secret() => Err(PortError::permanent(format!(
                "LMS {}: answered 401 Unauthorized (check the LMS API key configured for this tenant)",
                lms.base_url
            ))),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl LmsApi for MemoryLms {
    async fn learners(&self, lms: &LmsConnection, ids: &[String]) -> Result<Vec<Learner>, PortError> {
        let mut g = self.lock();
        g.learner_calls += 1;
        g.requested_ids.extend(ids.iter().cloned());
        Self::check(&g, lms)?;
        let mut seen = HashSet::new();
        Ok(ids.iter().filter(|id| seen.insert(id.as_str())).filter_map(|id| g.learners.get(id).cloned()).collect())
    }

    async fn departments(&self, lms: &LmsConnection) -> Result<Vec<Department>, PortError> {
        let mut g = self.lock();
        g.department_calls += 1;
        Self::check(&g, lms)?;
        Ok(g.departments.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn learner(id: &str) -> Learner {
        Learner {
            id: id.into(),
            email: format!("{id}@example.com"),
            first_name: "A".into(),
            last_name: "B".into(),
            department_id: None,
            fields: BTreeMap::new(),
            active: true,
            updated_at: time::macros::datetime!(2026-05-12 10:00 UTC),
        }
    }

    fn conn(key: &str) -> LmsConnection {
        LmsConnection { base_url: "http://lms.test".into(), api_key: SecretString::from(key) }
    }

    #[tokio::test]
    async fn answers_like_the_client() {
        let lms = MemoryLms::new();
        lms.set_learners([learner("L1"), learner("L2"), learner("L3")]);
        lms.set_departments([Department { id: "D1".into(), name: "Sales".into(), parent_id: None }]);
        let ids: Vec<String> = ["L3", "nope", "L1", "L3"].map(String::from).to_vec();
        let got = lms.learners(&conn("k"), &ids).await.unwrap();
        assert_eq!(got.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["L3", "L1"]);
        assert_eq!(lms.departments(&conn("k")).await.unwrap().len(), 1);
        assert_eq!((lms.learner_calls(), lms.department_calls()), (1, 1));
        assert_eq!(lms.requested_ids(), ids);
        lms.put_learner(Learner { active: false, ..learner("L1") });
        assert!(!lms.learner("L1").unwrap().active);
        assert!(lms.remove_learner("L2").is_some());
    }

    #[tokio::test]
    async fn outages_and_a_wrong_key_fail_in_the_taxonomy() {
        let lms = MemoryLms::new();
        lms.require_api_key(Some("right"));
        let e = lms.departments(&conn("wrong")).await.unwrap_err();
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(!e.message.contains("wrong"));
        assert!(lms.departments(&conn("right")).await.is_ok());
        lms.set_outage(Some(ErrorClass::Throttled));
        assert_eq!(lms.learners(&conn("right"), &[]).await.unwrap_err().class, ErrorClass::Throttled);
        lms.set_outage(None);
        assert!(lms.learners(&conn("right"), &[]).await.unwrap().is_empty());
        assert_eq!(lms.learner_calls(), 2);
    }
}
