//! Snowflake as a source, through the source conformance suite: against fakesnow (DuckDB behind
//! Snowflake's connector protocol) and against the repository's protocol fake, which adds what
//! fakesnow lacks: results over many downloaded chunks (Arrow and JSON), key-pair and password
//! logins that can fail, long queries answered `333333` and polled, and an expired session
//! token renewed with the master token.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use retl_fakes::{ResultFormat, SnowflakeConfig, SnowflakeFake, SnowflakeUser};
use retl_shared::ports::{ModelQuery, SourceError};
use retl_tests::source_suite::{
    run_all, syncs_into_postgres, types_and_nulls, Kind, TypeCase, Warehouse,
};
use retl_tests::warehouses::fakesnow::{FakeSnow, Session};
use retl_tests::Pg;

const PRIVATE_KEY: &str = include_str!("../fakes/tests/fixtures/jwt_private.pem");
const OTHER_PRIVATE_KEY: &str = include_str!("../fakes/tests/fixtures/other_private.pem");
const PUBLIC_KEY: &str = include_str!("../fakes/tests/fixtures/jwt_public.pem");
const ACCOUNT: &str = "MYORG-ETL";
const USER: &str = "etl_user";
const PASSWORD: &str = "s3cret";

/// The protocol fake, with key-pair and password users, answering queries on `pg`.
async fn fake(pg: &Pg, format: ResultFormat) -> SnowflakeFake {
    let users = vec![SnowflakeUser {
        name: USER.into(),
        password: Some(PASSWORD.into()),
        public_key_pem: Some(PUBLIC_KEY.into()),
    }];
    let config = SnowflakeConfig {
        schema: pg.schema.to_ascii_uppercase(),
        // Every result of more than one row comes in downloaded chunks.
        rows_per_chunk: 1,
        result_format: format,
        // Queries longer than a second are answered 333333 and polled.
        sync_wait: Duration::from_secs(1),
        ..SnowflakeConfig::new(&pg.url, ACCOUNT, users)
    };
    SnowflakeFake::start(config)
        .await
        .expect("the Snowflake fake starts")
}

/// A connection to the fake refusing the key (another key than the user's).
fn refused_key(fake: &SnowflakeFake) -> String {
    format!(
        "type: snowflake, account: {ACCOUNT}, user: {USER}, private_key_env: SF_OTHER_KEY, endpoint: \"{}\"",
        fake.base_url()
    )
}

struct Fakesnow {
    snow: FakeSnow,
    session: Session,
    /// Refuses logins, which fakesnow never does.
    refusing: SnowflakeFake,
}

#[async_trait]
impl Warehouse for Fakesnow {
    fn name(&self) -> &str {
        "fakesnow"
    }

    fn connection(&self) -> String {
        format!(
            "type: snowflake, account: fakesnow, user: retl, database: RETL, schema: PUBLIC, endpoint: \"{}\"",
            self.snow.url
        )
    }

    fn connection_with_bad_credentials(&self) -> Option<String> {
        Some(refused_key(&self.refusing))
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![("SF_OTHER_KEY".into(), OTHER_PRIVATE_KEY.into())]
    }

    async fn execute(&self, sql: &str) {
        self.snow.execute(&self.session, &[sql]).await;
    }

    fn table(&self, name: &str) -> String {
        format!("RETL.PUBLIC.{name}")
    }

    fn type_cases(&self) -> Vec<TypeCase> {
        vec![
            TypeCase::new(Kind::BigInt, "BIGINT", "9007199254740993"),
            TypeCase::new(Kind::NegativeInt, "INTEGER", "-42"),
            TypeCase::new(
                Kind::Decimal,
                "NUMBER(38,10)",
                "12345678901234567890.1234567890",
            ),
            TypeCase::new(Kind::Float, "FLOAT", "0.5"),
            TypeCase::new(Kind::Bool, "BOOLEAN", "TRUE"),
            TypeCase::new(Kind::Text, "VARCHAR", "'Zoë ✓ 日本 🚀'"),
            TypeCase::new(Kind::Date, "DATE", "'2024-02-29'"),
            TypeCase::new(Kind::Timestamp, "TIMESTAMP_NTZ", "'2024-03-01 10:00:00.5'"),
            TypeCase::new(
                Kind::TimestampTz,
                "TIMESTAMP_TZ",
                "'2024-03-01 10:00:00+02:00'",
            ),
            TypeCase::new(
                Kind::Json,
                "VARIANT",
                "PARSE_JSON('{\"plan\": \"pro\", \"seats\": 3}')",
            ),
            TypeCase::new(Kind::Binary, "BINARY", "TO_BINARY('DEADBEEF', 'HEX')"),
        ]
    }

