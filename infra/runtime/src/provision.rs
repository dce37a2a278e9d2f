//! Create the template's queues and tables in moto, as CloudFormation would.

use crate::wiring::{QueueSpec, TableSpec, Wiring};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ProvisionedThroughput, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
#[error("provisioning {resource}: {message}")]
pub struct ProvisionError {
    pub resource: String,
    pub message: String,
}

fn perr(resource: &str, e: impl std::fmt::Display) -> ProvisionError {
    ProvisionError { resource: resource.to_string(), message: e.to_string() }
}

pub async fn provision(
    wiring: &Wiring,
    sqs: &aws_sdk_sqs::Client,
    ddb: &aws_sdk_dynamodb::Client,
) -> Result<(), ProvisionError> {
    // Dead-letter queues first: a redrive policy names an existing queue.
    let mut ordered: Vec<&QueueSpec> = wiring.queues.iter().filter(|q| q.dead_letter_queue.is_none()).collect();
    ordered.extend(wiring.queues.iter().filter(|q| q.dead_letter_queue.is_some()));
    for q in ordered {
        create_queue(q, sqs).await?;
    }
    for t in &wiring.tables {
        create_table(t, ddb).await?;
    }
    Ok(())
}

async fn create_queue(q: &QueueSpec, sqs: &aws_sdk_sqs::Client) -> Result<(), ProvisionError> {
    let mut req = sqs.create_queue().queue_name(&q.name);
    for (k, v) in &q.attributes {
        req = req.attributes(QueueAttributeName::from(k.as_str()), v);
    }
    let out = req.send().await.map_err(|e| perr(&q.logical_id, aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    let url = out.queue_url.unwrap_or_default();
    if url != q.url {
        return Err(perr(&q.logical_id, format!("moto answered queue URL {url}, the wiring expected {}", q.url)));
    }
    Ok(())
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).map(crate::template::scalar).unwrap_or_default()
}

fn keys(v: &Value) -> Result<Vec<KeySchemaElement>, String> {
    v.as_array()
        .ok_or("KeySchema must be a list")?
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(s(k, "AttributeName"))
                .key_type(KeyType::from(s(k, "KeyType").as_str()))
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

async fn create_table(t: &TableSpec, ddb: &aws_sdk_dynamodb::Client) -> Result<(), ProvisionError> {
    let p = &t.properties;
    let mut req = ddb.create_table().table_name(&t.name);
    for a in p.get("AttributeDefinitions").and_then(Value::as_array).into_iter().flatten() {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(s(a, "AttributeName"))
                .attribute_type(ScalarAttributeType::from(s(a, "AttributeType").as_str()))
                .build()
                .map_err(|e| perr(&t.logical_id, e))?,
        );
    }
    req =
        req.set_key_schema(Some(keys(p.get("KeySchema").unwrap_or(&Value::Null)).map_err(|e| perr(&t.logical_id, e))?));
    let on_demand = s(p, "BillingMode") == "PAY_PER_REQUEST";
    let throughput = || ProvisionedThroughput::builder().read_capacity_units(5).write_capacity_units(5).build();
    if on_demand {
        req = req.billing_mode(BillingMode::PayPerRequest);
    } else {
        req = req.provisioned_throughput(throughput().map_err(|e| perr(&t.logical_id, e))?);
    }
    for g in p.get("GlobalSecondaryIndexes").and_then(Value::as_array).into_iter().flatten() {
        let proj = g.get("Projection").cloned().unwrap_or(Value::Null);
        let mut pb = Projection::builder().projection_type(ProjectionType::from(s(&proj, "ProjectionType").as_str()));
        for a in proj.get("NonKeyAttributes").and_then(Value::as_array).into_iter().flatten() {
            pb = pb.non_key_attributes(crate::template::scalar(a));
        }
        let mut gb = GlobalSecondaryIndex::builder()
            .index_name(s(g, "IndexName"))
            .set_key_schema(Some(keys(g.get("KeySchema").unwrap_or(&Value::Null)).map_err(|e| perr(&t.logical_id, e))?))
            .projection(pb.build());
        if !on_demand {
            gb = gb.provisioned_throughput(throughput().map_err(|e| perr(&t.logical_id, e))?);
        }
        req = req.global_secondary_indexes(gb.build().map_err(|e| perr(&t.logical_id, e))?);
    }
    match req.send().await {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_in_use_exception()) => {}
        Err(e) => return Err(perr(&t.logical_id, aws_sdk_dynamodb::error::DisplayErrorContext(e))),
    }
    if let Some(ttl) = p.get("TimeToLiveSpecification")
        && crate::template::scalar(ttl.get("Enabled").unwrap_or(&Value::Null)) == "true"
    {
        ddb.update_time_to_live()
            .table_name(&t.name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(s(ttl, "AttributeName"))
                    .enabled(true)
                    .build()
                    .map_err(|e| perr(&t.logical_id, e))?,
            )
            .send()
            .await
            .map_err(|e| perr(&t.logical_id, aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
    }
    Ok(())
}
