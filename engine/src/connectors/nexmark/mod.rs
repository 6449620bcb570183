//! `'connector' = 'nexmark'`: the Nexmark benchmark's event generator.
//!
//! Options: `events.num` (bounded when set), `first-event.rate` and
//! `next-event.rate` (events per second; they space event time, and when
//! given they also limit the wall-clock rate), `rate.period` (seconds, how
//! long a period of the two rates lasts), `person.proportion`,
//! `auction.proportion`, `bid.proportion`, `seed`.
//!
//! Subtask `k` of `p` generates the events whose index is `k` modulo `p`.

mod generator;
mod random;

use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;

pub use generator::{nexmark_schema, EventBatchBuilder, GeneratorConfig, DEFAULT_BASE_TIME_MS};

use super::{Options, SourceFactory, SourcePoll, SourceReader};
use crate::error::{EngineError, Result};
use crate::operators::TaskContext;

/// The `nexmark` connector's registration.
pub const CONNECTOR: super::Connector = super::Connector {
    name: "nexmark",
    source: Some(|options, schema| Ok(std::sync::Arc::new(NexmarkSource::new(options, schema)?))),
    sink: None,
    metadata: &[],
    validate: None,
};

/// A configured Nexmark source.
pub struct NexmarkSource {
    config: GeneratorConfig,
    events: Option<u64>,
    throttle: Option<f64>,
    /// For each declared column, its index in the generated schema.
    projection: Vec<usize>,
    schema: SchemaRef,
}

impl NexmarkSource {
    /// Reads the options and checks the declared columns against the generator's.
    pub fn new(mut options: Options, schema: SchemaRef) -> Result<Self> {
        let mut config = GeneratorConfig::default();
        let events = options.parse::<u64>("events.num", "a non-negative integer")?;
        let first =
            options.parse::<f64>("first-event.rate", "a positive number of events per second")?;
        let next =
            options.parse::<f64>("next-event.rate", "a positive number of events per second")?;
        let period = options.parse::<f64>("rate.period", "a positive number of seconds")?;
        for (key, target) in [
            ("person.proportion", &mut config.person_proportion),
            ("auction.proportion", &mut config.auction_proportion),
            ("bid.proportion", &mut config.bid_proportion),
        ] {
            if let Some(v) = options.parse::<i64>(key, "a positive integer")? {
                if v <= 0 {
                    return Err(EngineError::option(
                        "nexmark",
                        format!("option '{key}' must be a positive integer, found '{v}'"),
                    ));
                }
                *target = v;
            }
        }
        if let Some(seed) = options.parse::<i64>("seed", "an integer")? {
            config.seed = seed;
        }
        options.finish()?;
        for (key, rate) in [
            ("first-event.rate", first),
            ("next-event.rate", next),
            ("rate.period", period),
        ] {
            if rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
                return Err(EngineError::option(
                    "nexmark",
                    format!("option '{key}' must be positive"),
                ));
            }
        }
        if let Some(r) = first {
            config.first_rate = r;
            config.next_rate = next.unwrap_or(r);
        } else if let Some(r) = next {
            config.next_rate = r;
        }
        if let Some(p) = period {
            config.rate_period_s = p;
        }
        let generated = nexmark_schema();
        let mut projection = Vec::new();
        for field in schema.fields() {
            let Ok(index) = generated.index_of(field.name()) else {
                return Err(EngineError::option(
                    "nexmark",
                    format!(
                        "column '{}' is not produced by the generator; its columns are event_type, person, auction, bid (computed columns may be added with AS)",
                        field.name()
                    ),
                ));
            };
            let expected = generated.field(index).data_type();
            if !field.data_type().equals_datatype(expected) {
                return Err(EngineError::option(
                    "nexmark",
                    format!(
                        "column '{}' must have type {expected}, declared as {}",
                        field.name(),
                        field.data_type()
                    ),
                ));
            }
            projection.push(index);
        }
        let throttle = first
            .or(next)
            .map(|_| config.first_rate.min(config.next_rate));
        Ok(Self {
            config,
            events,
            throttle,
            projection,
            schema,
        })
    }
}

