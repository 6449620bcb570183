//! Configuration keys, with Flink's names and value syntax.
//!
//! One [`Config`] holds every key a job reads. It is filled from `SET`
//! statements, a YAML file and the Rust builder; each value is checked when it
//! is set, so a bad key or value fails before any job starts.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{EngineError, Result};

mod keys;
mod settings;
mod values;
mod yaml;

pub use keys::edit_distance;
use keys::{closest, spec, Kind, ALIASES, KEYS};
pub use settings::{BarrierMode, CheckpointSettings, StateSettings};
use values::validate;
pub use values::{mask_url, parse_duration, parse_memory_size};

/// A set of configuration values, validated on entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    values: BTreeMap<String, String>,
    clock: JobClock,
}

/// The processing-time clock of the jobs a configuration starts: what
/// `PROCTIME()`, processing-time timers and state TTL read. The system
/// clock unless a program (a test) installs its own.
#[derive(Debug, Clone, Default)]
struct JobClock(Option<std::sync::Arc<dyn weir_state::Clock>>);

impl PartialEq for JobClock {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Config {
    /// An empty configuration: every key has its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs the processing-time clock (tests use a
    /// [`weir_state::ManualClock`] to move processing time by hand).
    pub fn set_clock(&mut self, clock: std::sync::Arc<dyn weir_state::Clock>) {
        self.clock = JobClock(Some(clock));
    }

    /// The processing-time clock: the system's unless one was installed.
    pub fn clock(&self) -> std::sync::Arc<dyn weir_state::Clock> {
        self.clock
            .0
            .clone()
            .unwrap_or_else(|| std::sync::Arc::new(weir_state::SystemClock))
    }

    /// Resolves an alias to the key's current name and checks that it exists.
    pub fn canonical_key(key: &str) -> Result<&'static str> {
        let key = key.trim();
        if let Some((_, to)) = ALIASES.iter().find(|(from, _)| *from == key) {
            return Ok(to);
        }
        if let Some(k) = KEYS.iter().find(|k| k.name == key) {
            return Ok(k.name);
        }
        let suggestion = closest(key)
            .map(|s| format!(" Did you mean '{s}'?"))
            .unwrap_or_default();
        Err(EngineError::Config(format!(
            "unknown configuration key '{key}'.{suggestion} Accepted keys: {}",
            KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
        )))
    }

    /// Sets `key` to `value` after checking both.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let name = Self::canonical_key(key)?;
        let spec = spec(name);
        let value = value.trim();
        validate(name, spec.kind, value)?;
        self.values.insert(name.to_string(), value.to_string());
        Ok(())
    }

    /// Builder form of [`Config::set`].
    pub fn with(mut self, key: &str, value: &str) -> Result<Self> {
        self.set(key, value)?;
        Ok(self)
    }

    /// Resets one key to its default, or every key when `key` is `None`.
    pub fn reset(&mut self, key: Option<&str>) -> Result<()> {
        match key {
            Some(k) => {
                let name = Self::canonical_key(k)?;
                self.values.remove(name);
            }
            None => self.values.clear(),
        }
        Ok(())
    }

    /// The value of `key` as set, or its default.
    pub fn get(&self, key: &str) -> Option<String> {
        let name = Self::canonical_key(key).ok()?;
        self.values
            .get(name)
            .cloned()
            .or_else(|| spec(name).default.map(str::to_string))
    }

    /// Every key with its effective value and whether it was set explicitly.
    /// Credentials show as `******`.
    pub fn entries(&self) -> Vec<(String, String, bool)> {
        KEYS.iter()
            .filter_map(|k| {
                let set = self.values.get(k.name);
                let mut v = set.cloned().or_else(|| k.default.map(str::to_string))?;
                if matches!(k.kind, Kind::Secret) {
                    v = "******".into();
                }
                if matches!(k.kind, Kind::Url) {
                    v = mask_url(&v);
                }
                Some((k.name.to_string(), v, set.is_some()))
            })
            .collect()
    }

    /// Documentation of every key: name, default and a one-line description.
    pub fn documented_keys() -> Vec<(&'static str, Option<&'static str>, &'static str)> {
        KEYS.iter().map(|k| (k.name, k.default, k.doc)).collect()
    }

    fn int(&self, key: &str) -> usize {
        self.get(key).and_then(|v| v.parse().ok()).unwrap_or(1)
    }

    /// `parallelism.default`.
    pub fn parallelism(&self) -> usize {
        self.int("parallelism.default")
    }

    /// `pipeline.max-parallelism`: the number of key groups.
    pub fn max_parallelism(&self) -> usize {
        self.int("pipeline.max-parallelism")
    }

    /// `execution.batch-size`.
    pub fn batch_size(&self) -> usize {
        self.int("execution.batch-size")
    }

    /// `execution.buffer-capacity`.
    pub fn buffer_capacity(&self) -> usize {
        self.int("execution.buffer-capacity")
    }

    /// A duration-valued key.
    pub fn duration(&self, key: &str) -> Option<Duration> {
        self.get(key).and_then(|v| parse_duration(&v).ok())
    }

    /// A memory-size-valued key, in bytes.
    pub fn memory_size(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| parse_memory_size(&v).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_flink() {
        assert_eq!(parse_duration("60000").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("60 s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1 min").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn unknown_key_is_named_with_a_suggestion() {
        let err = Config::new()
            .set("parallelism.defualt", "2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'parallelism.defualt'"), "{err}");
        assert!(err.contains("Did you mean 'parallelism.default'"), "{err}");
    }

    #[test]
    fn bad_values_name_what_is_accepted() {
        let err = Config::new()
            .set("parallelism.default", "zero")
            .unwrap_err()
            .to_string();
        assert!(err.contains("positive integer"), "{err}");
        let err = Config::new()
            .set("state.backend", "leveldb")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("state.backend.type") && err.contains("hashmap, rocksdb"),
            "{err}"
        );
    }

    #[test]
    fn yaml_nested_and_flat_keys() {
        let cfg = Config::from_yaml(
            "# comment\nparallelism.default: 2\npipeline:\n  name: 'my job'\n  max-parallelism: 64\n",
        )
        .unwrap();
        assert_eq!(cfg.parallelism(), 2);
        assert_eq!(cfg.max_parallelism(), 64);
        assert_eq!(cfg.get("pipeline.name").as_deref(), Some("my job"));
        let err = Config::from_yaml("parallelism.default: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
