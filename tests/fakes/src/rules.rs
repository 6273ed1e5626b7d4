//! Per-record validation rules that tests configure on a fake ("reject records whose
//! `email` has no @"). Each fake turns a broken rule into its vendor's documented
//! per-record error shape; `code` and `message` override the vendor's default wording.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::util::scalar_text;

/// The test a [`Rule`] applies to one field.
#[derive(Clone)]
pub enum Check {
    /// The field must be present, non-null and non-empty. Checked only when a record is
    /// created (an update that leaves the field out keeps the stored value).
    Required,
    /// When present and non-null, the field's text must contain this substring.
    Contains(String),
    /// When present and non-null, the field's text must be one of these values.
    OneOf(Vec<String>),
    /// When present and non-null, the field must satisfy this predicate.
    Custom(Arc<dyn Fn(&Value) -> bool + Send + Sync>),
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Required => f.write_str("Required"),
            Check::Contains(s) => f.debug_tuple("Contains").field(s).finish(),
            Check::OneOf(v) => f.debug_tuple("OneOf").field(v).finish(),
            Check::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// A validation rule on one field of a record.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Field (property, attribute) name the rule reads.
    pub field: String,
    /// The test.
    pub check: Check,
    /// Vendor error code to report; `None` uses the fake's default.
    pub code: Option<String>,
    /// Error message to report; `None` uses a message naming the field.
    pub message: Option<String>,
}

impl Rule {
    fn new(field: &str, check: Check) -> Self {
        Self {
            field: field.to_string(),
            check,
            code: None,
            message: None,
        }
    }

    /// `field` is required on create.
    pub fn required(field: &str) -> Self {
        Self::new(field, Check::Required)
    }

    /// `field`, when given, must contain `needle`.
    pub fn contains(field: &str, needle: &str) -> Self {
        Self::new(field, Check::Contains(needle.to_string()))
    }

    /// `field`, when given, must be one of `values`.
    pub fn one_of(field: &str, values: &[&str]) -> Self {
        Self::new(
            field,
            Check::OneOf(values.iter().map(|v| v.to_string()).collect()),
        )
    }

    /// `field`, when given, must satisfy `valid`.
    pub fn custom(field: &str, valid: impl Fn(&Value) -> bool + Send + Sync + 'static) -> Self {
        Self::new(field, Check::Custom(Arc::new(valid)))
    }

    /// Reports this vendor error code.
    pub fn with_code(mut self, code: &str) -> Self {
        self.code = Some(code.to_string());
        self
    }

    /// Reports this message.
    pub fn with_message(mut self, message: &str) -> Self {
        self.message = Some(message.to_string());
        self
    }

    /// The message to report, defaulting to one naming the field and value.
    pub(crate) fn message_for(&self, record: &Map<String, Value>, ci: bool) -> String {
        if let Some(m) = &self.message {
            return m.clone();
        }
        let value = lookup(record, &self.field, ci).map(scalar_text);
        match (&self.check, value) {
            (Check::Required, _) => format!("Required field is missing: {}", self.field),
            (_, Some(v)) => format!("{} is invalid for {}", v, self.field),
            (_, None) => format!("Invalid value for {}", self.field),
        }
    }

    /// The code to report, or `default`.
    pub(crate) fn code_or(&self, default: &str) -> String {
        self.code.clone().unwrap_or_else(|| default.to_string())
    }

    /// Whether `record` breaks the rule; `creating` enables [`Check::Required`], and `ci`
    /// matches the field name case-insensitively (Salesforce field names).
    pub(crate) fn violated(&self, record: &Map<String, Value>, creating: bool, ci: bool) -> bool {
        let value = lookup(record, &self.field, ci);
        match &self.check {
            Check::Required => {
                creating && value.is_none_or(|v| v.is_null() || scalar_text(v).is_empty())
            }
            check => match value {
                None | Some(Value::Null) => false,
                Some(v) => match check {
                    Check::Contains(s) => !scalar_text(v).contains(s.as_str()),
                    Check::OneOf(list) => !list.contains(&scalar_text(v)),
                    Check::Custom(f) => !f(v),
                    Check::Required => false,
                },
            },
        }
    }
}

/// Field `name` of `record`, case-insensitively when `ci`.
pub(crate) fn lookup<'a>(
    record: &'a Map<String, Value>,
    name: &str,
    ci: bool,
) -> Option<&'a Value> {
    if ci {
        record
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    } else {
        record.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks() {
        let rec = json!({"Email": "nobody", "n": 3})
            .as_object()
            .unwrap()
            .clone();
        assert!(Rule::contains("email", "@").violated(&rec, false, true));
        assert!(!Rule::contains("email", "@").violated(&rec, false, false));
        assert!(Rule::required("LastName").violated(&rec, true, true));
        assert!(!Rule::required("LastName").violated(&rec, false, true));
        assert!(Rule::custom("n", |v| v.as_u64() == Some(4)).violated(&rec, false, false));
        assert!(!Rule::one_of("n", &["3"]).violated(&rec, false, false));
    }
}
