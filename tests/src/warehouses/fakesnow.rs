//! fakesnow: a Snowflake emulator that serves the connector protocol (`/session/v1/login-request`,
//! `/queries/v1/query-request`) over DuckDB, from `.venv-snowflake`. One server per test, its
//! data in memory, shared by every session of that server.

use std::process::Command;

use serde_json::{json, Value};
use tempfile::TempDir;

use super::arrow_ipc::{self, Field};
use super::{free_port, http_status, repo_root, require, Service};

/// A running fakesnow server.
pub struct FakeSnow {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Its loopback port.
    pub port: u16,
    http: reqwest::Client,
    _service: Service,
    _dir: TempDir,
}

/// A logged-in session: the token goes in `Authorization: Snowflake Token="…"`.
pub struct Session {
    /// The session token from the login response.
    pub token: String,
}

/// A query's result, rows decoded from `rowset` (JSON, DML counts) or `rowsetBase64` (Arrow).
#[derive(Debug)]
pub struct QueryResult {
    /// The response's `data` object, with the rowset left in.
    pub data: Value,
    /// The Arrow schema's fields (empty for JSON rowsets and for results without rows).
    pub fields: Vec<Field>,
    /// Rows, one value per column.
    pub rows: Vec<Vec<Value>>,
}

impl FakeSnow {
    /// Starts fakesnow on a free port and waits until it answers HTTP.
    pub fn start() -> FakeSnow {
        let fakesnow = require(repo_root().join(".venv-snowflake/bin/fakesnow"), "fakesnow");
        let dir = tempfile::tempdir().expect("temp dir for fakesnow");
        let port = free_port();
        let mut command = Command::new(fakesnow);
        command
            .args(["-s", "--host", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path());
        // Any status means uvicorn serves; fakesnow has no route for GET /.
        let service = Service::start("fakesnow", command, dir.path().join("fakesnow.log"), || {
            http_status(port, "/").is_some()
        });
        FakeSnow {
            url: format!("http://127.0.0.1:{port}"),
            port,
            http: reqwest::Client::new(),
            _service: service,
            _dir: dir,
        }
    }

    /// Logs in (fakesnow accepts any user and password) to `database`.`schema`, which it
    /// creates when missing.
    pub async fn login(&self, database: &str, schema: &str) -> Session {
        let body = json!({"data": {
            "ACCOUNT_NAME": "fakesnow",
            "LOGIN_NAME": "retl",
            "PASSWORD": "retl",
            "SESSION_PARAMETERS": {}
        }});
        let response = self
            .post(
                &format!("/session/v1/login-request?databaseName={database}&schemaName={schema}"),
                None,
                &body,
            )
            .await;
        let token = response["data"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("login response without a token: {response}"));
        Session {
            token: token.to_string(),
        }
    }

    /// Runs one statement, panicking on `success: false`, and decodes its rows.
    pub async fn query(&self, session: &Session, sql: &str) -> QueryResult {
        let body = json!({"sqlText": sql, "sequenceId": 1});
        let response = self
            .post("/queries/v1/query-request", Some(session), &body)
            .await;
        if response["success"] != json!(true) {
            panic!("fakesnow refused {sql}: {response}");
        }
        let data = response["data"].clone();
        let (fields, rows) = match data["rowsetBase64"].as_str() {
            // fakesnow sends "" rather than an empty stream when there are no rows.
            Some("") => (Vec::new(), Vec::new()),
            Some(encoded) => {
                let table = arrow_ipc::read_stream(&decode_base64(encoded))
                    .unwrap_or_else(|e| panic!("rowsetBase64 of {sql}: {e}"));
                (table.fields, table.rows)
            }
            None => {
                let rows = serde_json::from_value(data["rowset"].clone())
                    .unwrap_or_else(|e| panic!("rowset of {sql}: {e}: {data}"));
                (Vec::new(), rows)
            }
        };
        QueryResult { data, fields, rows }
    }

    /// Runs statements one by one (the protocol takes one per request).
    pub async fn execute(&self, session: &Session, statements: &[&str]) {
        for sql in statements {
            self.query(session, sql).await;
        }
    }

    async fn post(&self, path: &str, session: Option<&Session>, body: &Value) -> Value {
        let mut request = self
            .http
            .post(format!("{}{path}", self.url))
            .header("Accept", "application/snowflake")
            .json(body);
        if let Some(session) = session {
            request = request.header(
                "Authorization",
                format!("Snowflake Token=\"{}\"", session.token),
            );
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} to fakesnow: {e}"));
        let status = response.status();
        let text = response.text().await.expect("fakesnow response body");
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("fakesnow {path} answered {status} with non-JSON ({e}): {text}")
        })
    }
}

/// Standard base64 with padding, as `rowsetBase64` uses.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("invalid base64 byte {c:#x} in rowsetBase64"),
        }
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let bits =
            chunk.iter().fold(0u32, |acc, &c| (acc << 6) | value(c)) << (6 * (4 - chunk.len()));
        out.extend_from_slice(&bits.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::decode_base64;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(decode_base64("aGVsbG8="), b"hello");
        assert_eq!(decode_base64("aGk="), b"hi");
        assert_eq!(decode_base64("YWJj"), b"abc");
    }
}
