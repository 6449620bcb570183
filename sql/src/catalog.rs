//! Tables and views known to a session.
//!
//! A table is its columns (physical and computed), its watermark, its primary
//! key and its connector options. It is registered with DataFusion as a
//! [`StreamTable`], a provider that only describes the schema: DataFusion
//! plans over it and never executes it.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait_shim::TableProviderShim;
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};

/// A column of a `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct ColumnDef {
    /// The column's field (name, type, nullability).
    pub field: Field,
    /// `name AS expr`: the expression's SQL, for computed columns.
    pub computed: Option<String>,
    /// `METADATA FROM 'key' [VIRTUAL]`: the key, and whether it is virtual
    /// (read only).
    pub metadata: Option<(String, bool)>,
}

/// A table created with `CREATE TABLE … WITH (…)`.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// The table's name.
    pub name: String,
    /// Columns in declaration order.
    pub columns: Vec<ColumnDef>,
    /// `WATERMARK FOR <column> AS <expr>`.
    pub watermark: Option<(String, String)>,
    /// `PRIMARY KEY (…) NOT ENFORCED`.
    pub primary_key: Vec<String>,
    /// The `WITH` options, `connector` included.
    pub options: BTreeMap<String, String>,
    /// All columns, as DataFusion sees the table.
    pub schema: SchemaRef,
}

impl TableDef {
    /// The `'connector'` option.
    pub fn connector(&self) -> &str {
        self.options
            .get("connector")
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The physical (non-computed) columns, as the connector sees them:
    /// `METADATA` columns are marked in their field's metadata
    /// ([`weir_engine::connectors::METADATA_KEY`]) and the primary key is
    /// the schema's `weir.primary-key` (comma-separated).
    pub fn physical_schema(&self) -> SchemaRef {
        use weir_engine::connectors::{METADATA_KEY, METADATA_VIRTUAL};
        let fields: Vec<Field> = self
            .columns
            .iter()
            .filter(|c| c.computed.is_none())
            .map(|c| match &c.metadata {
                Some((key, is_virtual)) => {
                    let mut m = std::collections::HashMap::new();
                    m.insert(METADATA_KEY.to_string(), key.clone());
                    if *is_virtual {
                        m.insert(METADATA_VIRTUAL.to_string(), "true".to_string());
                    }
                    c.field.clone().with_metadata(m)
                }
                None => c.field.clone(),
            })
            .collect();
        let mut schema = datafusion::arrow::datatypes::Schema::new(fields);
        if !self.primary_key.is_empty() {
            schema = schema.with_metadata(
                [("weir.primary-key".to_string(), self.primary_key.join(","))]
                    .into_iter()
                    .collect(),
            );
        }
        Arc::new(schema)
    }
}

/// Flink's spelling of an Arrow type, for `DESCRIBE`.
pub fn flink_type_name(t: &DataType) -> String {
    use datafusion::arrow::datatypes::TimeUnit;
    match t {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTES".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(unit, tz) => {
            let p = match unit {
                TimeUnit::Second => 0,
                TimeUnit::Millisecond => 3,
                TimeUnit::Microsecond => 6,
                TimeUnit::Nanosecond => 9,
            };
            if tz.is_some() {
                format!("TIMESTAMP_LTZ({p})")
            } else {
                format!("TIMESTAMP({p})")
            }
        }
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("`{}` {}", f.name(), flink_type_name(f.data_type())))
                .collect();
            format!("ROW<{}>", inner.join(", "))
        }
        DataType::List(f) | DataType::LargeList(f) => {
            format!("ARRAY<{}>", flink_type_name(f.data_type()))
        }
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!(
                    "MAP<{}, {}>",
                    flink_type_name(kv[0].data_type()),
                    flink_type_name(kv[1].data_type())
                )
            }
            other => format!("{other}"),
        },
        other => other.to_string().to_uppercase(),
    }
}

/// The DataFusion view of a streaming table: a schema only.
#[derive(Debug)]
pub struct StreamTable {
    /// The table's name.
    pub name: String,
    /// Its columns.
    pub schema: SchemaRef,
}

impl StreamTable {
    /// Wraps a schema.
    pub fn new(name: &str, schema: SchemaRef) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_string(),
            schema,
        })
    }
}

impl TableProviderShim for StreamTable {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// DataFusion's `TableProvider` needs async methods; this module implements
/// it once for every schema-only provider of Weir.
pub mod async_trait_shim {
    use std::any::Any;
    use std::sync::Arc;

    use datafusion::arrow::datatypes::SchemaRef;
    use datafusion::catalog::{Session, TableProvider};
    use datafusion::datasource::TableType;
    use datafusion::error::{DataFusionError, Result};
    use datafusion::logical_expr::Expr;
    use datafusion::physical_plan::ExecutionPlan;

    /// A provider that describes a streaming table's schema.
    pub trait TableProviderShim: std::fmt::Debug + Send + Sync + 'static {
        /// For downcasting.
        fn as_any(&self) -> &dyn Any;
        /// The columns.
        fn schema(&self) -> SchemaRef;
        /// The name, for errors.
        fn name(&self) -> &str;
    }

    /// Adapts a [`TableProviderShim`] to DataFusion.
    #[derive(Debug)]
    pub struct Provider<T: TableProviderShim>(pub Arc<T>);

    #[async_trait::async_trait]
    impl<T: TableProviderShim> TableProvider for Provider<T> {
        fn schema(&self) -> SchemaRef {
            self.0.schema()
        }
        fn table_type(&self) -> TableType {
            TableType::Base
        }
        async fn scan(
            &self,
            _state: &dyn Session,
            _projection: Option<&Vec<usize>>,
            _filters: &[Expr],
            _limit: Option<usize>,
        ) -> Result<Arc<dyn ExecutionPlan>> {
            Err(DataFusionError::Plan(format!(
                "'{}' is a streaming table: it is read by Weir's runtime, not by a batch scan",
                self.0.name()
            )))
        }
    }
}
