//! OAuth 2.0 with Salesforce (SPEC §3.1–3.3): the web-server flow with PKCE
//! (S256) and a random `state`, the token endpoint's forms and answers, the
//! userinfo document, and the classification of OAuth errors.
//!
//! Randomness is an input: the adapter draws the bytes from the OS and
//! hands them in, so everything here is deterministic and testable.

use super::{SalesforceError, TokenSet, error_from_response};
use crate::error::{ErrorClass, PortError};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// Bytes of entropy behind a PKCE verifier and a `state` (256 bits each).
pub const ENTROPY_BYTES: usize = 32;

/// RFC 3986 unreserved characters stay; everything else is percent-encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// A PKCE pair (RFC 7636, method S256). The verifier stays on our side
/// (stored with the `state` until the callback) and is a secret.
#[derive(Clone)]
pub struct Pkce {
    verifier: SecretString,
    challenge: String,
}

impl fmt::Debug for Pkce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkce").field("verifier", &"[redacted]").field("challenge", &self.challenge).finish()
    }
}

impl Pkce {
    /// A verifier of 43 base64url characters from 32 random bytes.
    pub fn from_entropy(bytes: &[u8; ENTROPY_BYTES]) -> Pkce {
        let verifier = URL_SAFE_NO_PAD.encode(bytes);
        let challenge = Self::challenge_for(&verifier);
        Pkce { verifier: SecretString::from(verifier), challenge }
    }

    /// `BASE64URL(SHA256(verifier))`, no padding.
    pub fn challenge_for(verifier: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    }

    pub fn verifier(&self) -> &SecretString {
        &self.verifier
    }

    pub fn challenge(&self) -> &str {
        &self.challenge
    }
}

/// The `state` of one authorization: ≥128 random bits (here 256), single
/// use, stored with a short TTL by the caller (SPEC §3.1).
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthState(String);

impl fmt::Debug for OAuthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not a credential on its own, but it binds a pending authorization.
        f.write_str("OAuthState([redacted])")
    }
}

impl OAuthState {
    pub fn from_entropy(bytes: &[u8; ENTROPY_BYTES]) -> OAuthState {
        OAuthState(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with the `state` a callback carried.
    pub fn matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0.len() == presented.len() && bool::from(self.0.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// The connected app: its consumer key and, when the app requires one for
/// the web-server flow, its consumer secret.
#[derive(Clone)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl OAuthClient {
    pub fn public(client_id: impl Into<String>) -> Self {
        OAuthClient { client_id: client_id.into(), client_secret: None }
    }
}

/// Check a login host (`https://login.salesforce.com`, a My Domain, or on
/// the local stack an `http://127.0.0.1:…` emulator) and trim its slash.
pub fn login_base(login_url: &str) -> Result<&str, SalesforceError> {
    let base = login_url.trim_end_matches('/');
    let rest = base.strip_prefix("https://").or_else(|| base.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['?', '#', ' ', '@']) => Ok(base),
        _ => Err(SalesforceError::invalid(format!(
            "the Salesforce login URL {login_url:?} is not an http(s) base URL such as https://login.salesforce.com"
        ))),
    }
}

/// What the authorize redirect asks for.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    /// `SalesforceEnvironment::login_url()`.
    pub login_url: String,
    pub client_id: String,
    /// The connected app's callback URL, exactly as registered.
    pub redirect_uri: String,
    /// Space-separated scopes (e.g. `api refresh_token`); `None` uses the
    /// connected app's.
    pub scope: Option<String>,
    /// `login`, `consent`, … (optional).
    pub prompt: Option<String>,
}

impl AuthorizeRequest {
    /// `GET {login}/services/oauth2/authorize?response_type=code&…` with the
    /// PKCE challenge (S256) and the state.
    pub fn url(&self, state: &OAuthState, pkce: &Pkce) -> Result<String, SalesforceError> {
        let base = login_base(&self.login_url)?;
        if self.client_id.trim().is_empty() {
            return Err(SalesforceError::invalid("the connected app's client id (consumer key) is empty"));
        }
        if !(self.redirect_uri.starts_with("https://") || self.redirect_uri.starts_with("http://")) {
            return Err(SalesforceError::invalid(format!(
                "the OAuth redirect URI {:?} must be an absolute http(s) URL",
                self.redirect_uri
            )));
        }
        let mut url = format!(
            "{base}/services/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}\
             &code_challenge={}&code_challenge_method=S256&state={}",
            enc(&self.client_id),
            enc(&self.redirect_uri),
            enc(pkce.challenge()),
            enc(state.as_str()),
        );
        if let Some(scope) = &self.scope {
            url.push_str("&scope=");
            url.push_str(&enc(scope));
        }
        if let Some(prompt) = &self.prompt {
            url.push_str("&prompt=");
            url.push_str(&enc(prompt));
        }
        Ok(url)
    }
}

/// A grant sent to `POST {login}/services/oauth2/token`.
pub enum TokenGrant<'a> {
    AuthorizationCode { code: &'a SecretString, redirect_uri: &'a str, code_verifier: &'a SecretString },
    RefreshToken { refresh_token: &'a SecretString },
}

impl fmt::Debug for TokenGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenGrant::AuthorizationCode { redirect_uri, .. } => {
                f.debug_struct("AuthorizationCode").field("redirect_uri", redirect_uri).finish_non_exhaustive()
            }
            TokenGrant::RefreshToken { .. } => f.write_str("RefreshToken"),
        }
    }
}

