//! Embedding Weir in a Rust program: the same SQL as the shell, with results
//! as Arrow record batches.
//!
//! Run with `cargo run --example embed`.

use weir::arrow::util::pretty::pretty_format_batches;
use weir::StreamContext;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut ctx = StreamContext::builder()
        .set("parallelism.default", "2")?
        .build();
    ctx.sql(
        "CREATE TABLE nexmark (
            event_type INT,
            bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
            dateTime AS bid.dateTime,
            WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
        ) WITH ('connector' = 'nexmark', 'events.num' = '100000')",
    )
    .await?;

    // A windowed aggregation; `collect` waits for the bounded job to finish.
    let mut query = ctx
        .query(
            "SELECT window_start, COUNT(*) AS bids, MAX(bid.price) AS top_price
             FROM TABLE(TUMBLE(TABLE nexmark, DESCRIPTOR(dateTime), INTERVAL '2' SECOND))
             WHERE event_type = 2
             GROUP BY window_start, window_end",
        )
        .await?;
    // Batches arrive as windows fire; stream them instead of collecting.
    let mut batches = Vec::new();
    while let Some(batch) = query.next().await {
        batches.push(batch);
    }
    query.job.wait().await?;
    println!("{}", pretty_format_batches(&batches)?);
    Ok(())
}
