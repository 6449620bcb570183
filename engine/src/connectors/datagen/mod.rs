//! `'connector' = 'datagen'`: rows of random or sequential values for any
//! schema, with Flink's options: `rows-per-second` (default 10000),
//! `number-of-rows` (bounded when set), and per field
//! `fields.<f>.kind` = `random` | `sequence`, `fields.<f>.min` / `.max`
//! (random numbers), `fields.<f>.length` (random strings),
//! `fields.<f>.start` / `.end` (sequences), `fields.<f>.null-rate`,
//! `fields.<f>.max-past` (random timestamps, ms before now).
//!
//! Random values differ from run to run, as in Flink, unless seeded:
//! `fields.<f>.seed` fixes one field's values, `seed` every field's. A
//! value is a function of the row index and its field's seed, and the seeds
//! are part of the source's checkpointed position, so a restored job goes
//! on generating the same rows as if it had never stopped. Random
//! timestamps follow the clock (as in Flink).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::{Options, SourceFactory, SourcePoll, SourceReader};
use crate::error::{EngineError, Result};
use crate::operators::TaskContext;

#[derive(Clone, Debug)]
enum FieldGen {
    Random {
        min: f64,
        max: f64,
        length: usize,
        null_rate: f64,
        max_past: i64,
    },
    Sequence {
        start: i64,
        end: i64,
    },
}

/// The `datagen` connector's registration.
pub const CONNECTOR: super::Connector = super::Connector {
    name: "datagen",
    source: Some(|options, schema| Ok(std::sync::Arc::new(DatagenSource::new(options, schema)?))),
    sink: None,
    metadata: &[],
    validate: None,
};

/// A configured datagen source.
pub struct DatagenSource {
    schema: SchemaRef,
    fields: Vec<FieldGen>,
    rows_per_second: f64,
    rows: Option<u64>,
    /// Per field: what its random values are derived from.
    seeds: Vec<u64>,
}

impl DatagenSource {
    /// Reads the options; every field's kind and type is checked here.
    pub fn new(mut options: Options, schema: SchemaRef) -> Result<Self> {
        let rows_per_second = options
            .parse::<f64>("rows-per-second", "a positive number")?
            .unwrap_or(10_000.0);
        if !(rows_per_second > 0.0 && rows_per_second.is_finite()) {
            return Err(EngineError::option(
                "datagen",
                format!(
                    "option 'rows-per-second' must be a positive number, found '{rows_per_second}'"
                ),
            ));
        }
        let mut rows = options.parse::<u64>("number-of-rows", "a non-negative integer")?;
        let table_seed = options.parse::<u64>("seed", "a non-negative integer")?;
        // A seed nobody chose: different in every process and every table.
        let base_seed = table_seed.unwrap_or_else(|| weir_checkpoint::random_u64(0x5eed));
        let mut seeds = Vec::new();
        let mut field_opts: BTreeMap<String, String> = options.with_prefix("fields.");
        options.finish()?;
        let mut fields = Vec::new();
        for field in schema.fields() {
            let name = field.name();
            let mut take = |k: &str| field_opts.remove(&format!("fields.{name}.{k}"));
            let kind = take("kind").unwrap_or_else(|| "random".into());
            let field_seed = match take("seed") {
                Some(v) => v.trim().parse::<u64>().map_err(|_| {
                    EngineError::option(
                        "datagen",
                        format!("option 'fields.{name}.seed' must be a non-negative integer, found '{v}'"),
                    )
                })?,
                None => mix(base_seed, seeds.len()),
            };
            seeds.push(field_seed);
            let num = |v: Option<String>, key: &str| -> Result<Option<f64>> {
                v.map(|v| {
                    v.trim().parse::<f64>().map_err(|_| {
                        EngineError::option(
                            "datagen",
                            format!("option 'fields.{name}.{key}' must be a number, found '{v}'"),
                        )
                    })
                })
                .transpose()
            };
            let supported = matches!(
                field.data_type(),
                DataType::Int8
                    | DataType::Int16
                    | DataType::Int32
                    | DataType::Int64
                    | DataType::Float32
                    | DataType::Float64
                    | DataType::Boolean
                    | DataType::Utf8
                    | DataType::Timestamp(_, _)
            );
            if !supported {
                return Err(EngineError::option(
                    "datagen",
                    format!("column '{name}' has type {} which datagen cannot generate (numbers, BOOLEAN, VARCHAR, TIMESTAMP)", field.data_type()),
                ));
            }
            let gen = match kind.as_str() {
                "random" => {
                    // What the column's type can hold, for integer types.
                    let range = match field.data_type() {
                        DataType::Int8 => Some((i8::MIN as f64, i8::MAX as f64)),
                        DataType::Int16 => Some((i16::MIN as f64, i16::MAX as f64)),
                        DataType::Int32 => Some((i32::MIN as f64, i32::MAX as f64)),
                        DataType::Int64 => Some((i64::MIN as f64, i64::MAX as f64)),
                        _ => None,
                    };
                    let min = num(take("min"), "min")?.unwrap_or(if matches!(field.data_type(), DataType::Int8) { -128.0 } else { 0.0 });
                    let max = num(take("max"), "max")?.unwrap_or(range.map_or(1.0, |(_, hi)| hi));
                    if min > max {
                        return Err(EngineError::option(
                            "datagen",
                            format!("option 'fields.{name}.min' ({min}) is above 'fields.{name}.max' ({max})"),
                        ));
                    }
                    if let Some((lo, hi)) = range.filter(|(lo, hi)| min < *lo || max > *hi) {
                        return Err(EngineError::option(
                            "datagen",
                            format!(
                                "options 'fields.{name}.min'/'max' ({min} to {max}) go beyond what column '{name}' of type {} holds ({lo} to {hi})",
                                field.data_type()
                            ),
                        ));
                    }
                    let null_rate = num(take("null-rate"), "null-rate")?.unwrap_or(0.0);
                    if !(0.0..=1.0).contains(&null_rate) {
                        return Err(EngineError::option(
                            "datagen",
                            format!("option 'fields.{name}.null-rate' must be between 0 and 1, found {null_rate}"),
                        ));
                    }
                    FieldGen::Random {
                        min,
                        max,
                        length: num(take("length"), "length")?.unwrap_or(100.0) as usize,
                        null_rate,
                        max_past: num(take("max-past"), "max-past")?.unwrap_or(0.0) as i64,
                    }
                }
                "sequence" => {
                    let start = num(take("start"), "start")?;
                    let end = num(take("end"), "end")?;
                    let (Some(start), Some(end)) = (start, end) else {
                        return Err(EngineError::option(
                            "datagen",
                            format!("sequence field '{name}' needs 'fields.{name}.start' and 'fields.{name}.end'"),
                        ));
                    };
                    let count = (end - start + 1.0).max(0.0) as u64;
                    rows = Some(rows.map_or(count, |r| r.min(count)));
                    FieldGen::Sequence { start: start as i64, end: end as i64 }
                }
                other => {
                    return Err(EngineError::option(
                        "datagen",
                        format!("option 'fields.{name}.kind' must be 'random' or 'sequence', found '{other}'"),
                    ))
                }
            };
            fields.push(gen);
        }
        if let Some(key) = field_opts.keys().next() {
            return Err(EngineError::option(
                "datagen",
                format!("unknown option '{key}': per-field options are fields.<column>.kind, min, max, length, start, end, null-rate, max-past, seed, for a column of the table"),
            ));
        }
        Ok(Self {
            schema,
            fields,
            rows_per_second,
            rows,
            seeds,
        })
    }
}

