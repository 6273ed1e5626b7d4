//! BigQuery's REST row encoding (`rows: [{"f": [{"v": ...}]}]`, every scalar a string) read by
//! the result `schema`, into the value forms of [`crate::connectors::values`]. TIMESTAMP is
//! asked for as integer microseconds (`formatOptions.useInt64Timestamp`).

use base64::Engine;
use serde_json::{Map, Value};

use crate::connectors::values;
use crate::record::Values;

/// One schema field.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    name: String,
    ty: String,
    repeated: bool,
    scale: Option<usize>,
    fields: Vec<Field>,
}

/// The fields of a `schema` object.
pub(crate) fn fields(schema: &Value) -> Vec<Field> {
    schema["fields"]
        .as_array()
        .map(|f| f.iter().map(field).collect())
        .unwrap_or_default()
}

fn field(f: &Value) -> Field {
    Field {
        name: f["name"].as_str().unwrap_or_default().to_string(),
        ty: f["type"].as_str().unwrap_or("STRING").to_ascii_uppercase(),
        repeated: f["mode"].as_str() == Some("REPEATED"),
        scale: f["scale"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| f["scale"].as_u64().map(|s| s as usize)),
        fields: fields(f),
    }
}

/// The names of the fields.
pub(crate) fn names(fields: &[Field]) -> Vec<String> {
    fields.iter().map(|f| f.name.clone()).collect()
}

/// One REST row as retl values.
pub(crate) fn row(fields: &[Field], row: &Value) -> Result<Values, String> {
    record(fields, row)
}

fn record(fields: &[Field], row: &Value) -> Result<Map<String, Value>, String> {
    let cells = row["f"].as_array().ok_or("a row without `f` cells")?;
    if cells.len() != fields.len() {
        return Err(format!(
            "a row has {} cells for {} fields",
            cells.len(),
            fields.len()
        ));
    }
    fields
        .iter()
        .zip(cells)
        .map(|(f, c)| Ok((f.name.clone(), value(f, &c["v"])?)))
        .collect()
}

fn value(f: &Field, v: &Value) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    if f.repeated {
        let items = v
            .as_array()
            .ok_or_else(|| format!("`{}`: a repeated value is not an array", f.name))?;
        let single = Field {
            repeated: false,
            ..f.clone()
        };
        return items
            .iter()
            .map(|item| value(&single, &item["v"]))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if matches!(f.ty.as_str(), "RECORD" | "STRUCT") {
        return record(&f.fields, v).map(Value::Object);
    }
    let text = match v {
        Value::String(s) => s.as_str(),
        other => return Ok(other.clone()),
    };
    scalar(f, text).ok_or_else(|| format!("`{}`: `{text}` is not a {} value", f.name, f.ty))
}

