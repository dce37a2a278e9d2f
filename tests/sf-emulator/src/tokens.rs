//! OAuth token families with Refresh Token Rotation.
//!
//! A family starts when a connection is made (admin `connections`, later the
//! authorization-code flow). Each refresh returns a new refresh token and makes the
//! previous one stale; presenting a stale refresh token revokes the whole family
//! (its refresh token and every access token it issued). Access tokens stay valid
//! until sessions are expired or the family is revoked.

use std::collections::HashMap;

use rand::Rng;
use rand::distributions::Alphanumeric;

/// Outcome of a refresh attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    Ok(TokenSet),
    /// Unknown, stale (family now revoked) or revoked token.
    InvalidGrant,
}

/// Tokens handed to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: String,
    pub issued_at_ms: i64,
}

#[derive(Debug)]
struct Family {
    current_refresh: String,
    revoked: bool,
}

#[derive(Debug, Default)]
pub struct TokenStore {
    families: Vec<Family>,
    /// Every refresh token ever issued → family.
    refresh_index: HashMap<String, usize>,
    /// Valid access tokens → family.
    access: HashMap<String, usize>,
}

fn random_token(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

impl TokenStore {
    fn mint_access(&mut self, org15: &str, family: usize) -> String {
        // Salesforce access tokens: "<15-char org id>!<opaque>".
        let token = format!("{org15}!AQ{}", random_token(100));
        self.access.insert(token.clone(), family);
        token
    }

    fn mint_refresh(&mut self, family: usize) -> String {
        let token = format!("5Aep861{}", random_token(80));
        self.refresh_index.insert(token.clone(), family);
        token
    }

    /// Starts a new token family.
    pub fn connect(&mut self, org15: &str, now_ms: i64) -> TokenSet {
        let family = self.families.len();
        self.families.push(Family { current_refresh: String::new(), revoked: false });
        let refresh_token = self.mint_refresh(family);
        if let Some(f) = self.families.get_mut(family) {
            f.current_refresh = refresh_token.clone();
        }
        let access_token = self.mint_access(org15, family);
        TokenSet { access_token, refresh_token, issued_at_ms: now_ms }
    }

    /// Refresh with rotation.
    pub fn refresh(&mut self, org15: &str, presented: &str, now_ms: i64) -> RefreshOutcome {
        let Some(&family) = self.refresh_index.get(presented) else {
            return RefreshOutcome::InvalidGrant;
        };
        let Some(f) = self.families.get(family) else {
            return RefreshOutcome::InvalidGrant;
        };
        if f.revoked {
            return RefreshOutcome::InvalidGrant;
        }
        if f.current_refresh != presented {
            // Reuse of a rotated token: revoke the family.
            self.revoke_family(family);
            return RefreshOutcome::InvalidGrant;
        }
        let refresh_token = self.mint_refresh(family);
        if let Some(f) = self.families.get_mut(family) {
            f.current_refresh = refresh_token.clone();
        }
        let access_token = self.mint_access(org15, family);
        RefreshOutcome::Ok(TokenSet { access_token, refresh_token, issued_at_ms: now_ms })
    }

    fn revoke_family(&mut self, family: usize) {
        if let Some(f) = self.families.get_mut(family) {
            f.revoked = true;
        }
        self.access.retain(|_, fam| *fam != family);
    }

    /// Whether `token` is a valid access token.
    pub fn access_valid(&self, token: &str) -> bool {
        self.access.contains_key(token)
    }

    /// Every access token becomes invalid (session timeout); refresh still works.
    pub fn expire_sessions(&mut self) {
        self.access.clear();
    }

    /// Revokes every family (e.g. the integration user's password was reset).
    pub fn revoke_all(&mut self) {
        for f in &mut self.families {
            f.revoked = true;
        }
        self.access.clear();
    }

    /// Revokes the family of `token` (access or refresh token). Returns whether the
    /// token was known.
    pub fn revoke_token(&mut self, token: &str) -> bool {
        let family = self.refresh_index.get(token).or_else(|| self.access.get(token)).copied();
        match family {
            Some(f) => {
                self.revoke_family(f);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_and_reuse_detection() {
        let mut t = TokenStore::default();
        let first = t.connect("00DEm0000000001", 0);
        assert!(t.access_valid(&first.access_token));
        let RefreshOutcome::Ok(second) = t.refresh("00DEm0000000001", &first.refresh_token, 1) else {
            panic!("refresh failed");
        };
        assert_ne!(second.refresh_token, first.refresh_token);
        // Reusing the rotated token fails and revokes the family.
        assert_eq!(t.refresh("00DEm0000000001", &first.refresh_token, 2), RefreshOutcome::InvalidGrant);
        assert_eq!(t.refresh("00DEm0000000001", &second.refresh_token, 3), RefreshOutcome::InvalidGrant);
        assert!(!t.access_valid(&second.access_token));
    }
}
