//! The wiring of the stack, derived from the template: queues and tables to
//! create, and for every function its binary, settings, environment and
//! event sources (HTTP routes, SQS event source mappings, schedules).
//!
//! Nothing here is configured twice: a route, a BatchSize or a schedule
//! changes in `template.yaml` and the local runtime follows.

use crate::template::{Context, Resource, Template, TemplateError, scalar};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const ACCOUNT_ID: &str = "123456789012";

#[derive(Debug, Clone, Serialize)]
pub struct Wiring {
    pub stack: String,
    pub region: String,
    pub account: String,
    pub parameters: BTreeMap<String, String>,
    pub functions: Vec<FunctionSpec>,
    pub queues: Vec<QueueSpec>,
    pub tables: Vec<TableSpec>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FunctionSpec {
    pub logical_id: String,
    pub name: String,
    pub binary: String,
    pub timeout_secs: u64,
    pub memory_mb: u64,
    pub reserved_concurrency: Option<u32>,
    pub environment: BTreeMap<String, String>,
    pub http: Vec<HttpRoute>,
    pub sqs: Vec<SqsSource>,
    pub schedules: Vec<ScheduleSpec>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HttpRoute {
    pub event: String,
    /// Upper-case method, or `ANY`.
    pub method: String,
    pub path: String,
    pub iam_auth: bool,
}

impl HttpRoute {
    pub fn route_key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SqsSource {
    pub event: String,
    pub queue_logical_id: String,
    pub queue_arn: String,
    pub queue_url: String,
    pub batch_size: u32,
    pub window_secs: u32,
    pub report_batch_item_failures: bool,
    pub enabled: bool,
    pub max_concurrency: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScheduleSpec {
    pub event: String,
    pub rule_name: String,
    pub expression: String,
    pub input: Option<Value>,
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueSpec {
    pub logical_id: String,
    pub name: String,
    pub arn: String,
    pub url: String,
    pub attributes: BTreeMap<String, String>,
    /// Logical id of the dead-letter queue, if the queue has a redrive policy.
    pub dead_letter_queue: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableSpec {
    pub logical_id: String,
    pub name: String,
    pub arn: String,
    pub properties: Value,
}

fn invalid(msg: impl Into<String>) -> TemplateError {
    TemplateError::Invalid(msg.into())
}

fn u(v: Option<&Value>, what: &str, default: u64) -> Result<u64, TemplateError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(v) => scalar(v).parse::<u64>().map_err(|_| invalid(format!("{what} must be a whole number, got {v}"))),
    }
}

fn b(v: Option<&Value>, default: bool) -> bool {
    match v {
        Some(Value::Bool(x)) => *x,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("ENABLED"),
        _ => default,
    }
}

/// Build the wiring. `queue_url` maps a queue name to its URL at the local
/// SQS endpoint.
pub fn build(
    template: &Template,
    stack: &str,
    region: &str,
    overrides: &BTreeMap<String, String>,
    queue_url: &dyn Fn(&str) -> String,
) -> Result<Wiring, TemplateError> {
    let parameters = template.parameter_values(overrides)?;
    let mut ctx = Context { parameters: parameters.clone(), ..Default::default() };
    for (k, v) in [
        ("AWS::Region", region.to_string()),
        ("AWS::AccountId", ACCOUNT_ID.to_string()),
        ("AWS::StackName", stack.to_string()),
        ("AWS::StackId", format!("arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{stack}/local")),
        ("AWS::Partition", "aws".to_string()),
        ("AWS::URLSuffix", "amazonaws.com".to_string()),
        ("AWS::NoValue", String::new()),
    ] {
        ctx.pseudo.insert(k.into(), v);
    }

    // Physical names first: every Ref and GetAtt is deterministic.
    fn physical(ctx: &Context, stack: &str, r: &Resource, key: &str) -> Result<String, TemplateError> {
        match r.properties.get(key) {
            Some(v) => Ok(scalar(&ctx.resolve(v)?)),
            None => Ok(format!("{stack}-{}", r.logical_id)),
        }
    }
    let mut queue_names = BTreeMap::new();
    for r in template.of_type("AWS::SQS::Queue") {
        let mut name = physical(&ctx, stack, r, "QueueName")?;
        if b(r.properties.get("FifoQueue"), false) && !name.ends_with(".fifo") {
            name.push_str(".fifo");
        }
        let arn = format!("arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}");
        let url = queue_url(&name);
        ctx.refs.insert(r.logical_id.clone(), url.clone());
        ctx.attrs.insert((r.logical_id.clone(), "Arn".into()), arn);
        ctx.attrs.insert((r.logical_id.clone(), "QueueName".into()), name.clone());
        ctx.attrs.insert((r.logical_id.clone(), "QueueUrl".into()), url);
        queue_names.insert(r.logical_id.clone(), name);
    }
    let mut table_names = BTreeMap::new();
    for r in template.of_type("AWS::DynamoDB::Table") {
        let name = physical(&ctx, stack, r, "TableName")?;
        ctx.refs.insert(r.logical_id.clone(), name.clone());
        ctx.attrs.insert(
            (r.logical_id.clone(), "Arn".into()),
            format!("arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"),
        );
        table_names.insert(r.logical_id.clone(), name);
    }
    for r in template.of_type("AWS::Serverless::HttpApi") {
        ctx.refs.insert(r.logical_id.clone(), "local".into());
    }
    for r in template.of_type("AWS::Serverless::Function") {
        let name = physical(&ctx, stack, r, "FunctionName")?;
        ctx.refs.insert(r.logical_id.clone(), name.clone());
        ctx.attrs.insert(
            (r.logical_id.clone(), "Arn".into()),
            format!("arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"),
        );
    }
    // Other resource types get a Ref of their logical id, so policies and
    // alarms that mention them still resolve.
    for (id, r) in &template.resources {
        ctx.refs.entry(id.clone()).or_insert_with(|| format!("{stack}-{}", r.logical_id));
    }

    let mut queues = Vec::new();
    for r in template.of_type("AWS::SQS::Queue") {
        let props = ctx.resolve(&Value::Object(r.properties.clone()))?;
        let name = queue_names[&r.logical_id].clone();
        let mut attributes = BTreeMap::new();
        for key in [
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "MaximumMessageSize",
            "ReceiveMessageWaitTimeSeconds",
            "FifoQueue",
            "ContentBasedDeduplication",
        ] {
            if let Some(v) = props.get(key) {
                attributes.insert(key.to_string(), scalar(v));
            }
        }
        let mut dead_letter_queue = None;
        if let Some(rp) = props.get("RedrivePolicy") {
            let arn = rp.get("deadLetterTargetArn").map(scalar).unwrap_or_default();
            let max = rp.get("maxReceiveCount").map(scalar).unwrap_or_default();
            let max: u32 =
                max.parse().map_err(|_| invalid(format!("{}: maxReceiveCount must be a number", r.logical_id)))?;
            dead_letter_queue =
                queue_names.iter().find(|(_, n)| arn.ends_with(&format!(":{n}"))).map(|(id, _)| id.clone());
            attributes.insert(
                "RedrivePolicy".into(),
                serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max}).to_string(),
            );
        }
        queues.push(QueueSpec {
            logical_id: r.logical_id.clone(),
            arn: ctx.attrs[&(r.logical_id.clone(), "Arn".to_string())].clone(),
            url: ctx.refs[&r.logical_id].clone(),
            name,
            attributes,
            dead_letter_queue,
        });
    }
    let mut tables = Vec::new();
    for r in template.of_type("AWS::DynamoDB::Table") {
        tables.push(TableSpec {
            logical_id: r.logical_id.clone(),
            name: table_names[&r.logical_id].clone(),
            arn: ctx.attrs[&(r.logical_id.clone(), "Arn".to_string())].clone(),
            properties: ctx.resolve(&Value::Object(r.properties.clone()))?,
        });
    }

    let globals = ctx.resolve(&Value::Object(template.globals_function.clone()))?;
    let mut functions = Vec::new();
    for r in template.of_type("AWS::Serverless::Function") {
        let own = ctx.resolve(&Value::Object(r.properties.clone()))?;
        functions.push(function(r, &globals, &own, &ctx, &queues, stack)?);
    }
    Ok(Wiring {
        stack: stack.to_string(),
        region: region.to_string(),
        account: ACCOUNT_ID.to_string(),
        parameters,
        functions,
        queues,
        tables,
    })
}

fn function(
    r: &Resource,
    globals: &Value,
    own: &Value,
    ctx: &Context,
    queues: &[QueueSpec],
    stack: &str,
) -> Result<FunctionSpec, TemplateError> {
    let id = &r.logical_id;
    let get = |k: &str| own.get(k).or_else(|| globals.get(k));
    let binary = r
        .metadata
        .get("BuildProperties")
        .and_then(|p| p.get("Binary"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("function {id} has no Metadata.BuildProperties.Binary")))?
        .to_string();
    let mut environment = BTreeMap::new();
    for src in [globals, own] {
        if let Some(vars) = src.get("Environment").and_then(|e| e.get("Variables")).and_then(Value::as_object) {
            for (k, v) in vars {
                environment.insert(k.clone(), scalar(v));
            }
        }
    }
    let mut http = Vec::new();
    let mut sqs = Vec::new();
    let mut schedules = Vec::new();
    let empty = Map::new();
    for (ev_name, ev) in own.get("Events").and_then(Value::as_object).unwrap_or(&empty) {
        let kind = ev.get("Type").and_then(Value::as_str).unwrap_or_default();
        let p = ev.get("Properties").cloned().unwrap_or(Value::Null);
        match kind {
            "HttpApi" => {
                let method = p.get("Method").map(scalar).unwrap_or_else(|| "ANY".into()).to_uppercase();
                let path = p.get("Path").map(scalar).unwrap_or_else(|| "$default".into());
                let method = if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" { "ANY".into() } else { method };
                let iam_auth =
                    p.get("Auth").and_then(|a| a.get("Authorizer")).map(scalar).as_deref() == Some("AWS_IAM");
                http.push(HttpRoute { event: ev_name.clone(), method, path, iam_auth });
            }
            "SQS" => {
                let arn = p.get("Queue").map(scalar).unwrap_or_default();
                let q = queues
                    .iter()
                    .find(|q| q.arn == arn)
                    .ok_or_else(|| invalid(format!("{id}.{ev_name}: queue {arn} is not declared in the template")))?;
                let batch_size = u(p.get("BatchSize"), "BatchSize", 10)? as u32;
                let window_secs =
                    u(p.get("MaximumBatchingWindowInSeconds"), "MaximumBatchingWindowInSeconds", 0)? as u32;
                if batch_size == 0 || batch_size > 10_000 {
                    return Err(invalid(format!("{id}.{ev_name}: BatchSize {batch_size} is outside 1..=10000")));
                }
                if batch_size > 10 && window_secs == 0 {
                    return Err(invalid(format!(
                        "{id}.{ev_name}: a BatchSize above 10 needs MaximumBatchingWindowInSeconds of at least 1 (as in AWS)"
                    )));
                }
                let report = p
                    .get("FunctionResponseTypes")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|t| t.as_str() == Some("ReportBatchItemFailures")));
                let max_concurrency = p
                    .get("ScalingConfig")
                    .and_then(|s| s.get("MaximumConcurrency"))
                    .map(|v| u(Some(v), "MaximumConcurrency", 2))
                    .transpose()?
                    .map(|n| n as u32);
                sqs.push(SqsSource {
                    event: ev_name.clone(),
                    queue_logical_id: q.logical_id.clone(),
                    queue_arn: q.arn.clone(),
                    queue_url: q.url.clone(),
                    batch_size,
                    window_secs,
                    report_batch_item_failures: report,
                    enabled: b(p.get("Enabled"), true),
                    max_concurrency,
                });
            }
            "Schedule" | "ScheduleV2" => {
                let expr = p
                    .get("Schedule")
                    .or_else(|| p.get("ScheduleExpression"))
                    .map(scalar)
                    .ok_or_else(|| invalid(format!("{id}.{ev_name}: no schedule expression")))?;
                crate::schedule::Schedule::parse(&expr).map_err(|e| invalid(format!("{id}.{ev_name}: {e}")))?;
                let input = match p.get("Input") {
                    Some(Value::String(s)) => Some(
                        serde_json::from_str(s)
                            .map_err(|e| invalid(format!("{id}.{ev_name}: Input is not JSON: {e}")))?,
                    ),
                    _ => None,
                };
                let enabled = match (p.get("Enabled"), p.get("State")) {
                    (Some(v), _) => b(Some(v), true),
                    (None, Some(s)) => scalar(s) == "ENABLED",
                    _ => true,
                };
                schedules.push(ScheduleSpec {
                    event: ev_name.clone(),
                    rule_name: format!("{stack}-{id}-{ev_name}"),
                    expression: expr,
                    input,
                    enabled,
                });
            }
            other => {
                return Err(invalid(format!(
                    "{id}.{ev_name}: event type {other} is not supported by the local runtime"
                )));
            }
        }
    }
    let _ = ctx;
    Ok(FunctionSpec {
        logical_id: id.clone(),
        name: format!("{stack}-{id}"),
        binary,
        timeout_secs: u(get("Timeout"), "Timeout", 3)?,
        memory_mb: u(get("MemorySize"), "MemorySize", 128)?,
        reserved_concurrency: get("ReservedConcurrentExecutions")
            .map(|v| u(Some(v), "ReservedConcurrentExecutions", 1))
            .transpose()?
            .map(|n| n as u32),
        environment,
        http,
        sqs,
        schedules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn real() -> Wiring {
        let t = Template::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")).unwrap();
        build(&t, "ll", "us-east-1", &BTreeMap::new(), &|n| format!("http://sqs/{ACCOUNT_ID}/{n}")).unwrap()
    }

    #[test]
    fn the_real_template_wires_six_functions() {
        let w = real();
        let names: Vec<&str> = w.functions.iter().map(|f| f.binary.as_str()).collect();
        for b in ["oauth-callback", "webhook-ingest", "sync-worker", "backfill-fanout", "health-check", "admin-api"] {
            assert!(names.contains(&b), "{b} missing");
        }
        let ingest = w.functions.iter().find(|f| f.binary == "webhook-ingest").unwrap();
        assert_eq!(ingest.http[0].route_key(), "POST /webhooks/{tenant}/{source}");
        assert_eq!(ingest.environment["SYNC_QUEUE_URL"], "http://sqs/123456789012/ll-SyncQueue");
        assert_eq!(ingest.timeout_secs, 10);
        let worker = w.functions.iter().find(|f| f.binary == "sync-worker").unwrap();
        let sync = worker.sqs.iter().find(|s| s.queue_logical_id == "SyncQueue").unwrap();
        assert_eq!((sync.batch_size, sync.window_secs, sync.report_batch_item_failures), (1000, 1, true));
        let health = w.functions.iter().find(|f| f.binary == "health-check").unwrap();
        assert_eq!(health.schedules[0].expression, "rate(5 minutes)");
        // GET /health/{tenant} takes the admin credential, like the admin routes.
        assert_eq!(health.http[0].route_key(), "GET /health/{tenant}");
        assert!(health.http[0].iam_auth);
        assert_eq!(health.environment["ADMIN_AUTH"], "iam");
        assert!(!ingest.http[0].iam_auth);
        let q = w.queues.iter().find(|q| q.logical_id == "SyncQueue").unwrap();
        assert_eq!(q.dead_letter_queue.as_deref(), Some("SyncDeadLetterQueue"));
        assert!(q.attributes["RedrivePolicy"].contains("\"maxReceiveCount\":5"));
        let admin = w.functions.iter().find(|f| f.binary == "admin-api").unwrap();
        assert!(admin.http[0].iam_auth);
        let mut tables: Vec<&str> = w.tables.iter().map(|t| t.logical_id.as_str()).collect();
        tables.sort_unstable();
        assert_eq!(tables, ["ActivityTable", "AppliedTable", "StateTable"]);
        assert!(worker.environment["APPLIED_TABLE"].ends_with("AppliedTable"), "{:?}", worker.environment);
    }

    #[test]
    fn a_too_big_batch_without_window_is_refused_like_aws() {
        let t = Template::parse(
            "Resources:\n  Q: {Type: AWS::SQS::Queue}\n  F:\n    Type: AWS::Serverless::Function\n    Metadata: {BuildProperties: {Binary: f}}\n    Properties:\n      Events:\n        E: {Type: SQS, Properties: {Queue: !GetAtt Q.Arn, BatchSize: 50}}\n",
        )
        .unwrap();
        let e = build(&t, "s", "us-east-1", &BTreeMap::new(), &|n| n.to_string()).unwrap_err();
        assert!(e.to_string().contains("MaximumBatchingWindowInSeconds"), "{e}");
    }
}
