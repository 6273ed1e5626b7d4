//! Which function a process serves, from `RETL_FUNCTION` (the template sets it per function).

use std::fmt;
use std::str::FromStr;

/// The environment variable naming the function.
pub const FUNCTION_VAR: &str = "RETL_FUNCTION";

/// The functions of the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// Starts runs.
    Trigger,
    /// Streams the model into part files.
    Extract,
    /// Plans shards and summarizes.
    Plan,
    /// Approval requests and decisions.
    Approval,
    /// Sends apply units.
    Apply,
    /// Records the end state.
    Finalize,
    /// dbt Cloud's webhook (a function URL).
    DbtWebhook,
}

const ALL: [(&str, Function); 7] = [
    ("trigger", Function::Trigger),
    ("extract", Function::Extract),
    ("plan", Function::Plan),
    ("approval", Function::Approval),
    ("apply", Function::Apply),
    ("finalize", Function::Finalize),
    ("dbt_webhook", Function::DbtWebhook),
];

/// `RETL_FUNCTION` is missing or names no function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFunction(Option<String>);

impl fmt::Display for UnknownFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = ALL.iter().map(|(n, _)| *n).collect();
        match &self.0 {
            None => write!(f, "{FUNCTION_VAR} is not set")?,
            Some(v) => write!(f, "{FUNCTION_VAR}={v:?} names no function")?,
        }
        write!(
            f,
            "; it must be one of {} (template.yaml sets it per function)",
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownFunction {}

impl FromStr for Function {
    type Err = UnknownFunction;

    fn from_str(s: &str) -> Result<Self, UnknownFunction> {
        ALL.iter()
            .find(|(name, _)| *name == s)
            .map(|(_, f)| *f)
            .ok_or_else(|| UnknownFunction(Some(s.to_string())))
    }
}

impl Function {
    /// The function `value` (of `RETL_FUNCTION`) names.
    pub fn from_var(value: Option<&str>) -> Result<Self, UnknownFunction> {
        value.ok_or(UnknownFunction(None))?.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_function_is_named_as_the_template_names_it() {
        for (name, function) in ALL {
            assert_eq!(Function::from_var(Some(name)), Ok(function));
        }
    }

    #[test]
    fn a_missing_or_unknown_name_says_what_is_expected() {
        let missing = Function::from_var(None).unwrap_err().to_string();
        assert!(missing.starts_with("RETL_FUNCTION is not set"), "{missing}");
        let unknown = Function::from_var(Some("Trigger")).unwrap_err().to_string();
        assert!(
            unknown.contains("\"Trigger\" names no function"),
            "{unknown}"
        );
        assert!(
            unknown.contains("trigger, extract, plan, approval, apply, finalize, dbt_webhook"),
            "{unknown}"
        );
    }
}
