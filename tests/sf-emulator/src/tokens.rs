//! OAuth state: authorization codes (single use, short-lived, PKCE-bound) and token
//! families with Refresh Token Rotation.
//!
//! A family starts when a connection is made (authorization code exchange, or the
//! admin `connections` endpoint). Each refresh returns a new refresh token and makes
//! the previous one stale; presenting a stale refresh token revokes the whole family
//! (its refresh token and every access token it issued). While a refresh with a token
//! is being processed, another request with the same token is refused with
//! "token request is already being processed". Access tokens expire after the
//! session timeout without use; a refresh token unused for the idle TTL expires.

use std::collections::HashMap;

use base64::Engine;
use rand::Rng;
use rand::distributions::Alphanumeric;
use sha2::{Digest, Sha256};

/// Which login host a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginHost {
    /// login.salesforce.com (and My Domain): the emulator's base URL.
    Production,
    /// test.salesforce.com: the emulator's `/sandbox` prefix (or a `test.` Host).
    Sandbox,
}

/// An OAuth error: `{"error", "error_description"}` (400 unless noted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: &'static str,
}

impl OAuthError {
    pub const EXPIRED_TOKEN: OAuthError =
        OAuthError { error: "invalid_grant", description: "expired access/refresh token" };
    pub const IN_PROGRESS: OAuthError =
        OAuthError { error: "invalid_grant", description: "token request is already being processed" };
    pub const INVALID_CODE: OAuthError =
        OAuthError { error: "invalid_grant", description: "invalid authorization code" };
    pub const EXPIRED_CODE: OAuthError =
        OAuthError { error: "invalid_grant", description: "expired authorization code" };
    pub const BAD_VERIFIER: OAuthError = OAuthError { error: "invalid_grant", description: "invalid code verifier" };
    pub const UNEXPECTED_VERIFIER: OAuthError =
        OAuthError { error: "invalid_grant", description: "unexpected code verifier" };
    pub const REDIRECT_MISMATCH: OAuthError =
        OAuthError { error: "redirect_uri_mismatch", description: "redirect_uri must match configuration" };
    pub const AUTH_FAILURE: OAuthError = OAuthError { error: "invalid_grant", description: "authentication failure" };
}

/// Tokens handed to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: String,
    pub issued_at_ms: i64,
    pub user_id: String,
    pub scope: String,
    pub host: LoginHost,
}

#[derive(Debug)]
struct Family {
    current_refresh: String,
    revoked: bool,
    /// Last time the current refresh token was issued or used.
    last_used_ms: i64,
    /// The refresh token whose request is being processed.
    in_flight: Option<String>,
    user_id: String,
    scope: String,
    host: LoginHost,
}

#[derive(Debug, Clone)]
struct AccessToken {
    family: usize,
    last_used_ms: i64,
}

#[derive(Debug, Clone)]
struct AuthCode {
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    user_id: String,
    scope: String,
    issued_ms: i64,
    used: bool,
    host: LoginHost,
}

/// What an authorization code was issued for.
#[derive(Debug, Clone)]
pub struct CodeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: Option<String>,
    pub user_id: String,
    pub scope: String,
    pub host: LoginHost,
}

#[derive(Debug, Default)]
pub struct TokenStore {
    families: Vec<Family>,
    /// Every refresh token ever issued → family.
    refresh_index: HashMap<String, usize>,
    /// Valid access tokens.
    access: HashMap<String, AccessToken>,
    codes: HashMap<String, AuthCode>,
}

