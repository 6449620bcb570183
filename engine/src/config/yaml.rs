//! `weir.yaml` / `--conf` files, read with a YAML 1.2 parser (yaml-rust2):
//! nested maps, flat dotted keys or both (`pipeline: {name: x}` and
//! `pipeline.name: x` mean the same), comments, quoting, block and flow
//! styles. A list becomes Flink's list syntax, its items joined by `;`.
//! Every value is checked as `SET` checks it; an error names the key and
//! the line it is on.

use yaml_rust2::{Yaml, YamlLoader};

use super::Config;
use crate::error::{EngineError, Result};

impl Config {
    /// Parses a YAML configuration file (Flink's `config.yaml` form).
    pub fn from_yaml(text: &str) -> Result<Self> {
        let docs = YamlLoader::load_from_str(text)
            .map_err(|e| EngineError::Config(format!("configuration file: {e}")))?;
        let mut cfg = Config::new();
        let Some(doc) = docs.into_iter().next() else {
            return Ok(cfg);
        };
        let mut entries = Vec::new();
        match doc {
            Yaml::Hash(_) => flatten(&doc, "", &mut entries)?,
            Yaml::Null => {}
            other => {
                return Err(EngineError::Config(format!(
                    "configuration file: expected a map of keys to values, found {}",
                    describe(&other)
                )))
            }
        }
        for (key, value) in entries {
            cfg.set(&key, &value).map_err(|e| {
                EngineError::Config(match line_of(text, &key) {
                    Some(line) => format!("configuration file line {line}: {e}"),
                    None => format!("configuration file: {e}"),
                })
            })?;
        }
        Ok(cfg)
    }
}

/// The `(dotted key, value)` pairs of a map, in file order.
fn flatten(node: &Yaml, prefix: &str, out: &mut Vec<(String, String)>) -> Result<()> {
    let Yaml::Hash(map) = node else {
        return Ok(());
    };
    for (k, v) in map {
        let name = scalar(k).ok_or_else(|| {
            EngineError::Config(format!(
                "configuration file: a key under '{prefix}' is {}, not a name",
                describe(k)
            ))
        })?;
        let key = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        };
        match v {
            Yaml::Hash(_) => flatten(v, &key, out)?,
            // `key:` with nothing after it: not set.
            Yaml::Null => {}
            Yaml::Array(items) => {
                let values = items
                    .iter()
                    .map(|item| {
                        scalar(item).ok_or_else(|| {
                            EngineError::Config(format!(
                                "configuration file: the list of '{key}' holds {}, not a value",
                                describe(item)
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                out.push((key, values.join(";")));
            }
            other => match scalar(other) {
                Some(value) => out.push((key, value)),
                None => {
                    return Err(EngineError::Config(format!(
                        "configuration file: '{key}' is {}, not a value",
                        describe(other)
                    )))
                }
            },
        }
    }
    Ok(())
}

/// A scalar as the text `SET` would get.
fn scalar(node: &Yaml) -> Option<String> {
    match node {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn describe(node: &Yaml) -> &'static str {
    match node {
        Yaml::Hash(_) => "a map",
        Yaml::Array(_) => "a list",
        Yaml::Null => "empty",
        Yaml::Alias(_) => "an alias",
        Yaml::BadValue => "not valid YAML",
        _ => "a value",
    }
}

/// The line (1-based) where `key` — or its last part, under a nested map —
/// is written, for error messages.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let last = key.rsplit('.').next().unwrap_or(key);
    let starts = |line: &str, name: &str| {
        let t = line.trim_start();
        [name.to_string(), format!("\"{name}\""), format!("'{name}'")]
            .iter()
            .any(|n| {
                t.strip_prefix(n.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with(':'))
            })
    };
    text.lines()
        .position(|l| starts(l, key))
        .or_else(|| text.lines().position(|l| starts(l, last)))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_as_yaml_users_write_it() {
        let cfg = Config::from_yaml(
            "# Flink's config.yaml style\n\
             parallelism.default: 2   # trailing comment\n\
             pipeline:\n\
             \x20 name: \"my: job # not a comment\"\n\
             \x20 max-parallelism: 64\n\
             execution:\n\
             \x20 checkpointing: {interval: 10 s, mode: EXACTLY_ONCE}\n\
             state.backend.type: 'rocksdb'\n\
             rest.enabled: false\n",
        )
        .unwrap();
        assert_eq!(cfg.parallelism(), 2);
        assert_eq!(cfg.max_parallelism(), 64);
        assert_eq!(
            cfg.get("pipeline.name").as_deref(),
            Some("my: job # not a comment")
        );
        assert_eq!(
            cfg.get("execution.checkpointing.interval").as_deref(),
            Some("10 s")
        );
        assert_eq!(cfg.get("state.backend.type").as_deref(), Some("rocksdb"));
        assert!(!cfg.bool("rest.enabled"));
        assert!(Config::from_yaml("")
            .unwrap()
            .entries()
            .iter()
            .all(|(_, _, set)| !set));
    }

    #[test]
    fn bad_values_and_bad_yaml_are_errors_with_the_line() {
        let err = Config::from_yaml("pipeline:\n  name: x\nparallelism.default: many\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3") && err.contains("parallelism.default"),
            "{err}"
        );
        let err = Config::from_yaml("pipeline:\n  max-parallelism: [1, 2]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pipeline.max-parallelism"), "{err}");
        let err = Config::from_yaml("pipeline: {name: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("configuration file"), "{err}");
        let err = Config::from_yaml("- a\n- b\n").unwrap_err().to_string();
        assert!(err.contains("a map"), "{err}");
        let err = Config::from_yaml("no.such.key: 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no.such.key") && err.contains("line 1"),
            "{err}"
        );
    }
}
