//! MySQL and MariaDB errors as [`SourceError`]s, with the server's own error number (1064,
//! 1045, 1146...) and SQLSTATE in the message.

use mysql_async::{DriverError, Error, IoError};

use crate::ports::SourceError;

/// Access denied: to the server, a database, a table, a column, a routine, a privilege; no
/// password given; an expired password; a locked account (MySQL 3118, MariaDB 4151); an
/// authentication method the client lacks.
const AUTH: &[u16] = &[
    1044, 1045, 1142, 1143, 1227, 1251, 1370, 1698, 1862, 3118, 4151,
];

/// The server's own statement timeout: MariaDB `max_statement_time` (1969), MySQL
/// `MAX_EXECUTION_TIME` (3024).
const TIMEOUT: &[u16] = &[1969, 3024];

/// Worth retrying: too many connections (overall, per user), the server shutting down, network
/// errors the server reports, lock wait timeouts and deadlocks, the connection killed.
const TRANSIENT: &[u16] = &[
    1040, 1053, 1152, 1158, 1159, 1160, 1161, 1203, 1205, 1213, 1927,
];

/// `e` as a source error of `connection`; `timeout_seconds` names the limit a timeout hit.
pub(crate) fn classify(connection: &str, timeout_seconds: Option<u64>, e: Error) -> SourceError {
    let connection = connection.to_string();
    match e {
        Error::Server(s) => {
            let code = s.code.to_string();
            let message = format!("{} (SQLSTATE {})", s.message, s.state);
            if TIMEOUT.contains(&s.code) {
                SourceError::Timeout {
                    connection,
                    seconds: timeout_seconds.unwrap_or(0),
                }
            } else if AUTH.contains(&s.code) {
                SourceError::Auth {
                    connection,
                    code,
                    message,
                }
            } else if TRANSIENT.contains(&s.code) {
                SourceError::Unavailable {
                    connection,
                    message: format!("{message} ({code})"),
                }
            } else {
                SourceError::Query {
                    connection,
                    code,
                    message,
                }
            }
        }
        Error::Url(u) => SourceError::Config {
            connection,
            message: format!("the connection URL is not valid: {u}"),
        },
        Error::Driver(DriverError::NoClientSslFlagFromServer) => SourceError::Config {
            connection,
            message: "the server does not offer TLS; set `tls: preferred` or `tls: disabled` \
                      only if the network path is trusted"
                .into(),
        },
        Error::Io(IoError::Tls(t)) => SourceError::Config {
            connection,
            message: format!(
                "TLS with the server failed: {t}; check `tls` and `ca_file` (the server's \
                 certificate must chain to a root in `ca_file` or the web roots)"
            ),
        },
        other => SourceError::Unavailable {
            connection,
            message: error_chain(&other),
        },
    }
}

/// An error with its causes.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::ServerError;

    fn server(code: u16) -> SourceError {
        let e = Error::Server(ServerError {
            code,
            message: "m".into(),
            state: "42000".into(),
        });
        classify("wh", Some(2), e)
    }

    #[test]
    fn server_codes_pick_the_error_kind() {
        assert!(matches!(server(1064), SourceError::Query { code, .. } if code == "1064"));
        assert!(
            matches!(server(1146), SourceError::Query { message, .. } if message.contains("42000"))
        );
        assert!(matches!(server(1045), SourceError::Auth { code, .. } if code == "1045"));
        assert!(matches!(server(1142), SourceError::Auth { .. }));
        assert!(matches!(
            server(1969),
            SourceError::Timeout { seconds: 2, .. }
        ));
        assert!(matches!(server(3024), SourceError::Timeout { .. }));
        assert!(matches!(server(1040), SourceError::Unavailable { .. }));
    }
}
