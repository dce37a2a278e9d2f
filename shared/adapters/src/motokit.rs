//! Test helper: a moto server of the test's own (from the project's `.venv`,
//! installed by `make setup`) on a free loopback port, stopped when dropped;
//! with the state and applied tables and queues shaped as `infra/template.yaml` declares
//! them, so adapters are tested against the DynamoDB and SQS APIs.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    pub url: String,
    child: Child,
}

fn moto_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("its address").port()
}

impl Moto {
    /// Start moto (a few tries on other ports if one is taken meanwhile).
    pub async fn start() -> Moto {
        let bin = moto_bin();
        assert!(bin.exists(), "{} is missing: run `make setup`", bin.display());
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting moto_server");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                if child.try_wait().ok().flatten().is_some() {
                    break; // exited: the port was taken
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    crate::install_crypto_provider();
                    return Moto { url: format!("http://127.0.0.1:{port}"), child };
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("moto_server did not start");
    }

    pub async fn sdk(&self) -> SdkConfig {
        crate::aws::load_local(&self.url, "us-east-1").await
    }

    /// A DynamoDB client and a fresh state table (pk/sk, gsi1) as the template has it.
    pub async fn state_table(&self, name: &str) -> aws_sdk_dynamodb::Client {
        let client = aws_sdk_dynamodb::Client::new(&self.sdk().await);
        let attr = |n: &str| {
            AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build().unwrap()
        };
        let key = |n: &str, t: KeyType| KeySchemaElement::builder().attribute_name(n).key_type(t).build().unwrap();
        client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk"))
            .attribute_definitions(attr("sk"))
            .attribute_definitions(attr("gsi1pk"))
            .attribute_definitions(attr("gsi1sk"))
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("gsi1")
                    .key_schema(key("gsi1pk", KeyType::Hash))
                    .key_schema(key("gsi1sk", KeyType::Range))
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("creating the state table");
        client
    }

    /// A DynamoDB client and a fresh applied-versions table (`pk` only) as the template has it.
    pub async fn applied_table(&self, name: &str) -> aws_sdk_dynamodb::Client {
        let client = aws_sdk_dynamodb::Client::new(&self.sdk().await);
        client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().unwrap())
            .send()
            .await
            .expect("creating the applied table");
        client
    }

    /// An SQS client and the URL of a fresh queue.
    pub async fn queue(&self, name: &str) -> (aws_sdk_sqs::Client, String) {
        let client = aws_sdk_sqs::Client::new(&self.sdk().await);
        let out = client.create_queue().queue_name(name).send().await.expect("creating a queue");
        (client, out.queue_url.expect("a queue URL"))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
