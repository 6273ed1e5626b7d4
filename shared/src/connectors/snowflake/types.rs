//! A result's columns as the response's `rowtype` describes them, and the names retl gives
//! them: Snowflake upper-cases unquoted identifiers (`select id` answers `ID`), so a name
//! without lower-case letters reads in lower case, as the model wrote it; a quoted mixed-case
//! name keeps its case.

use serde_json::Value;

/// A Snowflake column type, with the scale its values are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SfType {
    /// NUMBER(p, s): exact, `scale` digits after the point.
    Fixed { scale: i32 },
    /// FLOAT / DOUBLE / REAL.
    Real,
    /// VARCHAR, CHAR, STRING, TEXT (and anything unknown, read as text).
    Text,
    /// BOOLEAN.
    Boolean,
    /// DATE.
    Date,
    /// TIME(scale).
    Time { scale: i32 },
    /// TIMESTAMP_NTZ(scale): wall-clock time.
    TimestampNtz { scale: i32 },
    /// TIMESTAMP_LTZ(scale): an instant.
    TimestampLtz { scale: i32 },
    /// TIMESTAMP_TZ(scale): an instant with an offset (read in UTC).
    TimestampTz { scale: i32 },
    /// VARIANT, OBJECT, ARRAY: JSON text.
    Variant,
    /// BINARY.
    Binary,
}

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    /// The name retl uses.
    pub name: String,
    /// Its type.
    pub ty: SfType,
}

/// The columns of a `rowtype` array.
pub(crate) fn columns(rowtype: &Value) -> Vec<Column> {
    rowtype
        .as_array()
        .map(|cols| cols.iter().map(column).collect())
        .unwrap_or_default()
}

fn column(c: &Value) -> Column {
    let scale = c["scale"].as_i64().unwrap_or(0) as i32;
    let time_scale = c["scale"].as_i64().unwrap_or(9) as i32;
    let ty = match c["type"]
        .as_str()
        .unwrap_or("")
        .to_ascii_lowercase()
        .as_str()
    {
        "fixed" => SfType::Fixed { scale },
        "real" => SfType::Real,
        "boolean" => SfType::Boolean,
        "date" => SfType::Date,
        "time" => SfType::Time { scale: time_scale },
        "timestamp_ntz" => SfType::TimestampNtz { scale: time_scale },
        "timestamp_ltz" => SfType::TimestampLtz { scale: time_scale },
        "timestamp_tz" => SfType::TimestampTz { scale: time_scale },
        "variant" | "object" | "array" | "map" => SfType::Variant,
        "binary" => SfType::Binary,
        _ => SfType::Text,
    };
    Column {
        name: retl_name(c["name"].as_str().unwrap_or("")),
        ty,
    }
}

/// The name of a result column in retl: Snowflake's upper-cased form of an unquoted name in
/// lower case, any other name as it is.
pub(crate) fn retl_name(name: &str) -> String {
    let folded = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if folded {
        name.to_ascii_lowercase()
    } else {
        name.to_string()
    }
}

/// How the model's column `name` (as retl names it) is written in SQL: a lower-case plain name
/// unquoted (Snowflake resolves it to its upper-case form), anything else quoted.
pub(crate) fn sql_name(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unquoted_names_read_in_lower_case() {
        assert_eq!(retl_name("ID"), "id");
        assert_eq!(retl_name("C_BIGINT"), "c_bigint");
        assert_eq!(retl_name("Mixed"), "Mixed");
        assert_eq!(retl_name("number of rows"), "number of rows");
        assert_eq!(sql_name("updated_at"), "updated_at");
        assert_eq!(sql_name("Mixed"), "\"Mixed\"");
        assert_eq!(sql_name("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn rowtype_types_and_scales() {
        let cols = columns(&json!([
            {"name": "AMOUNT", "type": "fixed", "scale": 10},
            {"name": "AT", "type": "timestamp_ntz", "scale": 9},
            {"name": "DOC", "type": "variant"},
            {"name": "X", "type": "geography"}
        ]));
        assert_eq!(cols[0].ty, SfType::Fixed { scale: 10 });
        assert_eq!(cols[1].ty, SfType::TimestampNtz { scale: 9 });
        assert_eq!(cols[2].ty, SfType::Variant);
        assert_eq!(cols[3].ty, SfType::Text);
        assert_eq!(cols[0].name, "amount");
    }
}
