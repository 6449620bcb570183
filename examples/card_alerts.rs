//! A Rust function between two SQL tables, in one checkpointed job: flag a
//! card when a tiny payment (a thief testing it) is followed by a large one
//! within a minute of event time.
//!
//! `payments` is a SQL table (CSV files, with a watermark); the function is
//! keyed by card and keeps, per card, all five kinds of keyed state —
//! `ValueState` (the last tiny payment), `ListState` (payments since),
//! `MapState` (payments per merchant, with its own TTL), `ReducingState`
//! (total spent) and `AggregatingState` (average payment) — and an event-time
//! timer that fires a minute later: it forgets the tiny payment and, when no
//! large one followed, reports it as unanswered (a row without a large
//! payment). Alerts go to a SQL table (`filesystem`, exactly once).
//!
//! ```text
//! cargo run --example card_alerts                       # demo data, prints the alerts
//! cargo run --example card_alerts -- <input dir> <output dir> \
//!     [--checkpoints <dir>] [--backend hashmap|rocksdb] [--parallelism N]
//! ```
//!
//! With `--checkpoints`, the job checkpoints every 200 ms under the pipeline
//! name `card-alerts`: kill it (SIGKILL) and start it again, with the same or
//! another backend and parallelism, and it resumes where the last checkpoint
//! left off; the alerts are written exactly once.

use std::sync::Arc;
use std::time::Duration;

use weir::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use weir::functions::{
    AggregateFunction, AggregatingState, KeyedProcessFunction, KeyedState, ListState, MapState,
    ProcessContext, ReducingState, Result, Row, ScalarValue, StateTtlConfig, TimeDomain,
    ValueState,
};
use weir::StreamContext;

/// Payments below this many cents are tiny.
const TINY: i64 = 100;
/// Payments of at least this many cents are large.
const LARGE: i64 = 50_000;
/// How long after a tiny payment a large one raises an alert.
const WITHIN_MS: i64 = 60_000;

/// The average of the amounts added.
struct Average;

impl AggregateFunction<i64, f64> for Average {
    type Acc = (i64, i64);
    fn create_accumulator(&self) -> (i64, i64) {
        (0, 0)
    }
    fn add(&self, value: i64, (sum, n): (i64, i64)) -> (i64, i64) {
        (sum + value, n + 1)
    }
    fn result(&self, (sum, n): &(i64, i64)) -> f64 {
        if *n == 0 {
            0.0
        } else {
            *sum as f64 / *n as f64
        }
    }
}

/// The per-card state handles, made in `open`.
#[derive(Clone)]
struct Handles {
    /// The last tiny payment: (time, cents).
    tiny: ValueState<(i64, i64)>,
    /// Payments since the tiny one, in cents.
    since: ListState<i64>,
    /// Payments per merchant (forgotten an hour after the last write).
    merchants: MapState<String, u64>,
    /// Tiny payments no large one followed yet: time → cents.
    unanswered: MapState<i64, i64>,
    /// Total spent, in cents.
    total: ReducingState<i64>,
    /// Average payment, in cents.
    average: AggregatingState<i64, f64>,
}

/// The function: one instance per subtask, its state per card.
#[derive(Clone, Default)]
struct TinyThenLarge {
    handles: Option<Handles>,
}

fn alert_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("card", DataType::Utf8, true),
        Field::new("tiny_cents", DataType::Int64, true),
        Field::new("large_cents", DataType::Int64, true),
        Field::new("at", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("since_tiny", DataType::Int64, true),
        Field::new("merchants", DataType::Int64, true),
        Field::new("total_cents", DataType::Int64, true),
        Field::new("average_cents", DataType::Float64, true),
    ]))
}

impl KeyedProcessFunction for TinyThenLarge {
    fn output_schema(&self) -> SchemaRef {
        alert_schema()
    }

    fn open(&mut self, state: &mut KeyedState) -> Result<()> {
        let hour = StateTtlConfig::new(Duration::from_secs(3600));
        self.handles = Some(Handles {
            tiny: state.value_state("tiny", None)?,
            since: state.list_state("since", None)?,
            merchants: state.map_state("merchants", Some(hour))?,
            unanswered: state.map_state("unanswered", None)?,
            total: state.reducing_state("total", None, |a: i64, b: i64| a + b)?,
            average: state.aggregating_state("average", None, Average)?,
        });
        Ok(())
    }

