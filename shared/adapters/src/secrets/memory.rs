//! In-memory fake secret store keeping every version.

use async_trait::async_trait;
use learnlink_core::PortError;
use learnlink_core::ports::SecretStore;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct MemorySecrets {
    versions: Mutex<HashMap<String, Vec<SecretString>>>,
}

impl MemorySecrets {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn version_count(&self, name: &str) -> usize {
        self.versions.lock().unwrap_or_else(|p| p.into_inner()).get(name).map_or(0, Vec::len)
    }
}

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn get_secret(&self, name: &str) -> Result<Option<SecretString>, PortError> {
        Ok(self.versions.lock().unwrap_or_else(|p| p.into_inner()).get(name).and_then(|v| v.last().cloned()))
    }
    async fn put_secret(&self, name: &str, value: &SecretString) -> Result<(), PortError> {
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default()
            .push(value.clone());
        Ok(())
    }
}
