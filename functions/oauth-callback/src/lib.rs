//! oauth-callback (SPEC §3.1): `GET /oauth/{tenant}/start` and
//! `GET /oauth/callback`.
//!
//! The web-server flow with PKCE and single-use state is built with the
//! connection lifecycle work (issue 5). Until then both routes answer a clear
//! page saying so (501), and nothing is stored.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use learnlink_adapters::lambda::html_response;

pub fn handle(req: &ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
    let path = req.raw_path.as_deref().unwrap_or("");
    tracing::info!(path, "OAuth route called before the OAuth flow exists");
    html_response(
        501,
        "<!doctype html><title>learnlink: connect</title><h1>Connecting Salesforce is not available yet</h1>\
         <p>This deployment does not implement the OAuth connect flow yet. Nothing was stored.</p>"
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_501_page() {
        let req: ApiGatewayV2httpRequest = serde_json::from_value(serde_json::json!({
            "rawPath": "/oauth/callback",
            "requestContext": {"http": {"method": "GET", "path": "/oauth/callback", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"}, "timeEpoch": 0}
        }))
        .unwrap();
        assert_eq!(handle(&req).status_code, 501);
    }
}
