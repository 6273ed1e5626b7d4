//! The `alerts:` block of a sync file: which run outcomes someone should hear about, and where
//! besides the host's own channel (the terminal, the stack's SNS topic) they are sent. The
//! rules are evaluated by `engine/alerts/`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::validate::SpanLike;
use crate::connectors::Problem;

/// Alert rules as written in a sync file (positions kept for messages). Without an `alerts:`
/// block a sync alerts on failure only.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsInput {
    /// Alert when a run fails, is aborted by a safety rule, or its approval request expires.
    /// Default true.
    #[serde(default)]
    pub on_failure: Option<bool>,
    /// Alert when the records the destination (or the plan: null or duplicate keys) rejected
    /// are more than this share (0-100) of the rows the run read.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub rejected_over_pct: Option<Spanned<f64>>,
    /// Alert when the model's row count differs by more than `over_pct` percent from the median
    /// of the last `runs` runs that delivered.
    #[serde(default)]
    pub row_count_change: Option<RowCountChangeInput>,
    /// Alert when no run has delivered (succeeded or partially failed) for this many hours.
    /// On AWS a check every 15 minutes finds it; locally, a run that ends without delivering.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub no_success_for_hours: Option<Spanned<f64>>,
    /// Alert when a run takes longer than this many minutes (time waiting for approval not
    /// counted).
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub runtime_over_minutes: Option<Spanned<f64>>,
    /// Where the URL of a Slack-compatible incoming webhook is read: an environment variable
    /// locally, the secret `<SecretPrefix><name>` on AWS. Alerts are also posted there (sync,
    /// run id, rule and figures only: never a record value).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub slack_webhook_url_env: Option<Spanned<String>>,
}

/// `row_count_change: { over_pct: 50, runs: 5 }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RowCountChangeInput {
    /// Percent the row count may differ from the median before the alert fires (above 0).
    #[schemars(with = "f64")]
    pub over_pct: Spanned<f64>,
    /// Earlier delivered runs the median is taken over (1-100); the rule waits until there
    /// are that many. Default 5.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub runs: Option<Spanned<u32>>,
}

/// A sync's alert rules, validated: what the engine evaluates and config versions record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AlertRules {
    /// Alert on failed, aborted and expired runs.
    #[serde(default = "yes")]
    pub on_failure: bool,
    /// Rejected records above this percent of the rows read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_over_pct: Option<f64>,
    /// Row count off the recent median.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_count_change: Option<RowCountChange>,
    /// Hours without a delivering run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_success_for_hours: Option<f64>,
    /// Minutes a run may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_over_minutes: Option<f64>,
    /// The secret (environment variable locally) holding a Slack-compatible webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_webhook_url_env: Option<String>,
}

/// The row-count rule.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct RowCountChange {
    /// Allowed difference from the median, in percent.
    pub over_pct: f64,
    /// Runs the median is taken over.
    pub runs: u32,
}

/// Runs the row-count median is taken over when `runs` is not given.
pub const DEFAULT_ROW_COUNT_RUNS: u32 = 5;

fn yes() -> bool {
    true
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            on_failure: true,
            rejected_over_pct: None,
            row_count_change: None,
            no_success_for_hours: None,
            runtime_over_minutes: None,
            slack_webhook_url_env: None,
        }
    }
}

impl AlertRules {
    /// Whether these are the rules of a sync without `alerts:` (left out of the definition, so
    /// that syncs written before alerts existed keep their config version).
    pub fn is_default(&self) -> bool {
        *self == AlertRules::default()
    }
}

/// A problem when `value` of `field` is not a positive number (or is above `max`).
fn out_of_range(field: &str, value: f64, max: Option<f64>, hint: &str) -> Option<Problem> {
    let problem = if !(value > 0.0 && value.is_finite()) {
        format!("alerts.{field} is {value}; it must be a number above 0")
    } else if let Some(max) = max.filter(|m| value > *m) {
        format!("alerts.{field} is {value}; it must be at most {max}")
    } else {
        return None;
    };
    Some(Problem::new(problem).hint(hint.to_string()))
}

/// `value` of `field`, with a problem recorded when it is out of range.
fn number<'a>(
    problems: &mut Vec<(&'a dyn SpanLike, Problem)>,
    field: &str,
    value: &'a Spanned<f64>,
    max: Option<f64>,
    hint: &str,
) -> f64 {
    if let Some(p) = out_of_range(field, value.value, max, hint) {
        problems.push((value, p));
    }
    value.value
}

/// The webhook secret's name as written, trimmed, and a problem if it cannot name one.
fn secret_name(text: &str) -> (String, Option<Problem>) {
    let name = text.trim();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.'));
    let problem = (!valid).then(|| {
        Problem::new(format!(
            "alerts.slack_webhook_url_env `{text}` is not a variable or secret name"
        ))
        .hint("name the environment variable (the secret on AWS) that holds the URL, e.g. SLACK_WEBHOOK_URL")
    });
    (name.to_string(), problem)
}

/// The rules of `input`, and each problem at the value it is about.
pub(super) fn resolve(input: &AlertsInput) -> (AlertRules, Vec<(&dyn SpanLike, Problem)>) {
    let mut problems: Vec<(&dyn SpanLike, Problem)> = Vec::new();
    let rejected_over_pct = input.rejected_over_pct.as_ref().map(|p| {
        number(
            &mut problems,
            "rejected_over_pct",
            p,
            Some(100.0),
            "a percentage of the rows the run read, e.g. 5",
        )
    });
    let no_success_for_hours = input.no_success_for_hours.as_ref().map(|h| {
        number(
            &mut problems,
            "no_success_for_hours",
            h,
            Some(8760.0),
            "e.g. 24 to hear of a daily sync that stopped delivering",
        )
    });
    let runtime_over_minutes = input
        .runtime_over_minutes
        .as_ref()
        .map(|m| number(&mut problems, "runtime_over_minutes", m, None, "e.g. 30"));
    let row_count_change = input.row_count_change.as_ref().map(|r| {
        let over_pct = number(
            &mut problems,
            "row_count_change.over_pct",
            &r.over_pct,
            None,
            "e.g. 50 for a model that should neither halve nor grow by half",
        );
        let runs = match &r.runs {
            Some(n) if !(1..=100).contains(&n.value) => {
                let p = Problem::new(format!(
                    "alerts.row_count_change.runs is {}; it must be between 1 and 100",
                    n.value
                ))
                .hint("the number of earlier runs the median is taken over, e.g. 5");
                problems.push((n, p));
                DEFAULT_ROW_COUNT_RUNS
            }
            Some(n) => n.value,
            None => DEFAULT_ROW_COUNT_RUNS,
        };
        RowCountChange { over_pct, runs }
    });
    let slack_webhook_url_env = input.slack_webhook_url_env.as_ref().map(|e| {
        let (name, problem) = secret_name(&e.value);
        if let Some(p) = problem {
            problems.push((e, p));
        }
        name
    });
    let rules = AlertRules {
        on_failure: input.on_failure.unwrap_or(true),
        rejected_over_pct,
        row_count_change,
        no_success_for_hours,
        runtime_over_minutes,
        slack_webhook_url_env,
    };
    (rules, problems)
}
