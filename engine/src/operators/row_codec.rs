//! Rows of Arrow columns as byte strings, for state keys and values.
//!
//! SQL operators keep group keys and accumulator states in the state
//! backend as Arrow's row format: a whole batch is encoded at once, the
//! bytes of equal keys are equal (so they address state), and they decode
//! back into columns in one call. The format is Arrow's, tagged
//! [`ROW_FORMAT`] in `docs/state.md`; a new Arrow major version must be
//! checked against stored state before it is adopted.

use std::panic::AssertUnwindSafe;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{RowConverter, Rows, SortField};

use crate::error::{EngineError, Result};

/// The row format's name, for state written by SQL operators.
pub const ROW_FORMAT: &str = "arrow-row/59";

/// Encodes and decodes rows of a fixed list of column types.
pub struct RowCodec {
    converter: Option<RowConverter>,
    types: Vec<DataType>,
}

impl RowCodec {
    /// A codec for columns of `types` (none: every row is empty).
    pub fn new(types: &[DataType]) -> Result<Self> {
        if types.is_empty() {
            return Ok(Self {
                converter: None,
                types: Vec::new(),
            });
        }
        let fields: Vec<SortField> = types.iter().cloned().map(SortField::new).collect();
        if !RowConverter::supports_fields(&fields) {
            return Err(EngineError::Internal(format!(
                "state of type {types:?} cannot be stored in a state backend"
            )));
        }
        Ok(Self {
            converter: Some(RowConverter::new(fields)?),
            types: types.to_vec(),
        })
    }

    /// The column types.
    pub fn types(&self) -> &[DataType] {
        &self.types
    }

    /// Encodes `rows` rows of `columns` (all of equal length).
    pub fn encode(&self, columns: &[ArrayRef], rows: usize) -> Result<EncodedRows> {
        match &self.converter {
            Some(c) => Ok(EncodedRows::Rows(c.convert_columns(columns)?)),
            None => Ok(EncodedRows::Empty(rows)),
        }
    }

    /// Decodes rows this codec encoded back into columns. Bytes that are not
    /// such rows (damaged state) are an error, not a panic.
    pub fn decode<'a>(&self, rows: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>> {
        let Some(c) = &self.converter else {
            return Ok(Vec::new());
        };
        let parser = c.parser();
        let rows: Vec<&[u8]> = rows.into_iter().collect();
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            c.convert_rows(rows.iter().map(|b| parser.parse(b)))
        }))
        .map_err(|_| EngineError::State("stored rows do not decode (damaged state)".into()))?
        .map_err(EngineError::from)
    }
}

/// Encoded rows, each a byte string.
pub enum EncodedRows {
    /// Arrow rows.
    Rows(Rows),
    /// Rows of no columns: each is empty.
    Empty(usize),
}

impl EncodedRows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            EncodedRows::Rows(r) => r.num_rows(),
            EncodedRows::Empty(n) => *n,
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of row `i`.
    pub fn row(&self, i: usize) -> &[u8] {
        match self {
            EncodedRows::Rows(r) => r.row(i).data(),
            EncodedRows::Empty(_) => &[],
        }
    }
}

/// Splits a list of columns into consecutive groups of the given widths.
pub fn split_columns(mut columns: Vec<ArrayRef>, widths: &[usize]) -> Vec<Vec<ArrayRef>> {
    let mut out = Vec::with_capacity(widths.len());
    for w in widths {
        let rest = columns.split_off((*w).min(columns.len()));
        out.push(columns);
        columns = rest;
    }
    out
}