/// The form (`application/x-www-form-urlencoded`) of a token request. It
/// holds secrets: hand it straight to the HTTP client, never log it.
pub fn token_form<'a>(client: &'a OAuthClient, grant: &TokenGrant<'a>) -> Vec<(&'static str, &'a str)> {
    let mut form = match grant {
        TokenGrant::AuthorizationCode { code, redirect_uri, code_verifier } => vec![
            ("grant_type", "authorization_code"),
            ("code", code.expose_secret()),
            ("redirect_uri", *redirect_uri),
            ("code_verifier", code_verifier.expose_secret()),
        ],
        TokenGrant::RefreshToken { refresh_token } => {
            vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())]
        }
    };
    form.push(("client_id", client.client_id.as_str()));
    if let Some(secret) = &client.client_secret {
        form.push(("client_secret", secret.expose_secret()));
    }
    form
}

/// `(org_id, user_id)` from the identity URL `https://login…/id/<org>/<user>`.
pub fn parse_identity_url(id: &str) -> (Option<String>, Option<String>) {
    let mut parts = id.trim_end_matches('/').rsplit('/');
    let user = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
    let org = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
    (org, user)
}

/// Read a successful token endpoint answer. Under Refresh Token Rotation a
/// refresh answer carries a new refresh token; without rotation it carries
/// none and `previous_refresh` is kept. An authorization-code answer must
/// carry one (else the connected app lacks the `refresh_token` scope).
pub fn parse_token_response(
    body: &Value,
    previous_refresh: Option<&SecretString>,
) -> Result<TokenSet, SalesforceError> {
    let field = |k: &str| body.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let bad = |what: &str| {
        SalesforceError::Transport(PortError::new(ErrorClass::Retryable, format!("the token response has no {what}")))
    };
    let access = field("access_token").ok_or_else(|| bad("access_token"))?;
    let instance_url = field("instance_url").ok_or_else(|| bad("instance_url"))?;
    if !(instance_url.starts_with("https://") || instance_url.starts_with("http://")) {
        return Err(bad("http(s) instance_url"));
    }
    let refresh = match (field("refresh_token"), previous_refresh) {
        (Some(r), _) => SecretString::from(r),
        (None, Some(prev)) => prev.clone(),
        (None, None) => {
            return Err(SalesforceError::Api {
                class: ErrorClass::Permanent,
                status: 200,
                code: "NO_REFRESH_TOKEN".into(),
                message: "the token response carries no refresh_token: give the connected app the \
                          refresh_token (offline_access) scope"
                    .into(),
            });
        }
    };
    let (org_id, user_id) = field("id").map(|id| parse_identity_url(&id)).unwrap_or((None, None));
    Ok(TokenSet {
        access_token: SecretString::from(access),
        refresh_token: refresh,
        instance_url: instance_url.trim_end_matches('/').to_string(),
        issued_at: field("issued_at"),
        user_id,
        org_id,
        env: None,
    })
}

/// Classify an OAuth `error` code of the token or revoke endpoint.
pub fn classify_oauth_error(error: &str) -> ErrorClass {
    match error {
        "rate_limit_exceeded" => ErrorClass::Throttled,
        "server_error" | "temporarily_unavailable" => ErrorClass::Retryable,
        _ => ErrorClass::Permanent,
    }
}

