//! The LMS and HRIS connections of a tenant: the base URL from its
//! configuration, the credentials from Secrets Manager (written there by the
//! admin API; never in the configuration document). One place for every
//! function that talks to the LMS or the HRIS.

use crate::error::{ErrorClass, PortError};
use crate::ports::{HrisConnection, LmsConnection, SecretStore};
use crate::tenant::{SecretNames, Tenant};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// Why a connection cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The configuration does not name the system (`lms.base_url`, `import.hris`).
    #[error("{0}")]
    NotConfigured(String),
    /// The credentials were never stored.
    #[error("{0}")]
    Missing(String),
    /// The stored credentials are not the JSON expected.
    #[error("{0}")]
    Unreadable(String),
    /// Secrets Manager failed.
    #[error("reading the credentials: {}", .0.chain())]
    Store(PortError),
}

impl CredentialError {
    /// A stable code for logs and API answers.
    pub fn code(&self) -> &'static str {
        match self {
            CredentialError::NotConfigured(_) => "not_configured",
            CredentialError::Missing(_) => "missing_secret",
            CredentialError::Unreadable(_) => "unreadable_secret",
            CredentialError::Store(_) => "secret_store",
        }
    }

    /// The store's own class; configuration problems are permanent.
    pub fn class(&self) -> ErrorClass {
        match self {
            CredentialError::Store(e) => e.class,
            _ => ErrorClass::Permanent,
        }
    }
}

async fn secret_json(
    secrets: &dyn SecretStore,
    name: &str,
    what: &str,
    tenant: &Tenant,
    hint: &str,
) -> Result<Value, CredentialError> {
    let secret = secrets.get_secret(name).await.map_err(CredentialError::Store)?;
    let Some(secret) = secret else {
        return Err(CredentialError::Missing(format!("tenant {} has no {what}: {hint}", tenant.id)));
    };
    serde_json::from_str(secret.expose_secret())
        .map_err(|e| CredentialError::Unreadable(format!("the stored {what} of {} is unreadable: {e}", tenant.id)))
}

fn text(v: &Value, key: &str) -> SecretString {
    SecretString::from(v.get(key).and_then(Value::as_str).unwrap_or_default().to_string())
}

/// The tenant's LMS: `lms.base_url` and the key stored as `learnlink/<tenant>/lms`.
pub async fn lms_connection(
    secrets: &dyn SecretStore,
    names: &SecretNames,
    tenant: &Tenant,
) -> Result<LmsConnection, CredentialError> {
    let Some(base) = tenant.lms_base_url.as_deref() else {
        return Err(CredentialError::NotConfigured(format!("tenant {} has no lms.base_url", tenant.id)));
    };
    let v = secret_json(
        secrets,
        &names.lms_key(&tenant.id),
        "LMS API key",
        tenant,
        "set lms.api_key with `learnlink config set`",
    )
    .await?;
    Ok(LmsConnection { base_url: base.to_string(), api_key: text(&v, "api_key") })
}

/// The tenant's HRIS: `import.hris.base_url` and the credentials stored as
/// `learnlink/<tenant>/hris`.
pub async fn hris_connection(
    secrets: &dyn SecretStore,
    names: &SecretNames,
    tenant: &Tenant,
) -> Result<HrisConnection, CredentialError> {
    let Some(h) = tenant.import.hris.as_ref() else {
        return Err(CredentialError::NotConfigured(format!(
            "tenant {} imports from an HRIS but has no import.hris.base_url",
            tenant.id
        )));
    };
    let v = secret_json(
        secrets,
        &names.hris_key(&tenant.id),
        "HRIS credentials",
        tenant,
        "set import.hris.api_key and import.hris.account_token with `learnlink config set`",
    )
    .await?;
    Ok(HrisConnection {
        base_url: h.base_url.trim_end_matches('/').to_string(),
        api_key: text(&v, "api_key"),
        account_token: text(&v, "account_token"),
    })
}