impl SourceFactory for DatagenSource {
    fn create_reader(&self, ctx: &TaskContext) -> Result<Box<dyn SourceReader>> {
        Ok(Box::new(DatagenReader {
            schema: self.schema.clone(),
            fields: self.fields.clone(),
            seeds: self.seeds.clone(),
            next: ctx.subtask as u64,
            step: ctx.parallelism as u64,
            limit: self.rows,
            batch_size: ctx.batch_size,
            rate: self.rows_per_second / ctx.parallelism as f64,
            started: Instant::now(),
            produced: 0,
            produced_before: None,
        }))
    }

    fn redistribute(
        &self,
        old: &[Option<serde_json::Value>],
        parallelism: usize,
        subtask: usize,
    ) -> Result<Option<serde_json::Value>> {
        let mut position = super::strided::redistribute(old, "next_row", parallelism, subtask)?;
        // The seeds the earlier run drew go on.
        let seeds = old.iter().flatten().find_map(|p| p.get("seeds").cloned());
        if let (Some(p), Some(seeds)) = (position.as_mut(), seeds) {
            p["seeds"] = seeds;
        }
        Ok(position)
    }
    fn is_bounded(&self) -> bool {
        self.rows.is_some()
    }
    fn describe(&self) -> String {
        format!(
            "connector=[datagen], rows=[{}]",
            self.rows.map_or("unbounded".into(), |r| r.to_string())
        )
    }
}

struct DatagenReader {
    schema: SchemaRef,
    fields: Vec<FieldGen>,
    seeds: Vec<u64>,
    next: u64,
    step: u64,
    limit: Option<u64>,
    batch_size: usize,
    rate: f64,
    started: Instant,
    produced: u64,
    /// Rows an earlier run at another parallelism generated already.
    produced_before: Option<super::strided::Produced>,
}

