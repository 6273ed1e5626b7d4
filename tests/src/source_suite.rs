//! The source conformance suite: what every warehouse connector must do, run through the
//! `retl` CLI against the real server or an emulator. A warehouse implements [`Warehouse`]
//! (how to reach it, how to load test data, how it spells each type); the suite fixes what
//! retl must read back ([`Kind::expected`]), so one record read from two warehouses is the
//! same record. Each `tests/tests/source_<name>.rs` calls [`run_all`] (or the checks one by
//! one).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use retl_shared::config::ConnectionConfig;
use retl_shared::connectors::OpenContext;
use retl_shared::delivery::{RequestPolicy, Requester};
use retl_shared::ports::{Bound, ModelQuery, RowFilter, SecretError, Secrets, Source};
use serde_json::{json, Value};

use crate::http::WebhookReceiver;
use crate::{Pg, Project};

/// A kind of value every warehouse has (or may have), with the value retl must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A 64-bit integer beyond 2^53: `9007199254740993`.
    BigInt,
    /// A negative integer: `-42`.
    NegativeInt,
    /// An exact decimal with 38 digits of precision and scale 10:
    /// `12345678901234567890.1234567890`.
    Decimal,
    /// A float: `0.5`.
    Float,
    /// A boolean: `true`.
    Bool,
    /// Text with accents, symbols, CJK and an emoji: `Zoë ✓ 日本 🚀`.
    Text,
    /// A date: `2024-02-29`.
    Date,
    /// A timestamp without time zone: `2024-03-01 10:00:00.5`.
    Timestamp,
    /// An instant written with a +02:00 offset: `2024-03-01 10:00:00+02:00`, read in UTC.
    TimestampTz,
    /// A JSON document `{"plan": "pro", "seats": 3}` (or variant, struct).
    Json,
    /// Binary `de ad be ef`.
    Binary,
}

impl Kind {
    /// Kinds every source must map.
    pub const REQUIRED: &'static [Kind] = &[
        Kind::BigInt,
        Kind::NegativeInt,
        Kind::Decimal,
        Kind::Float,
        Kind::Bool,
        Kind::Text,
        Kind::Date,
        Kind::Timestamp,
    ];

    /// The value retl must read back.
    pub fn expected(self) -> Value {
        let exact = |t: &str| serde_json::from_str::<Value>(t).expect("a number");
        match self {
            Kind::BigInt => exact("9007199254740993"),
            Kind::NegativeInt => exact("-42"),
            Kind::Decimal => exact("12345678901234567890.1234567890"),
            Kind::Float => exact("0.5"),
            Kind::Bool => json!(true),
            Kind::Text => json!("Zoë ✓ 日本 🚀"),
            Kind::Date => json!("2024-02-29"),
            Kind::Timestamp => json!("2024-03-01T10:00:00.5"),
            Kind::TimestampTz => json!("2024-03-01T08:00:00+00:00"),
            Kind::Json => json!({"plan": "pro", "seats": 3}),
            Kind::Binary => json!("\\xdeadbeef"),
        }
    }

    /// A column name for the kind.
    pub fn column(self) -> &'static str {
        match self {
            Kind::BigInt => "c_bigint",
            Kind::NegativeInt => "c_negative",
            Kind::Decimal => "c_decimal",
            Kind::Float => "c_float",
            Kind::Bool => "c_bool",
            Kind::Text => "c_text",
            Kind::Date => "c_date",
            Kind::Timestamp => "c_timestamp",
            Kind::TimestampTz => "c_timestamptz",
            Kind::Json => "c_json",
            Kind::Binary => "c_binary",
        }
    }
}

/// How one warehouse spells one kind.
#[derive(Debug, Clone)]
pub struct TypeCase {
    /// The kind.
    pub kind: Kind,
    /// The column type in the warehouse's DDL (`NUMBER(38,10)`, `BIGNUMERIC(38,10)`).
    pub ddl: String,
    /// A SQL expression of that type holding the kind's value.
    pub literal: String,
}

impl TypeCase {
    /// A case.
    pub fn new(kind: Kind, ddl: &str, literal: &str) -> Self {
        TypeCase {
            kind,
            ddl: ddl.to_string(),
            literal: literal.to_string(),
        }
    }
}

