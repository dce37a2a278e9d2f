//! Secrets Manager adapter. Values are `SecretString`s end to end; no value
//! ever reaches an error message or a log line.

pub mod memory;

use crate::aws::classify_sdk;
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use learnlink_core::PortError;
use learnlink_core::ports::SecretStore;
use secrecy::{ExposeSecret, SecretString};

const PERMANENT: &[&str] = &["AccessDeniedException", "InvalidParameterException", "DecryptionFailure"];

#[derive(Clone)]
pub struct SecretsManagerStore {
    client: Client,
}

impl SecretsManagerStore {
    pub fn new(client: Client) -> Self {
        SecretsManagerStore { client }
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn get_secret(&self, name: &str) -> Result<Option<SecretString>, PortError> {
        match self.client.get_secret_value().secret_id(name).send().await {
            Ok(out) => Ok(out.secret_string.map(SecretString::from)),
            Err(e) => {
                let not_found = e.as_service_error().map(|se| se.is_resource_not_found_exception()).unwrap_or(false);
                if not_found {
                    Ok(None)
                } else {
                    Err(classify_sdk(&format!("reading secret {name}"), e, &[], PERMANENT))
                }
            }
        }
    }

    async fn put_secret(&self, name: &str, value: &SecretString) -> Result<(), PortError> {
        let put = self.client.put_secret_value().secret_id(name).secret_string(value.expose_secret()).send().await;
        match put {
            Ok(_) => Ok(()),
            Err(e) => {
                let not_found = e.as_service_error().map(|se| se.is_resource_not_found_exception()).unwrap_or(false);
                if !not_found {
                    return Err(classify_sdk(&format!("storing secret {name}"), e, &[], PERMANENT));
                }
                self.client
                    .create_secret()
                    .name(name)
                    .secret_string(value.expose_secret())
                    .send()
                    .await
                    .map_err(|e| classify_sdk(&format!("creating secret {name}"), e, &[], PERMANENT))?;
                Ok(())
            }
        }
    }
}