impl SourceFactory for NexmarkSource {
    fn create_reader(&self, ctx: &TaskContext) -> Result<Box<dyn SourceReader>> {
        Ok(Box::new(NexmarkReader {
            config: self.config.clone(),
            next: ctx.subtask as i64,
            step: ctx.parallelism as i64,
            limit: self.events.map(|n| n as i64),
            batch_size: ctx.batch_size,
            throttle: self.throttle.map(|r| r / ctx.parallelism as f64),
            started: Instant::now(),
            produced: 0,
            projection: self.projection.clone(),
            schema: self.schema.clone(),
            generated: nexmark_schema(),
            produced_before: None,
        }))
    }

    fn redistribute(
        &self,
        old: &[Option<serde_json::Value>],
        parallelism: usize,
        subtask: usize,
    ) -> Result<Option<serde_json::Value>> {
        super::strided::redistribute(old, "next_event", parallelism, subtask)
    }

    fn is_bounded(&self) -> bool {
        self.events.is_some()
    }

    fn describe(&self) -> String {
        match self.events {
            Some(n) => format!("connector=[nexmark], events=[{n}]"),
            None => "connector=[nexmark], unbounded".into(),
        }
    }
}

struct NexmarkReader {
    config: GeneratorConfig,
    next: i64,
    step: i64,
    limit: Option<i64>,
    batch_size: usize,
    /// Events per second for this subtask, when rate-limited.
    throttle: Option<f64>,
    started: Instant,
    produced: u64,
    projection: Vec<usize>,
    schema: SchemaRef,
    generated: SchemaRef,
    /// Events an earlier run at another parallelism generated already.
    produced_before: Option<super::strided::Produced>,
}

impl SourceReader for NexmarkReader {
    fn poll_next(&mut self) -> Result<SourcePoll> {
        if self.limit.is_some_and(|l| self.next >= l) {
            return Ok(SourcePoll::End);
        }
        let mut want = self.batch_size;
        if let Some(rate) = self.throttle {
            let due = (self.started.elapsed().as_secs_f64() * rate) as u64;
            if due <= self.produced {
                let wait = (self.produced + 1) as f64 / rate - self.started.elapsed().as_secs_f64();
                return Ok(SourcePoll::Idle(Duration::from_secs_f64(
                    wait.clamp(0.001, 0.1),
                )));
            }
            want = want.min((due - self.produced) as usize);
        }
        let mut builder = EventBatchBuilder::new(want);
        let mut count = 0;
        while count < want && self.limit.is_none_or(|l| self.next < l) {
            if let Some(before) = &self.produced_before {
                if before.contains(self.next as u64) {
                    self.next += self.step;
                    continue;
                }
                if self.next as u64 >= before.end() {
                    self.produced_before = None;
                }
            }
            builder.push(&self.config, self.next);
            self.next += self.step;
            count += 1;
        }
        self.produced += count as u64;
        let batch = builder.finish(&self.generated)?;
        let batch = batch.project(&self.projection)?;
        let batch = datafusion::arrow::record_batch::RecordBatch::try_new(
            self.schema.clone(),
            batch.columns().to_vec(),
        )?;
        Ok(SourcePoll::Batch(batch))
    }
    fn position(&self) -> Option<serde_json::Value> {
        let mut position = serde_json::json!({ "next_event": self.next });
        if let Some(before) = &self.produced_before {
            position["produced"] = serde_json::to_value(before).unwrap_or_default();
        }
        Some(position)
    }

    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        self.next = position
            .get("next_event")
            .and_then(|v| v.as_i64())
            .ok_or_else(|| {
                crate::error::EngineError::Internal(format!("bad nexmark position {position}"))
            })?;
        self.produced_before = super::strided::Produced::from_position(position);
        Ok(())
    }
}
