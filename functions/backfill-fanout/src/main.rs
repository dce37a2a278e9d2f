//! backfill-fanout Lambda: thin entry point over the library.

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    learnlink_adapters::lambda::init_tracing();
    lambda_runtime::run(service_fn(|ev: LambdaEvent<serde_json::Value>| async move {
        backfill_fanout::handle(ev.payload).map_err(Error::from)
    }))
    .await
}
