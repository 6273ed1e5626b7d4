//! PostgreSQL columns and values as Databricks SQL reports them: `manifest.schema.columns`
//! (`type_name` from the `ColumnInfoTypeName` enum, `type_text` the SQL type), the string
//! form of each value in `JSON_ARRAY`/`CSV` results, and the parameter `type`s a request may
//! give, as PostgreSQL casts.
//!
//! Mapping: `int2` SHORT/SMALLINT, `int4` INT, `int8` LONG/BIGINT, `float4` FLOAT, `float8`
//! DOUBLE, `numeric(p,s)` DECIMAL(p,s) (unconstrained `numeric` as DECIMAL(38,18), Spark's
//! system default), `bool` BOOLEAN, `date` DATE, `timestamptz` TIMESTAMP, `timestamp`
//! TIMESTAMP_NTZ, `bytea` BINARY, text types STRING. Value text: integers and decimals as
//! digits (decimals with exactly `scale` places), FLOAT/DOUBLE as Java's
//! `Double.toString` (`2.0`, `0.25`, `1.0E10`), booleans `true`/`false`, dates
//! `2024-01-31`, TIMESTAMP `2024-01-31T12:00:00.500Z` (fraction in 3, 6 or 9 digits, none
//! when zero) and TIMESTAMP_NTZ the same without the `Z`, BINARY as base64; NULL is JSON
//! `null` (CSV: `null`).

use base64::Engine;
use tokio_postgres::types::Type;

use crate::redshift_data::pg::{numeric_typmod, PgColumn};
use crate::redshift_data::pgtext;

/// DECIMAL precision and scale given to an unconstrained `numeric`.
pub(crate) const DEFAULT_DECIMAL: (u32, u32) = (38, 18);

/// A result column's Databricks type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DbxType {
    Short,
    Int,
    Long,
    Float,
    Double,
    Decimal(u32, u32),
    Boolean,
    Date,
    Timestamp,
    TimestampNtz,
    Binary,
    String,
}

impl DbxType {
    /// The type of a PostgreSQL column.
    pub(crate) fn of(column: &PgColumn) -> Self {
        match column.ty {
            Type::INT2 => DbxType::Short,
            Type::INT4 => DbxType::Int,
            Type::INT8 => DbxType::Long,
            Type::FLOAT4 => DbxType::Float,
            Type::FLOAT8 => DbxType::Double,
            Type::NUMERIC => {
                // Databricks decimals stop at 38 digits.
                let (p, s) = numeric_typmod(column.typmod).unwrap_or(DEFAULT_DECIMAL);
                DbxType::Decimal(p.min(38), s.min(p.min(38)))
            }
            Type::BOOL => DbxType::Boolean,
            Type::DATE => DbxType::Date,
            Type::TIMESTAMPTZ => DbxType::Timestamp,
            Type::TIMESTAMP => DbxType::TimestampNtz,
            Type::BYTEA => DbxType::Binary,
            _ => DbxType::String,
        }
    }

    /// `(type_name, type_text)`.
    pub(crate) fn names(self) -> (&'static str, String) {
        match self {
            DbxType::Short => ("SHORT", "SMALLINT".into()),
            DbxType::Int => ("INT", "INT".into()),
            DbxType::Long => ("LONG", "BIGINT".into()),
            DbxType::Float => ("FLOAT", "FLOAT".into()),
            DbxType::Double => ("DOUBLE", "DOUBLE".into()),
            DbxType::Decimal(p, s) => ("DECIMAL", format!("DECIMAL({p},{s})")),
            DbxType::Boolean => ("BOOLEAN", "BOOLEAN".into()),
            DbxType::Date => ("DATE", "DATE".into()),
            DbxType::Timestamp => ("TIMESTAMP", "TIMESTAMP".into()),
            DbxType::TimestampNtz => ("TIMESTAMP_NTZ", "TIMESTAMP_NTZ".into()),
            DbxType::Binary => ("BINARY", "BINARY".into()),
            DbxType::String => ("STRING", "STRING".into()),
        }
    }
}

