//! PostgreSQL columns and values as the Redshift Data API reports them: `ColumnMetadata`
//! (`typeName` is Redshift's type name: `int4`, `numeric`, `varchar`, `bpchar`, `timestamptz`,
//! `varbyte`, ...) and the `Field` union of `GetStatementResult` records.
//!
//! Value mapping: integers are `longValue`; `float4`/`float8` are `doubleValue`; `bool` is
//! `booleanValue`; binary is `blobValue` (base64 on the wire, the AWS JSON encoding of a
//! blob); SQL NULL is `{"isNull": true}`; everything else, `numeric` included (exact
//! decimals), is `stringValue` in Redshift's text form (`2024-01-31 12:00:00.5`,
//! `2024-01-31 12:00:00.5+00`, `2024-01-31`), which is PostgreSQL's text form too.
//! Precision/length figures follow the JDBC-style values the API reports (`int4` has
//! precision 10, `int8` 19, `varchar(n)` n); they are not documented one by one.

use base64::Engine;
use serde_json::{json, Value};
use tokio_postgres::types::Type;

use super::pg::{char_length, numeric_typmod, PgColumn};
use super::pgtext;

/// Longest `varchar` Redshift allows, reported for unconstrained text.
const MAX_VARCHAR: u32 = 65_535;

/// Redshift's name for a PostgreSQL type.
fn type_name(ty: &Type) -> String {
    match *ty {
        Type::TEXT | Type::VARCHAR | Type::NAME => "varchar".into(),
        Type::BPCHAR => "bpchar".into(),
        Type::BYTEA => "varbyte".into(),
        _ => ty.name().to_string(),
    }
}

/// `(precision, scale)` as reported for `column`.
fn precision_scale(column: &PgColumn) -> (u32, u32) {
    match column.ty {
        Type::INT2 => (5, 0),
        Type::INT4 => (10, 0),
        Type::INT8 => (19, 0),
        Type::FLOAT4 => (8, 8),
        Type::FLOAT8 => (17, 17),
        Type::BOOL => (1, 0),
        Type::NUMERIC => numeric_typmod(column.typmod).unwrap_or((38, 0)),
        Type::DATE => (13, 0),
        Type::TIMESTAMP => (29, 6),
        Type::TIMESTAMPTZ => (35, 6),
        Type::VARCHAR | Type::BPCHAR => (char_length(column.typmod).unwrap_or(MAX_VARCHAR), 0),
        _ => (MAX_VARCHAR, 0),
    }
}

/// One `ColumnMetadata` entry.
pub(crate) fn column_metadata(column: &PgColumn) -> Value {
    let (precision, scale) = precision_scale(column);
    let textual = matches!(
        column.ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME
    );
    let signed = matches!(
        column.ty,
        Type::INT2 | Type::INT4 | Type::INT8 | Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC
    );
    json!({
        "isCaseSensitive": textual,
        "isCurrency": false,
        "isSigned": signed,
        "label": column.name,
        "length": precision,
        "name": column.name,
        "nullable": if column.not_null { 0 } else { 1 },
        "precision": precision,
        "scale": scale,
        "schemaName": column.schema.clone().unwrap_or_default(),
        "tableName": column.table.clone().unwrap_or_default(),
        "typeName": type_name(&column.ty),
    })
}

/// One `Field` of a record.
pub(crate) fn field(ty: &Type, value: Option<&str>) -> Value {
    let Some(text) = value else {
        return json!({"isNull": true});
    };
    let typed = match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 => {
            text.parse::<i64>().ok().map(|v| json!({"longValue": v}))
        }
        Type::FLOAT4 | Type::FLOAT8 => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|v| json!({"doubleValue": v})),
        Type::BOOL => pgtext::boolean(text).map(|v| json!({"booleanValue": v})),
        Type::BYTEA => pgtext::bytea(text)
            .map(|b| json!({"blobValue": base64::engine::general_purpose::STANDARD.encode(b)})),
        _ => None,
    };
    typed.unwrap_or_else(|| json!({"stringValue": text}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_take_the_redshift_variant() {
        assert_eq!(field(&Type::INT8, Some("42")), json!({"longValue": 42}));
        assert_eq!(
            field(&Type::NUMERIC, Some("1.50")),
            json!({"stringValue": "1.50"})
        );
        assert_eq!(
            field(&Type::BOOL, Some("f")),
            json!({"booleanValue": false})
        );
        assert_eq!(
            field(&Type::BYTEA, Some("\\x6869")),
            json!({"blobValue": "aGk="})
        );
        assert_eq!(field(&Type::TEXT, None), json!({"isNull": true}));
        assert_eq!(type_name(&Type::TEXT), "varchar");
    }
}
