//! ClickHouse's errors as [`SourceError`]s. The server writes them as text, in the body of a
//! non-200 answer or, when rows were already sent, as the last line of a 200 body:
//! `Code: 60, e.displayText() = DB::Exception: Table default.t doesn't exist., e.what() =
//! DB::Exception` (18.16) or `Code: 60. DB::Exception: Table default.t does not exist.
//! (UNKNOWN_TABLE) (version 24.3.1)` (current servers).

use crate::ports::SourceError;

/// Unknown user, wrong or missing password, address not allowed, database access denied,
/// access denied, authentication failed, read-only user.
const AUTH: &[u32] = &[164, 192, 193, 194, 195, 291, 497, 516];
/// `max_execution_time` exceeded.
const TIMEOUT: &[u32] = &[159];
/// Too many queries, no free connection, socket timeout, network error, the same query id
/// still running (a retry before the server noticed the first attempt ended), read-only
/// replica, too many parts, all connection tries failed, the query cancelled elsewhere.
const TRANSIENT: &[u32] = &[202, 203, 209, 210, 216, 242, 252, 279, 394];

/// An error the server wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerError {
    /// ClickHouse's error code (`60`).
    pub code: u32,
    /// Its message, without the `DB::Exception` wrapping.
    pub message: String,
}

/// The error in `text` (a body or its last line), if it is one.
pub(crate) fn parse(text: &str) -> Option<ServerError> {
    let start = text.find("Code: ")?;
    let rest = &text[start + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let code = digits.parse().ok()?;
    let rest = &rest[digits.len()..];
    let rest = rest
        .strip_prefix(", e.displayText() = ")
        .or_else(|| rest.strip_prefix(". "))?;
    let rest = rest.strip_prefix("DB::Exception: ").unwrap_or(rest);
    let message = rest
        .split(", e.what() = ")
        .next()
        .unwrap_or(rest)
        .trim()
        .to_string();
    Some(ServerError { code, message })
}

/// `e` as a source error of `connection`; `timeout_seconds` names the limit a timeout hit.
pub(crate) fn classify(
    connection: &str,
    timeout_seconds: Option<u64>,
    e: ServerError,
) -> SourceError {
    let connection = connection.to_string();
    let code = e.code.to_string();
    if TIMEOUT.contains(&e.code) {
        SourceError::Timeout {
            connection,
            seconds: timeout_seconds.unwrap_or(0),
        }
    } else if AUTH.contains(&e.code) {
        SourceError::Auth {
            connection,
            code,
            message: e.message,
        }
    } else if TRANSIENT.contains(&e.code) {
        SourceError::Unavailable {
            connection,
            message: format!("{} ({code})", e.message),
        }
    } else {
        SourceError::Query {
            connection,
            code,
            message: e.message,
        }
    }
}

/// An answer without a ClickHouse error in it (a proxy's page), by its HTTP status.
pub(crate) fn from_status(connection: &str, status: u16, body: &str) -> SourceError {
    let connection = connection.to_string();
    let message: String = body.chars().take(300).collect();
    match status {
        401 | 403 => SourceError::Auth {
            connection,
            code: format!("http {status}"),
            message,
        },
        408 | 429 | 500..=599 => SourceError::Unavailable {
            connection,
            message: format!("HTTP {status}: {message}"),
        },
        _ => SourceError::Query {
            connection,
            code: format!("http {status}"),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_error_spellings_parse() {
        let old = "Code: 60, e.displayText() = DB::Exception: Table default.t doesn't exist., \
                   e.what() = DB::Exception\n";
        assert_eq!(
            parse(old),
            Some(ServerError {
                code: 60,
                message: "Table default.t doesn't exist.".into()
            })
        );
        let new = "Code: 62. DB::Exception: Syntax error: failed at position 1. (SYNTAX_ERROR) \
                   (version 24.3.1.1)";
        assert_eq!(parse(new).map(|e| e.code), Some(62));
        assert_eq!(parse("1\t2"), None);
        assert_eq!(parse("Code: x"), None);
    }

    #[test]
    fn codes_pick_the_error_kind() {
        let e = |code| ServerError {
            code,
            message: "m".into(),
        };
        assert!(matches!(
            classify("c", Some(2), e(159)),
            SourceError::Timeout { seconds: 2, .. }
        ));
        assert!(
            matches!(classify("c", None, e(193)), SourceError::Auth { code, .. } if code == "193")
        );
        assert!(matches!(
            classify("c", None, e(202)),
            SourceError::Unavailable { .. }
        ));
        assert!(
            matches!(classify("c", None, e(60)), SourceError::Query { code, .. } if code == "60")
        );
        assert!(matches!(
            from_status("c", 503, "busy"),
            SourceError::Unavailable { .. }
        ));
        assert!(matches!(
            from_status("c", 401, ""),
            SourceError::Auth { .. }
        ));
    }
}