/// A non-success answer of the token endpoint. `invalid_grant` (revoked,
/// expired, reused or concurrently used refresh token; a used or expired
/// code) becomes [`SalesforceError::InvalidGrant`], whose class tells the
/// retryable "already being processed" apart from a real revocation.
pub fn oauth_error(status: u16, body: &str) -> SalesforceError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let s = |k: &str| parsed.as_ref().and_then(|v| v.get(k)).and_then(Value::as_str).map(str::to_string);
    match s("error") {
        Some(e) if e == "invalid_grant" => {
            SalesforceError::InvalidGrant { description: s("error_description").unwrap_or_default() }
        }
        Some(e) => SalesforceError::Api {
            class: classify_oauth_error(&e).worst(super::classify_http_status(status)),
            status,
            message: s("error_description").unwrap_or_default(),
            code: e,
        },
        None => SalesforceError::Api {
            class: super::classify_http_status(status),
            status,
            code: format!("HTTP_{status}"),
            message: format!("the OAuth endpoint answered HTTP {status} without an OAuth error document"),
        },
    }
}

/// A non-success answer of `/services/oauth2/userinfo`: it answers 403
/// `Bad_OAuth_Token` (plain text) for an expired access token.
pub fn userinfo_error(status: u16, body: &str) -> SalesforceError {
    if status == 401 || (status == 403 && body.contains("Bad_OAuth_Token")) {
        SalesforceError::SessionExpired
    } else {
        error_from_response(status, body)
    }
}

/// The userinfo document (OpenID Connect claims plus Salesforce's own).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct UserInfo {
    pub sub: String,
    pub user_id: String,
    pub organization_id: String,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub active: Option<bool>,
    pub user_type: Option<String>,
    pub language: Option<String>,
    pub locale: Option<String>,
    pub is_salesforce_integration_user: Option<bool>,
    pub updated_at: Option<String>,
    /// Endpoint templates (`rest`, `sobjects`, `custom_domain`, …).
    pub urls: BTreeMap<String, String>,
}

impl UserInfo {
    pub fn parse(body: &Value) -> Result<UserInfo, SalesforceError> {
        let info: UserInfo = serde_json::from_value(body.clone())
            .map_err(|e| SalesforceError::unreadable("reading the userinfo document", e))?;
        if info.user_id.is_empty() || info.organization_id.is_empty() {
            return Err(SalesforceError::unexpected("userinfo", "no user_id or organization_id"));
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Classify;
    use serde_json::json;

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        // RFC 7636 Appendix B test vector.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(Pkce::challenge_for(verifier), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let p = Pkce::from_entropy(&[7u8; 32]);
        assert_eq!(p.verifier().expose_secret().len(), 43);
        assert_eq!(p.challenge(), Pkce::challenge_for(p.verifier().expose_secret()));
        assert!(!format!("{p:?}").contains(p.verifier().expose_secret()));
    }

    #[test]
    fn state_is_256_bits_and_compared_exactly() {
        let s = OAuthState::from_entropy(&[1u8; 32]);
        assert_eq!(s.as_str().len(), 43);
        assert!(s.matches(s.as_str()));
        assert!(!s.matches(&s.as_str()[..42]));
        assert!(!s.matches("x"));
        assert!(!format!("{s:?}").contains(s.as_str()));
    }

    #[test]
    fn authorize_url_for_each_environment() {
        let pkce = Pkce::from_entropy(&[2u8; 32]);
        let state = OAuthState::from_entropy(&[3u8; 32]);
        for (login, host) in [
            ("https://login.salesforce.com", "https://login.salesforce.com/services/oauth2/authorize?"),
            ("https://test.salesforce.com/", "https://test.salesforce.com/services/oauth2/authorize?"),
            ("https://acme.my.salesforce.com", "https://acme.my.salesforce.com/services/oauth2/authorize?"),
        ] {
            let req = AuthorizeRequest {
                login_url: login.into(),
                client_id: "3MVG9.key+x".into(),
                redirect_uri: "https://api.example.com/oauth/callback".into(),
                scope: Some("api refresh_token".into()),
                prompt: None,
            };
            let url = req.url(&state, &pkce).unwrap();
            assert!(url.starts_with(host), "{url}");
            assert!(url.contains("response_type=code"));
            assert!(url.contains("client_id=3MVG9.key%2Bx"));
            assert!(url.contains("redirect_uri=https%3A%2F%2Fapi.example.com%2Foauth%2Fcallback"));
            assert!(url.contains(&format!("code_challenge={}&code_challenge_method=S256", pkce.challenge())));
            assert!(url.contains(&format!("state={}", state.as_str())));
            assert!(url.contains("scope=api%20refresh_token"));
            assert!(!url.contains(pkce.verifier().expose_secret()));
        }
        let bad = AuthorizeRequest {
            login_url: "login.salesforce.com".into(),
            client_id: "k".into(),
            redirect_uri: "https://x/cb".into(),
            scope: None,
            prompt: None,
        };
        let e = bad.url(&state, &pkce).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(e.to_string().contains("login URL"), "{e}");
    }

    #[test]
    fn token_forms_carry_the_grant() {
        let code = SecretString::from("CODE");
        let verifier = SecretString::from("VERIFIER");
        let client = OAuthClient { client_id: "cid".into(), client_secret: Some(SecretString::from("SECRET")) };
        let form = token_form(
            &client,
            &TokenGrant::AuthorizationCode { code: &code, redirect_uri: "https://x/cb", code_verifier: &verifier },
        );
        assert_eq!(
            form,
            vec![
                ("grant_type", "authorization_code"),
                ("code", "CODE"),
                ("redirect_uri", "https://x/cb"),
                ("code_verifier", "VERIFIER"),
                ("client_id", "cid"),
                ("client_secret", "SECRET"),
            ]
        );
        assert!(!format!("{client:?}").contains("SECRET"));
        let rt = SecretString::from("RT");
        let public = OAuthClient::public("cid");
        let form = token_form(&public, &TokenGrant::RefreshToken { refresh_token: &rt });
        assert_eq!(form, vec![("grant_type", "refresh_token"), ("refresh_token", "RT"), ("client_id", "cid")]);
    }

    #[test]
    fn token_responses_with_and_without_rotation() {
        let body = json!({"access_token": "A", "refresh_token": "R2", "instance_url": "https://acme.my.salesforce.com/",
            "id": "https://login.salesforce.com/id/00DdM00000vfgTuUAI/005dM00000awSFJQA2", "issued_at": "1778060000000",
            "token_type": "Bearer", "signature": "sig", "scope": "api refresh_token"});
        let old = SecretString::from("R1");
        let t = parse_token_response(&body, Some(&old)).unwrap();
        assert_eq!(t.refresh_token.expose_secret(), "R2");
        assert_eq!(t.instance_url, "https://acme.my.salesforce.com");
        assert_eq!(t.org_id.as_deref(), Some("00DdM00000vfgTuUAI"));
        assert_eq!(t.user_id.as_deref(), Some("005dM00000awSFJQA2"));
        let mut no_rt = body.clone();
        no_rt.as_object_mut().unwrap().remove("refresh_token");
        assert_eq!(parse_token_response(&no_rt, Some(&old)).unwrap().refresh_token.expose_secret(), "R1");
        let e = parse_token_response(&no_rt, None).unwrap_err();
        assert_eq!((e.code().as_str(), e.class()), ("NO_REFRESH_TOKEN", ErrorClass::Permanent));
        let e = parse_token_response(&json!({"instance_url": "https://x"}), None).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Retryable);
    }