fn scalar(f: &Field, text: &str) -> Option<Value> {
    match f.ty.as_str() {
        "INTEGER" | "INT64" => values::decimal(text),
        "NUMERIC" | "BIGNUMERIC" | "DECIMAL" | "BIGDECIMAL" => {
            values::decimal(&with_scale(text, f.scale))
        }
        "FLOAT" | "FLOAT64" => match text {
            "NaN" => Some(values::float(f64::NAN)),
            "Infinity" => Some(values::float(f64::INFINITY)),
            "-Infinity" => Some(values::float(f64::NEG_INFINITY)),
            _ => text.parse().ok().map(values::float),
        },
        "BOOLEAN" | "BOOL" => match text {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        "BYTES" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .map(|b| values::binary(&b)),
        "DATE" => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(values::date),
        "DATETIME" => datetime(text).map(values::naive_timestamp),
        "TIMESTAMP" => timestamp(text),
        "JSON" => serde_json::from_str(text).ok(),
        _ => Some(Value::String(text.to_string())),
    }
}

/// A decimal padded to the column's declared scale (BigQuery trims trailing zeros).
fn with_scale(text: &str, scale: Option<usize>) -> String {
    let Some(scale) = scale.filter(|s| *s > 0) else {
        return text.to_string();
    };
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() >= scale {
        return text.to_string();
    }
    format!("{int}.{frac:0<scale$}")
}

fn datetime(text: &str) -> Option<chrono::NaiveDateTime> {
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
}

/// An instant from integer microseconds, or from the float seconds of older answers.
fn timestamp(text: &str) -> Option<Value> {
    if let Ok(micros) = text.parse::<i64>() {
        let secs = micros.div_euclid(1_000_000);
        let nanos = (micros.rem_euclid(1_000_000) * 1000) as u32;
        return values::instant_from_epoch(secs, nanos);
    }
    let seconds: f64 = text.parse().ok()?;
    let micros = (seconds * 1e6).round() as i64;
    values::instant_from_epoch(
        micros.div_euclid(1_000_000),
        (micros.rem_euclid(1_000_000) * 1000) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(ty: &str, extra: Value, v: Value) -> Value {
        let mut f = json!({"name": "c", "type": ty});
        if let (Some(o), Some(e)) = (f.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        let fs = fields(&json!({"fields": [f]}));
        row(&fs, &json!({"f": [{"v": v}]})).unwrap()["c"].clone()
    }

    #[test]
    fn every_type_reads_in_the_value_forms() {
        let none = json!({});
        assert_eq!(
            one("INTEGER", none.clone(), json!("9007199254740993")).to_string(),
            "9007199254740993"
        );
        assert_eq!(
            one(
                "BIGNUMERIC",
                json!({"precision": "38", "scale": "10"}),
                json!("12345678901234567890.123456789")
            )
            .to_string(),
            "12345678901234567890.1234567890"
        );
        assert_eq!(
            one("NUMERIC", none.clone(), json!("-0.5")).to_string(),
            "-0.5"
        );
        assert_eq!(one("FLOAT", none.clone(), json!("0.5")).to_string(), "0.5");
        assert_eq!(one("FLOAT", none.clone(), json!("NaN")), json!("NaN"));
        assert_eq!(one("BOOLEAN", none.clone(), json!("true")), json!(true));
        assert_eq!(
            one("BYTES", none.clone(), json!("3q2+7w==")),
            json!("\\xdeadbeef")
        );
        assert_eq!(
            one("DATE", none.clone(), json!("2024-02-29")),
            json!("2024-02-29")
        );
        assert_eq!(
            one(
                "DATETIME",
                none.clone(),
                json!("2024-03-01T10:00:00.500000")
            ),
            json!("2024-03-01T10:00:00.5")
        );
        assert_eq!(
            one("TIMESTAMP", none.clone(), json!("1709280000000000")),
            json!("2024-03-01T08:00:00+00:00")
        );
        assert_eq!(
            one("TIMESTAMP", none.clone(), json!("1.7092800005E9")),
            json!("2024-03-01T08:00:00.5+00:00")
        );
        assert_eq!(
            one("JSON", none.clone(), json!("{\"seats\":3}")),
            json!({"seats": 3})
        );
        assert_eq!(one("STRING", none.clone(), Value::Null), Value::Null);
        assert_eq!(
            one(
                "INTEGER",
                json!({"mode": "REPEATED"}),
                json!([{"v": "1"}, {"v": "2"}])
            ),
            json!([1, 2])
        );
        assert_eq!(
            one(
                "RECORD",
                json!({"fields": [{"name": "a", "type": "STRING"}]}),
                json!({"f": [{"v": "x"}]})
            ),
            json!({"a": "x"})
        );
    }

    #[test]
    fn bad_cells_are_errors() {
        let fs = fields(&json!({"fields": [{"name": "c", "type": "INTEGER"}]}));
        assert!(row(&fs, &json!({"f": [{"v": "x"}]})).is_err());
        assert!(row(&fs, &json!({"f": []})).is_err());
    }
}