    fn key_type(&self) -> String {
        "INTEGER".into()
    }

    fn slow_query(&self, seconds: u32) -> String {
        // DuckDB hashes about a million generated rows a second here (a plain count is
        // optimised away), so this runs for minutes.
        let rows = u64::from(seconds) * 2_000_000;
        format!(
            "select length(m) as id from (select max(md5(to_varchar(seq4()))) as m \
             from table(generator(rowcount => {rows}))) s"
        )
    }

    fn missing_table_code(&self) -> String {
        "002003".into()
    }
}

/// The protocol fake over the test's PostgreSQL: PostgreSQL spells the types, the fake
/// answers them as Snowflake does.
struct Fake {
    fake: SnowflakeFake,
    pg: Pg,
    key_pair: bool,
}

#[async_trait]
impl Warehouse for Fake {
    fn name(&self) -> &str {
        "snowflake_fake"
    }

    fn connection(&self) -> String {
        let secret = if self.key_pair {
            "private_key_env: SF_KEY"
        } else {
            "password_env: SF_PASSWORD"
        };
        format!(
            "type: snowflake, account: {ACCOUNT}.eu-west-1, user: {USER}, warehouse: WH, role: RETL, {secret}, endpoint: \"{}\"",
            self.fake.base_url()
        )
    }