/// A well-mixed 64-bit hash of (row, field): the random value of that cell.
fn mix(row: u64, field: usize) -> u64 {
    let mut z = row.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (field as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(row: u64, field: usize) -> f64 {
    (mix(row, field) >> 11) as f64 / (1u64 << 53) as f64
}

impl SourceReader for DatagenReader {
    fn poll_next(&mut self) -> Result<SourcePoll> {
        if self.limit.is_some_and(|l| self.next >= l) {
            return Ok(SourcePoll::End);
        }
        let due = (self.started.elapsed().as_secs_f64() * self.rate) as u64;
        if due <= self.produced {
            return Ok(SourcePoll::Idle(Duration::from_millis(5)));
        }
        let want = self.batch_size.min((due - self.produced) as usize);
        let mut rows = Vec::with_capacity(want);
        while rows.len() < want && self.limit.is_none_or(|l| self.next < l) {
            if let Some(before) = &self.produced_before {
                if before.contains(self.next) {
                    self.next += self.step;
                    continue;
                }
                if self.next >= before.end() {
                    self.produced_before = None;
                }
            }
            rows.push(self.next);
            self.next += self.step;
        }
        self.produced += rows.len() as u64;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (f, (field, gen)) in self.schema.fields().iter().zip(&self.fields).enumerate() {
            let dt = field.data_type();
            // Random values of the field: a function of row and seed.
            let seed = self.seeds.get(f).copied().unwrap_or(0);
            let keyed: Vec<u64> = match gen {
                FieldGen::Random { .. } => rows.iter().map(|r| r ^ seed).collect(),
                FieldGen::Sequence { .. } => Vec::new(),
            };
            let null = |r: u64, rate: f64| rate > 0.0 && unit(r, f + 1000) < rate;
            let array: ArrayRef = match gen {
                FieldGen::Sequence { start, end } => {
                    let v: Int64Array = rows
                        .iter()
                        .map(|r| Some((*start + *r as i64).min(*end)))
                        .collect();
                    cast(&(Arc::new(v) as ArrayRef), dt)?
                }
                FieldGen::Random {
                    min,
                    max,
                    length,
                    null_rate,
                    max_past,
                } => match dt {
                    DataType::Boolean => Arc::new(
                        keyed
                            .iter()
                            .map(|r| (!null(*r, *null_rate)).then(|| mix(*r, f) & 1 == 1))
                            .collect::<BooleanArray>(),
                    ),
                    DataType::Utf8 => Arc::new(
                        keyed
                            .iter()
                            .map(|r| {
                                (!null(*r, *null_rate)).then(|| {
                                    (0..*length)
                                        .map(|i| (b'a' + (mix(*r, f * 131 + i) % 26) as u8) as char)
                                        .collect::<String>()
                                })
                            })
                            .collect::<StringArray>(),
                    ),
                    DataType::Timestamp(unit_, tz) => {
                        let v: TimestampMillisecondArray = keyed
                            .iter()
                            .map(|r| {
                                (!null(*r, *null_rate))
                                    .then(|| now - (unit(*r, f) * *max_past as f64) as i64)
                            })
                            .collect();
                        cast(
                            &(Arc::new(v) as ArrayRef),
                            &DataType::Timestamp(*unit_, tz.clone()),
                        )?
                    }
                    DataType::Float32 | DataType::Float64 => {
                        let v: Float64Array = keyed
                            .iter()
                            .map(|r| {
                                (!null(*r, *null_rate)).then(|| min + unit(*r, f) * (max - min))
                            })
                            .collect();
                        if matches!(dt, DataType::Float32) {
                            cast(&(Arc::new(v) as ArrayRef), &DataType::Float32)?
                        } else {
                            Arc::new(v)
                        }
                    }
                    _ => {
                        let span = (*max - *min).max(0.0) as u128 + 1;
                        let v: Int64Array = keyed
                            .iter()
                            .map(|r| {
                                (!null(*r, *null_rate)).then(|| {
                                    (*min as i128 + (mix(*r, f) as u128 % span) as i128) as i64
                                })
                            })
                            .collect();
                        cast(&(Arc::new(v) as ArrayRef), dt)?
                    }
                },
            };
            columns.push(array);
        }
        Ok(SourcePoll::Batch(RecordBatch::try_new(
            self.schema.clone(),
            columns,
        )?))
    }
    fn position(&self) -> Option<serde_json::Value> {
        // Every value is a function of the row number (timestamps aside,
        // which are relative to the wall clock by definition).
        let mut position = serde_json::json!({ "next_row": self.next, "seeds": self.seeds });
        if let Some(before) = &self.produced_before {
            position["produced"] = serde_json::to_value(before).unwrap_or_default();
        }
        Some(position)
    }

    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        self.next = position
            .get("next_row")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| EngineError::Internal(format!("bad datagen position {position}")))?;
        self.produced_before = super::strided::Produced::from_position(position);
        // Positions written before seeds were recorded keep this run's.
        if let Some(seeds) = position
            .get("seeds")
            .and_then(|s| serde_json::from_value::<Vec<u64>>(s.clone()).ok())
        {
            if seeds.len() == self.seeds.len() {
                self.seeds = seeds;
            }
        }
        Ok(())
    }
}