    #[test]
    fn oauth_errors_are_classified() {
        let busy = oauth_error(
            400,
            r#"{"error":"invalid_grant","error_description":"token request is already being processed"}"#,
        );
        assert_eq!(busy.class(), ErrorClass::Retryable);
        let revoked =
            oauth_error(400, r#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#);
        assert!(matches!(revoked, SalesforceError::InvalidGrant { .. }));
        assert_eq!(revoked.class(), ErrorClass::Permanent);
        let client =
            oauth_error(400, r#"{"error":"invalid_client_id","error_description":"client identifier invalid"}"#);
        assert_eq!((client.code().as_str(), client.class()), ("invalid_client_id", ErrorClass::Permanent));
        assert_eq!(oauth_error(400, r#"{"error":"rate_limit_exceeded"}"#).class(), ErrorClass::Throttled);
        assert_eq!(oauth_error(503, "<html>maintenance</html>").class(), ErrorClass::Retryable);
        assert_eq!(oauth_error(429, "").class(), ErrorClass::Throttled);
        assert!(matches!(userinfo_error(403, "Bad_OAuth_Token"), SalesforceError::SessionExpired));
        assert!(matches!(userinfo_error(401, ""), SalesforceError::SessionExpired));
    }

    #[test]
    fn userinfo_document() {
        let u = UserInfo::parse(&json!({"sub": "https://login.salesforce.com/id/00D/005", "user_id": "005",
            "organization_id": "00D", "preferred_username": "api@x", "active": true, "user_type": "STANDARD",
            "is_salesforce_integration_user": false, "address": {}, "photos": {"picture": "p"},
            "urls": {"custom_domain": "https://acme.my.salesforce.com"}, "utcOffset": -28800000}))
        .unwrap();
        assert_eq!((u.user_id.as_str(), u.organization_id.as_str()), ("005", "00D"));
        assert_eq!(u.urls["custom_domain"], "https://acme.my.salesforce.com");
        assert!(UserInfo::parse(&json!({"sub": "x"})).is_err());
    }
}