/// A warehouse under test.
#[async_trait]
pub trait Warehouse: Send + Sync {
    /// Name in messages.
    fn name(&self) -> &str;
    /// The body of a connection's YAML flow mapping: `type: x, host: ..., password_env: X`.
    fn connection(&self) -> String;
    /// The same connection with credentials the warehouse refuses (`None` for a warehouse
    /// without authentication, such as an SQLite file).
    fn connection_with_bad_credentials(&self) -> Option<String>;
    /// Secrets of both connections, as environment variables of the `retl` runs.
    fn env(&self) -> Vec<(String, String)>;
    /// Runs setup statements (DDL and inserts), one per call.
    async fn execute(&self, sql: &str);
    /// A fully qualified name for a test table.
    fn table(&self, name: &str) -> String;
    /// How this warehouse spells each kind it has; every [`Kind::REQUIRED`] kind must be
    /// there or in [`Warehouse::unsupported`].
    fn type_cases(&self) -> Vec<TypeCase>;
    /// Required kinds the warehouse has no type for, each with the reason (SQLite has no
    /// exact decimal); documented on the connector's page.
    fn unsupported(&self) -> Vec<(Kind, &'static str)> {
        Vec::new()
    }
    /// The DDL type of the suite's integer key column.
    fn key_type(&self) -> String;
    /// A query that runs for at least `seconds` seconds (for timeouts).
    fn slow_query(&self, seconds: u32) -> String;
    /// The warehouse's own error code for selecting from a table that does not exist (it
    /// must appear in the error retl reports).
    fn missing_table_code(&self) -> String;
}

fn project(w: &dyn Warehouse, connection: &str, dest: &str) -> Project {
    let mut p = Project::new();
    for (k, v) in w.env() {
        p.env(&k, &v);
    }
    p.write(
        "retl.yaml",
        &format!("connections:\n  wh: {{ {connection} }}\n  dest: {{ {dest} }}\n"),
    );
    p
}

fn sync(p: &Project, name: &str, sql: &str, mapping: &str, object: &str) {
    let sql = sql.replace('"', "\\\"");
    p.write(
        &format!("syncs/{name}.yaml"),
        &format!(
            "name: {name}\nsource: {{ connection: wh, sql: \"{sql}\" }}\nprimary_key: id\n\
             destination: {{ connection: dest, object: {object} }}\nmapping: {mapping}\nmode: upsert\n"
        ),
    );
}

/// Loads the type table: row 1 holds every kind's value, row 2 only nulls.
async fn load_types(w: &dyn Warehouse, cases: &[TypeCase]) -> String {
    let table = w.table("retl_types");
    let columns: Vec<String> = cases
        .iter()
        .map(|c| format!("{} {}", c.kind.column(), c.ddl))
        .collect();
    w.execute(&format!(
        "CREATE TABLE {table} (id {}, {})",
        w.key_type(),
        columns.join(", ")
    ))
    .await;
    let names: Vec<&str> = cases.iter().map(|c| c.kind.column()).collect();
    let literals: Vec<&str> = cases.iter().map(|c| c.literal.as_str()).collect();
    w.execute(&format!(
        "INSERT INTO {table} (id, {}) VALUES (1, {})",
        names.join(", "),
        literals.join(", ")
    ))
    .await;
    w.execute(&format!("INSERT INTO {table} (id) VALUES (2)"))
        .await;
    table
}