    fn process_element(&mut self, row: &Row<'_>, ctx: &mut ProcessContext<'_, '_>) -> Result<()> {
        let Some(h) = self.handles.clone() else {
            return Ok(());
        };
        let (Some(cents), Some(at)) = (row.i64("cents")?, row.timestamp_ms("ts")?) else {
            return Ok(());
        };
        let merchant = row.string("merchant")?.unwrap_or_default();
        let s = ctx.state();
        h.total.add(s, cents)?;
        h.average.add(s, cents)?;
        let seen = h.merchants.get(s, &merchant)?.unwrap_or(0);
        h.merchants.put(s, &merchant, &(seen + 1))?;
        match h.tiny.value(s)? {
            Some((tiny_at, tiny_cents)) if cents >= LARGE && at - tiny_at <= WITHIN_MS => {
                let since = h.since.get(s)?.len() as i64;
                let merchants = h.merchants.entries(s)?.len() as i64;
                let total = h.total.get(s)?.unwrap_or(0);
                let average = h.average.get(s)?.unwrap_or(0.0);
                h.tiny.clear(s)?;
                h.since.clear(s)?;
                let card = ctx.key()[0].clone();
                ctx.emit(vec![
                    card,
                    ScalarValue::Int64(Some(tiny_cents)),
                    ScalarValue::Int64(Some(cents)),
                    ScalarValue::TimestampMillisecond(Some(at), None),
                    ScalarValue::Int64(Some(since)),
                    ScalarValue::Int64(Some(merchants)),
                    ScalarValue::Int64(Some(total)),
                    ScalarValue::Float64(Some(average)),
                ]);
            }
            Some(_) => h.since.add(s, &cents)?,
            None => {}
        }
        if cents >= LARGE {
            // Every tiny payment of the last minute is answered.
            for (tiny_at, _) in h.unanswered.entries(ctx.state())? {
                if tiny_at <= at && at - tiny_at <= WITHIN_MS {
                    h.unanswered.remove(ctx.state(), &tiny_at)?;
                }
            }
        }
        if cents < TINY {
            h.tiny.update(ctx.state(), &(at, cents))?;
            h.unanswered.put(ctx.state(), &at, &cents)?;
            h.since.clear(ctx.state())?;
            // Forget it once the watermark has passed the minute.
            ctx.register_event_time_timer(at + WITHIN_MS);
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        time: i64,
        _domain: TimeDomain,
        ctx: &mut ProcessContext<'_, '_>,
    ) -> Result<()> {
        let Some(h) = self.handles.clone() else {
            return Ok(());
        };
        let s = ctx.state();
        // A later tiny payment has its own timer.
        if let Some((tiny_at, _)) = h.tiny.value(s)? {
            if tiny_at + WITHIN_MS <= time {
                h.tiny.clear(s)?;
                h.since.clear(s)?;
            }
        }
        // A tiny payment no large one followed within the minute: reported
        // with no large payment (and, since the timer's moment depends on
        // when the watermark comes, none of the running figures).
        let tiny_at = time - WITHIN_MS;
        if let Some(tiny_cents) = h.unanswered.get(s, &tiny_at)? {
            h.unanswered.remove(s, &tiny_at)?;
            let card = ctx.key()[0].clone();
            ctx.emit(vec![
                card,
                ScalarValue::Int64(Some(tiny_cents)),
                ScalarValue::Int64(None),
                ScalarValue::TimestampMillisecond(Some(tiny_at), None),
                ScalarValue::Int64(None),
                ScalarValue::Int64(None),
                ScalarValue::Int64(None),
                ScalarValue::Float64(None),
            ]);
        }
        Ok(())
    }
}

/// Demo payments: 40 cards, a tiny payment now and then, large ones often.
fn demo_input(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut x: u64 = 7;
    let mut csv = String::new();
    for i in 0..20_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let card = format!("card-{:02}", x % 40);
        let cents = match x % 97 {
            0..=2 => 1 + (x >> 8) % 99,
            3..=12 => LARGE as u64 + (x >> 8) % 100_000,
            _ => 500 + (x >> 8) % 20_000,
        };
        let merchant = format!("shop-{}", (x >> 20) % 12);
        let ms = 1_700_000_000_000 + i * 250;
        csv.push_str(&format!("{card},{cents},{merchant},{ms}\n"));
    }
    std::fs::write(dir.join("payments.csv"), csv)
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // The engine's messages ("Resuming job …") on stderr.
    weir::init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let demo = tempfile::tempdir()?;
    let (input, output) = match (args.first(), args.get(1)) {
        (Some(i), Some(o)) if !i.starts_with("--") => (i.into(), o.into()),
        _ => {
            let input = demo.path().join("payments");
            demo_input(&input)?;
            (input, demo.path().join("alerts"))
        }
    };
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let mut builder = StreamContext::builder()
        .set(
            "parallelism.default",
            &flag("--parallelism").unwrap_or("2".into()),
        )?
        .set(
            "state.backend.type",
            &flag("--backend").unwrap_or("hashmap".into()),
        )?
        .set("pipeline.name", "card-alerts")?
        .set("rest.enabled", "false")?;
    if let Some(dir) = flag("--checkpoints") {
        builder = builder
            .set("execution.checkpointing.interval", "200 ms")?
            .set("execution.checkpointing.dir", &dir)?;
    }
    let mut ctx = builder.build();
    ctx.sql(&format!(
        "CREATE TABLE payments (card STRING, cents BIGINT, merchant STRING, ms BIGINT,
           ts AS TO_TIMESTAMP_MILLIS(ms), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE alerts (card STRING, tiny_cents BIGINT, large_cents BIGINT, at TIMESTAMP(3),
           since_tiny BIGINT, merchants BIGINT, total_cents BIGINT, average_cents DOUBLE)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
        input.display(),
        output.display()
    ))
    .await?;
    let job = ctx
        .table("payments")?
        .key_by(["card"])?
        .process(TinyThenLarge::default())?
        .insert_into("alerts")
        .await?;
    job.wait().await?;
    if args.is_empty() {
        let mut alerts = 0;
        for entry in std::fs::read_dir(&output)? {
            let path = entry?.path();
            if path
                .file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
            {
                let text = std::fs::read_to_string(&path)?;
                alerts += text.lines().count();
                print!("{text}");
            }
        }
        println!("{alerts} alerts");
    }
    Ok(())
}
