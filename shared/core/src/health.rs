//! Connection health (SPEC §3.5): a status, one human sentence and the
//! remedy, computed from observations. This slice observes whether the
//! tenant has a stored connection and the depth of the dead-letter queues;
//! the connection lifecycle work adds refresh history, API budget and lag.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Connected,
    Degraded,
    Disconnected,
    Paused,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub tenant: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub sentence: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
    pub dlq_depth: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Observations {
    pub paused: bool,
    pub has_tokens: bool,
    pub dlq_depth: u64,
}

pub fn assess(tenant: &str, o: &Observations) -> Health {
    if o.paused {
        return Health {
            tenant: tenant.to_string(),
            status: Status::Paused,
            cause: Some("paused_by_admin".into()),
            sentence: "Paused by an admin: arriving work is kept and nothing is written.".into(),
            remedy: Some(format!("Resume: `learnlink config set {tenant} paused false`")),
            dlq_depth: o.dlq_depth,
        };
    }
    if !o.has_tokens {
        return Health {
            tenant: tenant.to_string(),
            status: Status::Disconnected,
            cause: Some("never_connected".into()),
            sentence: "No Salesforce connection is stored for this tenant.".into(),
            remedy: Some(format!("Relink: `learnlink connect {tenant}`")),
            dlq_depth: o.dlq_depth,
        };
    }
    if o.dlq_depth > 0 {
        return Health {
            tenant: tenant.to_string(),
            status: Status::Degraded,
            cause: Some("dlq_not_empty".into()),
            sentence: format!("{} message(s) wait in the dead-letter queue.", o.dlq_depth),
            remedy: Some(format!("Inspect and replay them: `learnlink dlq list {tenant}`")),
            dlq_depth: o.dlq_depth,
        };
    }
    Health {
        tenant: tenant.to_string(),
        status: Status::Connected,
        cause: None,
        sentence: "Everything looks good.".into(),
        remedy: None,
        dlq_depth: 0,
    }
}

/// Observes a tenant through the ports and assesses it.
pub struct Probe<'a> {
    pub secrets: &'a dyn crate::ports::SecretStore,
    pub queues: &'a dyn crate::ports::QueueStats,
    pub names: &'a crate::tenant::SecretNames,
    pub dead_letter_queues: &'a [String],
}

impl Probe<'_> {
    pub async fn check(&self, tenant: &crate::tenant::Tenant) -> Result<Health, crate::PortError> {
        let has_tokens = self.secrets.get_secret(&self.names.salesforce_tokens(&tenant.id)).await?.is_some();
        let mut dlq_depth = 0;
        for q in self.dead_letter_queues {
            dlq_depth += self.queues.depth(q).await?;
        }
        Ok(assess(tenant.id.as_str(), &Observations { paused: tenant.paused, has_tokens, dlq_depth }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let h = assess("acme", &Observations { paused: true, has_tokens: true, dlq_depth: 0 });
        assert_eq!(h.status, Status::Paused);
        let h = assess("acme", &Observations { paused: false, has_tokens: false, dlq_depth: 3 });
        assert_eq!(h.status, Status::Disconnected);
        assert!(h.remedy.unwrap().contains("learnlink connect acme"));
        let h = assess("acme", &Observations { paused: false, has_tokens: true, dlq_depth: 3 });
        assert_eq!(h.status, Status::Degraded);
        let h = assess("acme", &Observations { paused: false, has_tokens: true, dlq_depth: 0 });
        assert_eq!(h.status, Status::Connected);
        assert_eq!(h.sentence, "Everything looks good.");
        assert_eq!(serde_json::to_value(&h).unwrap()["status"], "CONNECTED");
    }
}