/// The string form of a (non-NULL) PostgreSQL text value of type `ty`.
pub(crate) fn value_text(ty: DbxType, text: &str) -> String {
    let converted = match ty {
        DbxType::Float | DbxType::Double => text.parse::<f64>().ok().map(java_double),
        DbxType::Boolean => pgtext::boolean(text).map(|b| b.to_string()),
        DbxType::Decimal(_, s) => {
            pgtext::scaled_decimal(text, s).map(|v| pgtext::format_scaled(v, s))
        }
        DbxType::Timestamp => {
            pgtext::timestamp(text).map(|t| format!("{}Z", t.format("%Y-%m-%dT%H:%M:%S%.f")))
        }
        DbxType::TimestampNtz => {
            pgtext::timestamp(text).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
        }
        DbxType::Binary => {
            pgtext::bytea(text).map(|b| base64::engine::general_purpose::STANDARD.encode(b))
        }
        _ => None,
    };
    converted.unwrap_or_else(|| text.to_string())
}

/// A double as Spark casts it to a string (Java's `Double.toString`): `2.0`, `0.25`,
/// `1.0E10`, `1.5E-5`, `NaN`, `Infinity`.
fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let magnitude = v.abs();
    if magnitude != 0.0 && !(1e-3..1e7).contains(&magnitude) {
        let sci = format!("{v:e}");
        let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        return format!("{mantissa}E{exp}");
    }
    let plain = format!("{v}");
    if plain.contains('.') {
        plain
    } else {
        format!("{plain}.0")
    }
}

/// A parameter `type` (`INT`, `DECIMAL(10,2)`, ...) as the PostgreSQL type to cast to;
/// `None` for a type Databricks does not accept.
pub(crate) fn parameter_cast(ty: &str) -> Option<String> {
    let upper = ty.trim().to_ascii_uppercase();
    let cast = match upper.as_str() {
        "STRING" | "VARCHAR" | "CHAR" => "text",
        "BYTE" | "TINYINT" | "SHORT" | "SMALLINT" => "int2",
        "INT" | "INTEGER" => "int4",
        "LONG" | "BIGINT" => "int8",
        "FLOAT" | "REAL" => "float4",
        "DOUBLE" => "float8",
        "BOOLEAN" => "boolean",
        "DATE" => "date",
        "TIMESTAMP" => "timestamptz",
        "TIMESTAMP_NTZ" => "timestamp",
        "BINARY" => "bytea",
        "DECIMAL" => "numeric(10,0)",
        other => {
            let inner = other.strip_prefix("DECIMAL(")?.strip_suffix(')')?;
            let (p, s) = inner.split_once(',')?;
            let (p, s): (u32, u32) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
            return (s <= p && p <= 38).then(|| format!("numeric({p},{s})"));
        }
    };
    Some(cast.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_parameter_types() {
        assert_eq!(value_text(DbxType::Decimal(10, 2), "12.5"), "12.50");
        assert_eq!(value_text(DbxType::Boolean, "t"), "true");
        assert_eq!(
            value_text(DbxType::Timestamp, "2024-01-31 12:00:00.5+00"),
            "2024-01-31T12:00:00.500Z"
        );
        assert_eq!(value_text(DbxType::Binary, "\\x6869"), "aGk=");
        assert_eq!(value_text(DbxType::Double, "2"), "2.0");
        assert_eq!(value_text(DbxType::Double, "1e+10"), "1.0E10");
        assert_eq!(value_text(DbxType::Double, "-1.5e-05"), "-1.5E-5");
        assert_eq!(value_text(DbxType::Double, "0.25"), "0.25");
        assert_eq!(
            parameter_cast("decimal(10, 2)").as_deref(),
            Some("numeric(10,2)")
        );
        assert_eq!(parameter_cast("MAP<STRING,INT>"), None);
    }
}