/// Every kind maps to the value [`Kind::expected`] gives, nulls to null, exactly as the
/// destination receives them.
pub async fn types_and_nulls(w: &dyn Warehouse) {
    let cases = w.type_cases();
    let unsupported = w.unsupported();
    for k in Kind::REQUIRED {
        assert!(
            cases.iter().any(|c| c.kind == *k) || unsupported.iter().any(|(u, _)| u == k),
            "{}: the suite needs a type case for {k:?}, or a reason it has none",
            w.name()
        );
    }
    let table = load_types(w, &cases).await;
    batches_match_rows(w, &format!("select * from {table}")).await;
    let hook = WebhookReceiver::start().await;
    let p = project(
        w,
        &w.connection(),
        &format!("type: webhook, url: \"{}\"", hook.url),
    );
    let mapping: Vec<String> = std::iter::once("id: id".to_string())
        .chain(cases.iter().map(|c| format!("{0}: {0}", c.kind.column())))
        .collect();
    sync(
        &p,
        "types",
        &format!("select * from {table}"),
        &format!("{{ {} }}", mapping.join(", ")),
        "types",
    );
    let (code, v) = p.run_json(&["run", "types"]).await;
    assert_eq!(code, 0, "{}: run failed: {v}", w.name());
    assert_eq!(v["creates"], 2, "{}: {v}", w.name());
    let accepted = hook.accepted();
    let row = |key: &str| -> Value {
        accepted
            .iter()
            .find(|(_, k, _)| k == key)
            .unwrap_or_else(|| panic!("{}: record {key} not delivered: {accepted:?}", w.name()))
            .2
            .clone()
    };
    let full = row("1");
    let empty = row("2");
    for c in &cases {
        let col = c.kind.column();
        assert_eq!(
            full[col].to_string(),
            c.kind.expected().to_string(),
            "{}: {:?} ({}) read back wrongly",
            w.name(),
            c.kind,
            c.ddl
        );
        assert_eq!(empty[col], Value::Null, "{}: null {:?}", w.name(), c.kind);
    }
}

/// The model read as maps (`rows`) and by position (`row_batches`, what extract reads) gives
/// the same values in the columns' order.
async fn batches_match_rows(w: &dyn Warehouse, sql: &str) {
    let source = open_source(w).await;
    let query = ModelQuery::new(sql, "suite", "run1");
    let columns = source.columns(&query).await.expect("the model's columns");
    let mut by_name = Vec::new();
    let mut rows = source.rows(&query).await.expect("the model runs");
    while let Some(row) = rows.next().await {
        let row = row.expect("a row");
        let cells: Vec<Value> = columns
            .iter()
            .map(|c| row.get(c).cloned().unwrap_or(Value::Null))
            .collect();
        by_name.push(Value::Array(cells).to_string());
    }
    let mut by_position = Vec::new();
    let mut batches = source
        .row_batches(&query, &columns)
        .await
        .expect("the model runs");
    while let Some(batch) = batches.next().await {
        let batch = batch.expect("a batch");
        by_position.extend(batch.rows().map(|r| Value::Array(r.to_vec()).to_string()));
    }
    by_name.sort();
    by_position.sort();
    assert!(
        !by_name.is_empty(),
        "{}: the model returned no row",
        w.name()
    );
    assert_eq!(by_position, by_name, "{}: rows by position", w.name());
}

/// A sync into PostgreSQL: created, then unchanged on a second run, then one change sent.
pub async fn syncs_into_postgres(w: &dyn Warehouse) {
    let table = w.table("retl_people");
    let text = w
        .type_cases()
        .into_iter()
        .find(|c| c.kind == Kind::Text)
        .expect("a text type");
    w.execute(&format!(
        "CREATE TABLE {table} (id {}, name {})",
        w.key_type(),
        text.ddl
    ))
    .await;
    w.execute(&format!(
        "INSERT INTO {table} (id, name) VALUES (1, 'Alice'), (2, 'Bob'), (3, {})",
        text.literal
    ))
    .await;
    let pg = Pg::new(&format!("src_{}", w.name())).await;
    pg.exec("CREATE TABLE people (id bigint PRIMARY KEY, name text)")
        .await;
    let p = project(
        w,
        &w.connection(),
        &format!("type: postgres, url: \"{}\"", pg.url),
    );
    sync(
        &p,
        "people",
        &format!("select id, name from {table}"),
        "{ id: id, name: name }",
        &pg.table("people"),
    );
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert_eq!(
        (code, v["creates"].as_u64()),
        (0, Some(3)),
        "{}: {v}",
        w.name()
    );
    let rows = pg
        .rows(&format!(
            "SELECT id, name FROM {} ORDER BY id",
            pg.table("people")
        ))
        .await;
    assert_eq!(
        Value::Array(rows),
        json!([{"id": 1, "name": "Alice"}, {"id": 2, "name": "Bob"}, {"id": 3, "name": Kind::Text.expected()}]),
        "{}",
        w.name()
    );
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert_eq!(
        (code, v["unchanged"].as_u64()),
        (0, Some(3)),
        "{}: {v}",
        w.name()
    );
    w.execute(&format!("UPDATE {table} SET name = 'Bobby' WHERE id = 2"))
        .await;
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert_eq!(
        (code, v["updates"].as_u64()),
        (0, Some(1)),
        "{}: {v}",
        w.name()
    );
}

