//! backfill-fanout (SPEC §6.2, §5.1): plans backfills into shards and fans
//! out the daily imports.
//!
//! Planning and execution are built with the backfill and import work
//! (issues 7 and 8). In this slice the function is wired (HTTP route, daily
//! schedule, queue permissions) and answers honestly: the HTTP route says
//! 501 and enqueues nothing; the schedule logs that no import is configured.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use learnlink_adapters::lambda::error_response;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("backfill-fanout cannot handle this event: {0}")]
    UnknownEvent(String),
    #[error("the HTTP request event is invalid: {0}")]
    BadRequestEvent(#[from] serde_json::Error),
}

pub fn handle(event: Value) -> Result<Value, HandlerError> {
    if event.get("requestContext").is_some() {
        let req: ApiGatewayV2httpRequest = serde_json::from_value(event)?;
        tracing::info!(path = req.raw_path.as_deref().unwrap_or(""), "backfill requested before backfills exist");
        let r = error_response(
            501,
            "not_implemented",
            "backfills are not available in this deployment yet; nothing was enqueued",
        );
        return Ok(serde_json::to_value(r)?);
    }
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        tracing::info!("import schedule fired; no import sources are configured in this deployment yet");
        return Ok(json!({"imports_started": 0}));
    }
    Err(HandlerError::UnknownEvent("neither an HTTP API request nor a scheduled event".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_events() {
        let http = json!({"rawPath": "/backfills/acme", "requestContext": {"http": {"method": "POST", "path": "/backfills/acme",
            "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"}, "timeEpoch": 0}});
        assert_eq!(handle(http).unwrap()["statusCode"], 501);
        let sched = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert_eq!(handle(sched).unwrap()["imports_started"], 0);
        assert!(handle(json!({})).is_err());
    }
}