fn random_token(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

/// base64url(SHA-256(verifier)) without padding: the S256 code challenge.
pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl TokenStore {
    fn mint_access(&mut self, org15: &str, family: usize, now_ms: i64) -> String {
        // Salesforce access tokens: "<15-char org id>!<opaque>".
        let token = format!("{org15}!AQ{}", random_token(100));
        self.access.insert(token.clone(), AccessToken { family, last_used_ms: now_ms });
        token
    }

    fn mint_refresh(&mut self, family: usize) -> String {
        let token = format!("5Aep861{}", random_token(80));
        self.refresh_index.insert(token.clone(), family);
        token
    }

    /// Starts a new token family for `user_id`.
    pub fn connect(&mut self, org15: &str, user_id: &str, scope: &str, host: LoginHost, now_ms: i64) -> TokenSet {
        let family = self.families.len();
        self.families.push(Family {
            current_refresh: String::new(),
            revoked: false,
            last_used_ms: now_ms,
            in_flight: None,
            user_id: user_id.to_owned(),
            scope: scope.to_owned(),
            host,
        });
        let refresh_token = self.mint_refresh(family);
        if let Some(f) = self.families.get_mut(family) {
            f.current_refresh = refresh_token.clone();
        }
        let access_token = self.mint_access(org15, family, now_ms);
        TokenSet {
            access_token,
            refresh_token,
            issued_at_ms: now_ms,
            user_id: user_id.to_owned(),
            scope: scope.to_owned(),
            host,
        }
    }

    /// Issues an authorization code (`aPrx...==`, as Salesforce's look).
    pub fn issue_code(&mut self, req: CodeRequest, now_ms: i64) -> String {
        let code = format!("aPrx{}==", random_token(80));
        self.codes.insert(
            code.clone(),
            AuthCode {
                client_id: req.client_id,
                redirect_uri: req.redirect_uri,
                challenge: req.challenge,
                user_id: req.user_id,
                scope: req.scope,
                issued_ms: now_ms,
                used: false,
                host: req.host,
            },
        );
        code
    }

    /// Exchanges an authorization code. The code is consumed by any attempt that
    /// names it, successful or not.
    #[allow(clippy::too_many_arguments)]
    pub fn exchange_code(
        &mut self,
        org15: &str,
        code: &str,
        client_id: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        reject_tilde: bool,
        ttl_ms: u64,
        host: LoginHost,
        now_ms: i64,
    ) -> Result<TokenSet, OAuthError> {
        let Some(c) = self.codes.get_mut(code) else {
            return Err(OAuthError::INVALID_CODE);
        };
        if c.used || now_ms.saturating_sub(c.issued_ms) > i64::try_from(ttl_ms).unwrap_or(i64::MAX) {
            return Err(OAuthError::EXPIRED_CODE);
        }
        c.used = true;
        let c = c.clone();
        if c.host != host || c.client_id != client_id {
            return Err(OAuthError::INVALID_CODE);
        }
        if redirect_uri != Some(c.redirect_uri.as_str()) {
            return Err(OAuthError::REDIRECT_MISMATCH);
        }
        match (&c.challenge, verifier) {
            (Some(_), None) => return Err(OAuthError::BAD_VERIFIER),
            (Some(ch), Some(v)) => {
                if (reject_tilde && v.contains('~')) || s256(v) != *ch {
                    return Err(OAuthError::BAD_VERIFIER);
                }
            }
            (None, Some(_)) => return Err(OAuthError::UNEXPECTED_VERIFIER),
            (None, None) => {}
        }
        Ok(self.connect(org15, &c.user_id, &c.scope, host, now_ms))
    }

    /// First half of a refresh: checks the token and marks it in flight. Returns the
    /// family to complete with [`TokenStore::finish_refresh`].
    pub fn begin_refresh(
        &mut self,
        presented: &str,
        idle_ttl_ms: Option<u64>,
        host: LoginHost,
        now_ms: i64,
    ) -> Result<usize, OAuthError> {
        let Some(&family) = self.refresh_index.get(presented) else {
            return Err(OAuthError::EXPIRED_TOKEN);
        };
        let Some(f) = self.families.get(family) else {
            return Err(OAuthError::EXPIRED_TOKEN);
        };
        if f.revoked {
            return Err(OAuthError::EXPIRED_TOKEN);
        }
        if f.host != host {
            return Err(OAuthError::AUTH_FAILURE);
        }
        if f.in_flight.as_deref() == Some(presented) {
            return Err(OAuthError::IN_PROGRESS);
        }
        if f.current_refresh != presented {
            // Reuse of a rotated token: revoke the family.
            self.revoke_family(family);
            return Err(OAuthError::EXPIRED_TOKEN);
        }
        if let Some(ttl) = idle_ttl_ms {
            if now_ms.saturating_sub(f.last_used_ms) > i64::try_from(ttl).unwrap_or(i64::MAX) {
                self.revoke_family(family);
                return Err(OAuthError::EXPIRED_TOKEN);
            }
        }
        if let Some(f) = self.families.get_mut(family) {
            f.in_flight = Some(presented.to_owned());
        }
        Ok(family)
    }

    /// Second half of a refresh: rotates the refresh token and issues an access token
    /// (unless the family was revoked meanwhile).
    pub fn finish_refresh(&mut self, org15: &str, family: usize, now_ms: i64) -> Result<TokenSet, OAuthError> {
        let Some(f) = self.families.get_mut(family) else {
            return Err(OAuthError::EXPIRED_TOKEN);
        };
        f.in_flight = None;
        if f.revoked {
            return Err(OAuthError::EXPIRED_TOKEN);
        }
        let (user_id, scope, host) = (f.user_id.clone(), f.scope.clone(), f.host);
        let refresh_token = self.mint_refresh(family);
        if let Some(f) = self.families.get_mut(family) {
            f.current_refresh = refresh_token.clone();
            f.last_used_ms = now_ms;
        }
        let access_token = self.mint_access(org15, family, now_ms);
        Ok(TokenSet { access_token, refresh_token, issued_at_ms: now_ms, user_id, scope, host })
    }

    fn revoke_family(&mut self, family: usize) {
        if let Some(f) = self.families.get_mut(family) {
            f.revoked = true;
        }
        self.access.retain(|_, t| t.family != family);
    }

    /// The user of a valid access token, touching its last use; an access token
    /// unused for longer than `timeout_ms` is expired (and forgotten).
    pub fn use_access(&mut self, token: &str, timeout_ms: u64, now_ms: i64) -> Option<String> {
        let t = self.access.get_mut(token)?;
        if now_ms.saturating_sub(t.last_used_ms) > i64::try_from(timeout_ms).unwrap_or(i64::MAX) {
            self.access.remove(token);
            return None;
        }
        t.last_used_ms = now_ms;
        let family = t.family;
        self.families.get(family).filter(|f| !f.revoked).map(|f| f.user_id.clone())
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

    /// Revokes a token: a refresh token revokes its family (and its access tokens);
    /// an access token only itself. Returns whether the token was known and valid.
    pub fn revoke_token(&mut self, token: &str) -> bool {
        if let Some(&family) = self.refresh_index.get(token) {
            let live = self.families.get(family).is_some_and(|f| !f.revoked);
            self.revoke_family(family);
            return live;
        }
        self.access.remove(token).is_some()
    }

    /// Number of live token families (for the admin API).
    pub fn live_families(&self) -> usize {
        self.families.iter().filter(|f| !f.revoked).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "00DEm0000000001";

    #[test]
    fn rotation_and_reuse_detection() {
        let mut t = TokenStore::default();
        let first = t.connect(ORG, "005", "api", LoginHost::Production, 0);
        assert!(t.use_access(&first.access_token, 1000, 0).is_some());
        let fam = t.begin_refresh(&first.refresh_token, None, LoginHost::Production, 1).unwrap();
        // A concurrent request with the same token is refused while in flight.
        assert_eq!(t.begin_refresh(&first.refresh_token, None, LoginHost::Production, 1), Err(OAuthError::IN_PROGRESS));
        let second = t.finish_refresh(ORG, fam, 1).unwrap();
        assert_ne!(second.refresh_token, first.refresh_token);
        // Reusing the rotated token fails and revokes the family.
        assert_eq!(
            t.begin_refresh(&first.refresh_token, None, LoginHost::Production, 2),
            Err(OAuthError::EXPIRED_TOKEN)
        );
        assert!(t.begin_refresh(&second.refresh_token, None, LoginHost::Production, 3).is_err());
        assert!(t.use_access(&second.access_token, 1000, 3).is_none());
    }

    #[test]
    fn pkce_s256() {
        // RFC 7636 appendix B.
        assert_eq!(s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn idle_ttl_and_session_timeout() {
        let mut t = TokenStore::default();
        let s = t.connect(ORG, "005", "api", LoginHost::Production, 0);
        assert!(t.use_access(&s.access_token, 100, 50).is_some());
        assert!(t.use_access(&s.access_token, 100, 140).is_some(), "inactivity, not age");
        assert!(t.use_access(&s.access_token, 100, 300).is_none());
        assert_eq!(
            t.begin_refresh(&s.refresh_token, Some(100), LoginHost::Production, 500),
            Err(OAuthError::EXPIRED_TOKEN)
        );
    }
}