/// An empty model is a run with zero rows (and `preview` says so).
pub async fn empty_result(w: &dyn Warehouse) {
    let table = w.table("retl_empty");
    w.execute(&format!("CREATE TABLE {table} (id {})", w.key_type()))
        .await;
    let hook = WebhookReceiver::start().await;
    let p = project(
        w,
        &w.connection(),
        &format!("type: webhook, url: \"{}\"", hook.url),
    );
    sync(
        &p,
        "empty",
        &format!("select id from {table}"),
        "{ id: id }",
        "e",
    );
    let (code, v) = p.run_json(&["preview", "empty"]).await;
    assert_eq!(code, 0, "{}: {v}", w.name());
    assert_eq!(v["rows"], 0, "{}: {v}", w.name());
    let (code, v) = p.run_json(&["run", "empty"]).await;
    assert_eq!(
        (code, v["rows"].as_u64()),
        (0, Some(0)),
        "{}: {v}",
        w.name()
    );
}

/// SQL errors name the warehouse's code and fail the run as a query failure.
pub async fn sql_error(w: &dyn Warehouse) {
    let hook = WebhookReceiver::start().await;
    let p = project(
        w,
        &w.connection(),
        &format!("type: webhook, url: \"{}\"", hook.url),
    );
    sync(
        &p,
        "broken",
        &format!("select id from {}", w.table("retl_no_such_table")),
        "{ id: id }",
        "b",
    );
    let (code, v) = p.run_json(&["run", "broken"]).await;
    assert_ne!(code, 0, "{}: {v}", w.name());
    let error = format!("{v}");
    assert!(
        error.contains("Retl.SourceQueryFailed") && error.contains(&w.missing_table_code()),
        "{}: expected Retl.SourceQueryFailed with code {}: {v}",
        w.name(),
        w.missing_table_code()
    );
}

/// Refused credentials are an authentication failure, not a query failure.
pub async fn auth_error(w: &dyn Warehouse) {
    let Some(bad) = w.connection_with_bad_credentials() else {
        return;
    };
    let hook = WebhookReceiver::start().await;
    let p = project(w, &bad, &format!("type: webhook, url: \"{}\"", hook.url));
    sync(&p, "denied", "select 1 as id", "{ id: id }", "d");
    let (code, v) = p.run_json(&["run", "denied"]).await;
    assert_ne!(code, 0, "{}: {v}", w.name());
    assert!(
        format!("{v}").contains("Retl.SourceAuthFailed"),
        "{}: expected Retl.SourceAuthFailed: {v}",
        w.name()
    );
}

/// A model slower than `timeout_seconds` is cancelled and reported as a timeout, promptly.
pub async fn timeout(w: &dyn Warehouse) {
    let hook = WebhookReceiver::start().await;
    let p = project(
        w,
        &format!("{}, timeout_seconds: 2", w.connection()),
        &format!("type: webhook, url: \"{}\"", hook.url),
    );
    sync(&p, "slow", &w.slow_query(60), "{ id: id }", "s");
    let started = Instant::now();
    let (code, v) = p.run_json(&["run", "slow"]).await;
    assert_ne!(code, 0, "{}: {v}", w.name());
    assert!(
        format!("{v}").contains("Retl.SourceTimeout"),
        "{}: expected Retl.SourceTimeout: {v}",
        w.name()
    );
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "{}: the timeout took {:?}",
        w.name(),
        started.elapsed()
    );
}

/// The warehouse's environment as the secrets of an in-process source.
struct EnvOf(BTreeMap<String, String>);

#[async_trait]
impl Secrets for EnvOf {
    async fn get(&self, name: &str) -> Result<String, SecretError> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| SecretError::Missing {
                name: name.to_string(),
                hint: "the warehouse under test does not set it".into(),
            })
    }
}

