//! The SQL layer's error type: the user's SQL, the user's configuration, a
//! construct Weir cannot run as a stream, or an engine failure.

use datafusion::error::DataFusionError;
use weir_engine::EngineError;

/// Result alias of this crate.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;

/// Why a statement could not be parsed, planned or run.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The SQL text is malformed; the message carries the line and column.
    #[error("SQL parse error: {0}")]
    Parse(String),
    /// The statement is well-formed but wrong (unknown table, bad types, …).
    #[error("SQL validation error: {0}")]
    Plan(String),
    /// A construct that Weir cannot (yet) run on a stream, named.
    #[error("unsupported in streaming mode: {0}")]
    Unsupported(String),
    /// Configuration, connector or runtime error.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        match e {
            DataFusionError::SQL(p, _) => SqlError::Parse(p.to_string()),
            DataFusionError::NotImplemented(m) => SqlError::Unsupported(m),
            DataFusionError::Plan(m) => SqlError::Plan(m),
            DataFusionError::SchemaError(s, _) => SqlError::Plan(s.to_string()),
            DataFusionError::Diagnostic(_, inner) => SqlError::from(*inner),
            DataFusionError::Context(ctx, inner) => match SqlError::from(*inner) {
                SqlError::Plan(m) => SqlError::Plan(format!("{ctx}: {m}")),
                other => other,
            },
            other => SqlError::Engine(EngineError::from(other)),
        }
    }
}

impl From<datafusion::arrow::error::ArrowError> for SqlError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        SqlError::Engine(EngineError::from(e))
    }
}

impl From<datafusion::sql::sqlparser::parser::ParserError> for SqlError {
    fn from(e: datafusion::sql::sqlparser::parser::ParserError) -> Self {
        use datafusion::sql::sqlparser::parser::ParserError;
        match e {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => SqlError::Parse(m),
            other => SqlError::Parse(other.to_string()),
        }
    }
}

