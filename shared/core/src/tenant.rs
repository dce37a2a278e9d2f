//! A tenant's identity and the parts of its configuration this slice needs.
//! (The full versioned configuration document arrives with the admin API.)

use crate::model::TenantId;
use crate::webhook::Dialect;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where the tenant's Salesforce org logs in (SPEC §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SalesforceEnvironment {
    /// login.salesforce.com
    Production,
    /// test.salesforce.com
    Sandbox,
    /// A My Domain (or, on the local stack, the emulator's) base URL.
    MyDomain(String),
}

impl SalesforceEnvironment {
    pub fn login_url(&self) -> &str {
        match self {
            SalesforceEnvironment::Production => "https://login.salesforce.com",
            SalesforceEnvironment::Sandbox => "https://test.salesforce.com",
            SalesforceEnvironment::MyDomain(url) => url.trim_end_matches('/'),
        }
    }
}

/// One webhook source of a tenant: the name in `POST /webhooks/{tenant}/{source}`
/// and the dialect its LMS speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSource {
    pub name: String,
    pub dialect: Dialect,
}

/// A tenant as the functions see it: a projection of its current
/// configuration (see `crate::config` for the whole document).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub salesforce: SalesforceEnvironment,
    /// The connected app's consumer key used for token refresh.
    pub salesforce_client_id: String,
    pub sources: Vec<WebhookSource>,
    #[serde(default)]
    pub paused: bool,
    /// The LMS API's base URL (job 1 reads learners from it).
    #[serde(default)]
    pub lms_base_url: Option<String>,
    /// How learners become Contacts (SPEC §4.3).
    #[serde(default)]
    pub sync: crate::config::SyncSettings,
    /// The scheduled import (SPEC §5).
    #[serde(default)]
    pub import: crate::config::ImportSettings,
    /// Backfills (SPEC §6): shard size, Bulk threshold, kill switch.
    #[serde(default)]
    pub backfill: crate::config::BackfillSettings,
    /// The API budget governor (SPEC §6.6).
    #[serde(default)]
    pub api_budget: crate::config::ApiBudgetSettings,
    /// The configuration version this view comes from.
    #[serde(default)]
    pub version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Tenant {
    /// The view of a stored configuration document.
    pub fn from_stored(c: &crate::ports::StoredConfig) -> Result<Tenant, crate::PortError> {
        let config: crate::config::TenantConfig = serde_json::from_value(c.doc.clone()).map_err(|e| {
            crate::PortError::permanent(format!("the stored configuration of tenant {} is invalid: {e}", c.tenant))
        })?;
        Ok(Tenant::from_config(c.tenant.clone(), &config, c.version, c.created_at))
    }

    pub fn from_config(
        id: TenantId,
        config: &crate::config::TenantConfig,
        version: u64,
        created_at: OffsetDateTime,
    ) -> Tenant {
        Tenant {
            id,
            name: config.name.clone(),
            salesforce: config.salesforce.environment.clone(),
            salesforce_client_id: config.salesforce.client_id.clone(),
            sources: config
                .webhooks
                .sources
                .iter()
                .map(|s| WebhookSource { name: s.name.clone(), dialect: s.dialect })
                .collect(),
            paused: config.paused,
            lms_base_url: config.lms.as_ref().map(|l| l.base_url.trim_end_matches('/').to_string()),
            sync: config.sync.clone(),
            import: config.import.clone(),
            backfill: config.backfill.clone(),
            api_budget: config.api_budget.clone(),
            version,
            created_at,
        }
    }

    pub fn source(&self, name: &str) -> Option<&WebhookSource> {
        self.sources.iter().find(|s| s.name == name)
    }
}

/// Names of the per-tenant secrets in Secrets Manager. Every name starts with
/// the deployment's prefix (`learnlink/`), which is all the IAM policies grant.
#[derive(Debug, Clone)]
pub struct SecretNames {
    prefix: String,
}

impl SecretNames {
    pub fn new(prefix: impl Into<String>) -> Self {
        let mut prefix = prefix.into();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        SecretNames { prefix }
    }

    /// `{refresh_token, access_token, instance_url, ...}` (SPEC §3.2).
    pub fn salesforce_tokens(&self, tenant: &TenantId) -> String {
        format!("{}{}/salesforce", self.prefix, tenant)
    }

    /// `{"sources": {"<source>": ["<secret>", ...]}}` — up to two active per source.
    pub fn webhook_secrets(&self, tenant: &TenantId) -> String {
        format!("{}{}/webhooks", self.prefix, tenant)
    }

    /// `{"api_key": "..."}` — the LMS API key.
    pub fn lms_key(&self, tenant: &TenantId) -> String {
        format!("{}{}/lms", self.prefix, tenant)
    }

    /// `{"api_key": "...", "account_token": "..."}` — the HRIS credentials.
    pub fn hris_key(&self, tenant: &TenantId) -> String {
        format!("{}{}/hris", self.prefix, tenant)
    }
}

impl Default for SecretNames {
    fn default() -> Self {
        SecretNames::new("learnlink/")
    }
}

/// The webhook secrets document stored per tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WebhookSecrets {
    pub sources: std::collections::BTreeMap<String, Vec<String>>,
}

impl WebhookSecrets {
    pub fn for_source(&self, source: &str) -> &[String] {
        self.sources.get(source).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_share_the_prefix() {
        let n = SecretNames::new("learnlink");
        let t = TenantId::parse("acme").unwrap();
        assert_eq!(n.salesforce_tokens(&t), "learnlink/acme/salesforce");
        assert_eq!(n.webhook_secrets(&t), "learnlink/acme/webhooks");
    }

    #[test]
    fn environment_login_urls() {
        assert_eq!(SalesforceEnvironment::Production.login_url(), "https://login.salesforce.com");
        assert_eq!(SalesforceEnvironment::Sandbox.login_url(), "https://test.salesforce.com");
        let md = SalesforceEnvironment::MyDomain("https://acme.my.salesforce.com/".into());
        assert_eq!(md.login_url(), "https://acme.my.salesforce.com");
        let json = serde_json::to_string(&md).unwrap();
        assert_eq!(json, r#"{"my_domain":"https://acme.my.salesforce.com/"}"#);
    }
}