/// The warehouse's source, opened in this process through the connector registry.
pub async fn open_source(w: &dyn Warehouse) -> Arc<dyn Source> {
    let yaml = format!("{{ {} }}", w.connection());
    let config: ConnectionConfig = serde_saphyr::from_str(&yaml)
        .unwrap_or_else(|e| panic!("{}: the connection does not parse: {e}\n{yaml}", w.name()));
    let secrets = EnvOf(w.env().into_iter().collect());
    let root = std::env::temp_dir();
    let ctx = OpenContext {
        name: "wh",
        root: &root,
        secrets: &secrets,
        requests: Arc::new(Requester::new(RequestPolicy::for_source())),
    };
    config
        .as_source()
        .unwrap_or_else(|| panic!("{}: not a source", w.name()))
        .open_source(&ctx)
        .await
        .unwrap_or_else(|e| panic!("{}: cannot open the source: {e}", w.name()))
}

async fn ids_after(source: &dyn Source, sql: &str, column: &str, after: Bound) -> Vec<String> {
    let mut query = ModelQuery::new(sql, "suite", "run1");
    query.filter = Some(RowFilter {
        column: column.to_string(),
        after,
    });
    let mut stream = source.rows(&query).await.expect("the filtered model runs");
    let mut ids = Vec::new();
    while let Some(row) = stream.next().await {
        let row = row.expect("a row");
        ids.push(row["id"].to_string());
    }
    ids.sort();
    ids
}

/// An incremental model's high-watermark filter, bound as a typed parameter: integers and
/// timestamps, and a bound that would break SQL if it were pasted in.
pub async fn watermark_filter(w: &dyn Warehouse) {
    let cases = w.type_cases();
    let ts = cases
        .iter()
        .find(|c| c.kind == Kind::Timestamp)
        .expect("a timestamp type");
    let text = cases
        .iter()
        .find(|c| c.kind == Kind::Text)
        .expect("a text type");
    let table = w.table("retl_events");
    w.execute(&format!(
        "CREATE TABLE {table} (id {}, seq {}, changed_at {}, label {})",
        w.key_type(),
        w.key_type(),
        ts.ddl,
        text.ddl
    ))
    .await;
    // The timestamp literal with another time, in the literal's own spelling.
    let at = |t: &str| {
        if ts.literal.contains("2024-03-01T10:00:00.5") {
            ts.literal
                .replace("2024-03-01T10:00:00.5", &t.replace(' ', "T"))
        } else {
            ts.literal.replace("2024-03-01 10:00:00.5", t)
        }
    };
    for (id, seq, when, label) in [
        (1, 10, "2024-03-01 09:00:00", "a"),
        (2, 20, "2024-03-01 10:00:00", "b"),
        (3, 30, "2024-03-01 11:00:00", "c"),
    ] {
        w.execute(&format!(
            "INSERT INTO {table} (id, seq, changed_at, label) VALUES ({id}, {seq}, {}, '{label}')",
            at(when)
        ))
        .await;
    }
    let source = open_source(w).await;
    let sql = format!("select id, seq, changed_at, label from {table}");
    assert_eq!(
        ids_after(source.as_ref(), &sql, "seq", Bound::Integer("15".into())).await,
        ["2", "3"],
        "{}: integer watermark",
        w.name()
    );
    let naive = chrono::NaiveDateTime::parse_from_str("2024-03-01 10:00:00", "%Y-%m-%d %H:%M:%S")
        .expect("a time");
    assert_eq!(
        ids_after(source.as_ref(), &sql, "changed_at", Bound::Naive(naive)).await,
        ["3"],
        "{}: timestamp watermark",
        w.name()
    );
    assert!(
        ids_after(
            source.as_ref(),
            &sql,
            "label",
            Bound::Text("c' OR '1'='1".into())
        )
        .await
        .is_empty(),
        "{}: a quote in the bound must stay data",
        w.name()
    );
}

/// Every check of the suite, one after the other.
pub async fn run_all(w: &dyn Warehouse) {
    types_and_nulls(w).await;
    watermark_filter(w).await;
    syncs_into_postgres(w).await;
    empty_result(w).await;
    sql_error(w).await;
    auth_error(w).await;
    timeout(w).await;
}