/// Turns DataFusion's planning error into Weir's: Flink's words for an
/// unknown table or column (`Object 'x' not found`, `Column 'y' not found
/// in any table`), and the line and column of what the error is about,
/// from DataFusion's diagnostic or from the statement's tokens.
pub(crate) fn located(
    e: DataFusionError,
    tokens: &[datafusion::sql::sqlparser::tokenizer::TokenWithSpan],
) -> SqlError {
    let span = diagnostic_span(&e);
    let error = SqlError::from(e);
    let SqlError::Plan(message) = &error else {
        return error;
    };
    let at = |name: Option<&str>| -> String {
        let found = name.and_then(|n| {
            tokens.iter().find(|t| {
                matches!(&t.token, datafusion::sql::sqlparser::tokenizer::Token::Word(w) if w.value == n || (w.quote_style.is_none() && w.value.eq_ignore_ascii_case(n) && n.chars().all(|c| c.is_ascii_lowercase() || c == '_')))
            })
        });
        match (found, span) {
            (Some(t), _) => format!(
                " at line {}, column {}",
                t.span.start.line, t.span.start.column
            ),
            (None, Some(s)) if s.start.line > 0 => {
                format!(" at line {}, column {}", s.start.line, s.start.column)
            }
            _ => String::new(),
        }
    };
    if let Some(name) = message
        .strip_prefix("table '")
        .and_then(|rest| rest.strip_suffix("' not found"))
    {
        let short = name.strip_prefix("datafusion.public.").unwrap_or(name);
        return SqlError::Plan(format!(
            "Object '{short}' not found{}",
            at(short.rsplit('.').next())
        ));
    }
    if let Some(rest) = message.strip_prefix("No field named ") {
        // `No field named <name>. [Did you mean '<x>'?. ]Valid fields are <list>.`
        let (name, rest) = rest
            .split_once(". ")
            .unwrap_or((rest.trim_end_matches('.'), ""));
        let name = name.replace('"', "");
        let hint = rest
            .split_once("Did you mean ")
            .and_then(|(_, h)| h.split_once('?'))
            .map(|(h, _)| format!(" (did you mean {h}?)"))
            .unwrap_or_default();
        let columns = rest
            .split_once("Valid fields are ")
            .map(|(_, v)| format!("; the columns are {}", v.trim().trim_end_matches('.')))
            .unwrap_or_default();
        let (scope, column) = match name.rsplit_once('.') {
            Some((t, c)) => (format!("table '{t}'"), c.to_string()),
            None => ("any table".to_string(), name.clone()),
        };
        return SqlError::Plan(format!(
            "Column '{column}' not found in {scope}{}{hint}{columns}",
            at(Some(&column))
        ));
    }
    if let Some(call) = message
        .split("No function matches the given name and argument types '")
        .nth(1)
        .and_then(|rest| rest.split_once('\'').map(|(call, _)| call))
    {
        // Flink's words, with Flink's type names, and without DataFusion's
        // plea to file a bug.
        let (name, args) = call.split_once('(').unwrap_or((call, ""));
        let args = args.trim_end_matches(')');
        let mut forms: Vec<String> = message
            .split("Candidate functions:")
            .nth(1)
            .map(|list| {
                list.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(flink_signature)
                    .collect()
            })
            .unwrap_or_default();
        forms.dedup();
        return SqlError::Plan(format!(
            "Cannot apply '{}' to arguments of type '{}({})'{}. Supported form(s): {}",
            name.to_uppercase(),
            name.to_uppercase(),
            args.split(", ")
                .map(|a| format!("<{}>", flink_type_word(a)))
                .collect::<Vec<_>>()
                .join(", "),
            at(Some(name)),
            forms.join(", ")
        ));
    }
    match span {
        Some(s) if s.start.line > 0 && !message.contains(" at line ") => SqlError::Plan(format!(
            "{message} at line {}, column {}",
            s.start.line, s.start.column
        )),
        _ => error,
    }
}

/// The source position DataFusion attached to an error, if any.
fn diagnostic_span(e: &DataFusionError) -> Option<datafusion::common::Span> {
    match e {
        DataFusionError::Diagnostic(d, inner) => d.span.or_else(|| diagnostic_span(inner)),
        DataFusionError::Context(_, inner) => diagnostic_span(inner),
        _ => None,
    }
}

/// Flink's name for a type as DataFusion's signatures spell it.
fn flink_type_word(t: &str) -> String {
    let t = t.trim();
    let word = match t {
        "Utf8" | "LargeUtf8" | "Utf8View" => "STRING",
        "Int8" => "TINYINT",
        "Int16" => "SMALLINT",
        "Int32" => "INT",
        "Int64" => "BIGINT",
        "UInt8" | "UInt16" | "UInt32" | "UInt64" => "BIGINT UNSIGNED",
        "Float32" => "FLOAT",
        "Float64" => "DOUBLE",
        "Boolean" => "BOOLEAN",
        "Decimal" => "DECIMAL",
        "Duration" | "Interval" => "INTERVAL",
        "Date32" | "Date64" => "DATE",
        "Binary" | "LargeBinary" | "BinaryView" => "BYTES",
        _ if t.starts_with("Timestamp") => "TIMESTAMP",
        _ if t.starts_with("Decimal") => "DECIMAL",
        _ => return t.to_uppercase(),
    };
    word.to_string()
}

/// `sum(Int64)` as `'SUM(<BIGINT>)'`.
fn flink_signature(signature: &str) -> String {
    let (name, args) = signature.split_once('(').unwrap_or((signature, ""));
    let args: Vec<String> = args
        .trim_end_matches(')')
        .split(", ")
        .filter(|a| !a.is_empty())
        .map(|a| format!("<{}>", flink_type_word(a)))
        .collect();
    format!("'{}({})'", name.to_uppercase(), args.join(", "))
}
