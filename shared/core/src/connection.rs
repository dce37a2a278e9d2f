//! Access to a tenant's Salesforce connection: the stored token set, and a
//! refresh after `INVALID_SESSION_ID` that writes the rotated tokens back
//! *before* they are used (SPEC §3.3). The cross-instance lease that makes the
//! refresh single-flight arrives with the connection lifecycle work; this
//! version already re-reads the secret first, so an instance that lost a race
//! picks up the winner's tokens instead of replaying a rotated refresh token.

use crate::error::{Classify, ErrorClass, PortError};
use crate::ports::{SalesforceApi, SecretStore};
use crate::salesforce::{SalesforceError, TokenSet};
use crate::tenant::{SecretNames, Tenant};
use secrecy::ExposeSecret;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("tenant {0} has no Salesforce connection yet (no token secret)")]
    NotConnected(String),
    #[error("reading or writing the tenant's token secret failed")]
    Store(#[source] PortError),
    #[error("refreshing the Salesforce session failed")]
    Refresh(#[source] SalesforceError),
}

impl Classify for ConnectionError {
    fn class(&self) -> ErrorClass {
        match self {
            // Work waits for the connection rather than being dropped.
            ConnectionError::NotConnected(_) => ErrorClass::Retryable,
            ConnectionError::Store(e) => e.class,
            ConnectionError::Refresh(e) => e.class(),
        }
    }
}

pub struct Connections<'a> {
    pub secrets: &'a dyn SecretStore,
    pub salesforce: &'a dyn SalesforceApi,
    pub names: &'a SecretNames,
}

impl Connections<'_> {
    /// The stored token set.
    pub async fn current(&self, tenant: &Tenant) -> Result<TokenSet, ConnectionError> {
        let name = self.names.salesforce_tokens(&tenant.id);
        let secret = self
            .secrets
            .get_secret(&name)
            .await
            .map_err(ConnectionError::Store)?
            .ok_or_else(|| ConnectionError::NotConnected(tenant.id.to_string()))?;
        TokenSet::from_secret_json(&secret).map_err(ConnectionError::Store)
    }

    /// A fresh session after `expired` was refused with INVALID_SESSION_ID.
    pub async fn refreshed(&self, tenant: &Tenant, expired: &TokenSet) -> Result<TokenSet, ConnectionError> {
        let stored = self.current(tenant).await?;
        if stored.access_token.expose_secret() != expired.access_token.expose_secret() {
            // Another instance refreshed already.
            return Ok(stored);
        }
        let mut tokens = self
            .salesforce
            .refresh(tenant.salesforce.login_url(), &tenant.salesforce_client_id, &stored.refresh_token)
            .await
            .map_err(ConnectionError::Refresh)?;
        tokens.env = stored.env.clone();
        if tokens.user_id.is_none() {
            tokens.user_id = stored.user_id.clone();
        }
        if tokens.org_id.is_none() {
            tokens.org_id = stored.org_id.clone();
        }
        // Persist the rotated refresh token before anything uses the new
        // access token: losing it would orphan the connection.
        self.secrets
            .put_secret(&self.names.salesforce_tokens(&tenant.id), &tokens.to_secret_json())
            .await
            .map_err(ConnectionError::Store)?;
        Ok(tokens)
    }
}