    fn connection_with_bad_credentials(&self) -> Option<String> {
        Some(if self.key_pair {
            refused_key(&self.fake)
        } else {
            format!(
                "type: snowflake, account: {ACCOUNT}, user: {USER}, password_env: SF_BAD_PASSWORD, endpoint: \"{}\"",
                self.fake.base_url()
            )
        })
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("SF_KEY".into(), PRIVATE_KEY.into()),
            ("SF_OTHER_KEY".into(), OTHER_PRIVATE_KEY.into()),
            ("SF_PASSWORD".into(), PASSWORD.into()),
            ("SF_BAD_PASSWORD".into(), "wrong".into()),
        ]
    }

    async fn execute(&self, sql: &str) {
        self.pg.exec(sql).await;
    }

    fn table(&self, name: &str) -> String {
        self.pg.table(name)
    }

    fn type_cases(&self) -> Vec<TypeCase> {
        vec![
            TypeCase::new(Kind::BigInt, "bigint", "9007199254740993"),
            TypeCase::new(Kind::NegativeInt, "integer", "-42"),
            TypeCase::new(
                Kind::Decimal,
                "numeric(38,10)",
                "12345678901234567890.1234567890",
            ),
            TypeCase::new(Kind::Float, "double precision", "0.5"),
            TypeCase::new(Kind::Bool, "boolean", "true"),
            TypeCase::new(Kind::Text, "text", "'Zoë ✓ 日本 🚀'"),
            TypeCase::new(Kind::Date, "date", "'2024-02-29'"),
            TypeCase::new(Kind::Timestamp, "timestamp", "'2024-03-01 10:00:00.5'"),
            TypeCase::new(Kind::TimestampTz, "timestamptz", "'2024-03-01 10:00:00+02'"),
            TypeCase::new(Kind::Binary, "bytea", "'\\xdeadbeef'"),
        ]
    }

    fn key_type(&self) -> String {
        "bigint".into()
    }

    fn slow_query(&self, seconds: u32) -> String {
        format!("select 1 as id from (select pg_sleep({seconds})) s")
    }

    fn missing_table_code(&self) -> String {
        "002003".into()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fakesnow_passes_the_source_suite() {
    let snow = FakeSnow::start();
    let session = snow.login("RETL", "PUBLIC").await;
    let pg = Pg::new("sf_refusing").await;
    let w = Fakesnow {
        snow,
        session,
        refusing: fake(&pg, ResultFormat::Arrow).await,
    };
    run_all(&w).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_protocol_fake_passes_the_source_suite_with_arrow_chunks_and_a_key_pair() {
    let pg = Pg::new("sf_arrow").await;
    let w = Fake {
        fake: fake(&pg, ResultFormat::Arrow).await,
        pg,
        key_pair: true,
    };
    run_all(&w).await;
    let queries = w.fake.queries();
    assert!(!queries.is_empty());
    for q in &queries {
        let tag = q.query_tag.as_deref().unwrap_or_default();
        assert!(
            tag.starts_with("retl:") && tag.split(':').count() == 3,
            "query tag {tag:?} of {}",
            q.sql
        );
    }
    let logins = w.fake.logins();
    assert!(
        logins
            .iter()
            .any(|l| l.authenticator.as_deref() == Some("SNOWFLAKE_JWT") && l.code.is_none()),
        "{logins:?}"
    );
    assert!(
        logins.iter().any(|l| l.code.as_deref() == Some("390144")),
        "{logins:?}"
    );
    assert!(
        logins.iter().all(|l| l.account == ACCOUNT),
        "the region is not part of the account name: {logins:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_protocol_fake_reads_json_chunks_with_a_password() {
    let pg = Pg::new("sf_json").await;
    let w = Fake {
        fake: fake(&pg, ResultFormat::Json).await,
        pg,
        key_pair: false,
    };
    types_and_nulls(&w).await;
    syncs_into_postgres(&w).await;
    retl_tests::source_suite::auth_error(&w).await;
    let logins = w.fake.logins();
    assert!(
        logins.iter().any(|l| l.code.as_deref() == Some("390100")),
        "{logins:?}"
    );
}

/// Reads `sql` through the source opened as the suite does; the rows' ids or the error.
async fn read_ids(w: &Fake, sql: &str) -> Result<Vec<String>, SourceError> {
    let source = retl_tests::source_suite::open_source(w).await;
    let mut stream = source.rows(&ModelQuery::new(sql, "renew", "run1")).await?;
    let mut ids = Vec::new();
    while let Some(row) = stream.next().await {
        ids.push(row?["id"].to_string());
    }
    Ok(ids)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_session_is_renewed_with_the_master_token() {
    let pg = Pg::new("sf_renew").await;
    let users = vec![SnowflakeUser {
        name: USER.into(),
        password: Some(PASSWORD.into()),
        public_key_pem: Some(PUBLIC_KEY.into()),
    }];
    // Session tokens last two seconds and the query three, polled every 300 ms: the polls
    // after the second second are answered 390112. (With one-second tokens, a loaded CI
    // machine stalled past a renewed token's life before the call it renewed for.)
    let config = SnowflakeConfig {
        schema: pg.schema.to_ascii_uppercase(),
        session_ttl: Duration::from_secs(2),
        sync_wait: Duration::from_millis(300),
        ..SnowflakeConfig::new(&pg.url, ACCOUNT, users)
    };
    let w = Fake {
        fake: SnowflakeFake::start(config).await.expect("the fake starts"),
        pg,
        key_pair: true,
    };
    let slow = "select 7 as id from (select pg_sleep(3)) s";
    let ids = read_ids(&w, slow).await.expect("the session is renewed");
    assert_eq!(ids, ["7"]);
    let requests = w.fake.requests();
    let renewals: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/session/token-request")
        .collect();
    assert!(
        !renewals.is_empty() && renewals.iter().all(|r| r.status == 200),
        "the expired token is renewed: {requests:?}"
    );
    assert_eq!(
        w.fake.logins().len(),
        1,
        "renewal replaces a new login: {:?}",
        w.fake.logins()
    );

    // With the master token expired too, the renewal is refused: an authentication failure
    // naming Snowflake's code.
    w.fake.set_master_ttl(Duration::from_secs(1));
    let err = read_ids(&w, slow)
        .await
        .expect_err("the renewal is refused");
    assert!(
        matches!(&err, SourceError::Auth { code, .. } if code == "390114"),
        "{err}"
    );
}
