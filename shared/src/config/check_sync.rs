//! The checks of one sync file: every problem found, each at the position of the value it
//! is about, with what to do.

use std::collections::{BTreeMap, BTreeSet};

use super::alerts::{resolve as resolve_alerts, AlertRules};
use super::diagnostics::{did_you_mean, Diagnostic};
use super::model::{ConnectionConfig, DeleteScope, ProjectFile, SafetyConfig, SyncConfig};
use super::schedule::validate_schedule;
use super::validate::{valid_name, SourceText, SpanLike};
use super::{Incremental, SyncDef, DEFAULT_SHARDS};
use crate::connectors::Problem;
use crate::modes::{supported_modes, unsupported_reason};

/// Checks one sync against the project, collecting diagnostics.
pub(super) struct SyncChecker<'a> {
    project: &'a ProjectFile,
    src: &'a SourceText,
    diags: &'a mut Vec<Diagnostic>,
}

impl<'a> SyncChecker<'a> {
    /// A checker writing its findings into `diags`.
    pub fn new(
        project: &'a ProjectFile,
        src: &'a SourceText,
        diags: &'a mut Vec<Diagnostic>,
    ) -> Self {
        SyncChecker {
            project,
            src,
            diags,
        }
    }

    fn at(&self, span: &dyn SpanLike, msg: impl Into<String>) -> Diagnostic {
        let (l, c) = span.pos();
        Diagnostic::at(&self.src.file, &self.src.text, l, c, msg)
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn push_problem(&mut self, span: &dyn SpanLike, problem: Problem) {
        let d = self.at(span, problem.message);
        self.push(match problem.hint {
            Some(h) => d.hint(h),
            None => d,
        });
    }

    /// Every check; the definition (meaningful only when no diagnostic was added).
    pub fn check(mut self, sync: &SyncConfig, sync_names: &BTreeSet<&str>) -> Option<SyncDef> {
        self.name(sync);
        self.source(sync);
        let incremental = self.incremental(sync);
        self.destination(sync);
        let (primary_key, key_fields) = self.mapping_and_key(sync);
        let safety = self.safety(sync);
        let alerts = self.alerts(sync);
        self.schedule_and_triggers(sync, sync_names);
        let shards = self.shards(sync);
        Some(SyncDef {
            name: sync.name.value.clone(),
            description: sync.description.clone(),
            source_connection: sync.source.connection.value.clone(),
            sql: sync.source.sql.value.clone(),
            incremental,
            primary_key,
            key_fields,
            destination_connection: sync.destination.connection.value.clone(),
            object: sync.destination.object.value.clone(),
            mapping: sync
                .mapping
                .value
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
            mode: sync.mode.value,
            delete_scope: sync.delete_scope,
            safety,
            alerts,
            schedule: sync.schedule.as_ref().map(|s| s.value.clone()),
            triggers: sync.triggers.iter().map(|t| t.value.clone()).collect(),
            shards,
        })
    }

    fn name(&mut self, sync: &SyncConfig) {
        let name = &sync.name.value;
        if !valid_name(name) {
            let d = self
                .at(
                    &sync.name,
                    format!("sync name `{name}` must be 1-64 letters, digits, `-` or `_`"),
                )
                .hint("names are used in S3 keys, DynamoDB items and schedule names");
            self.push(d);
        }
    }

    /// The connection a sync names, or a diagnostic saying it is not defined.
    fn connection(&mut self, span: &serde_saphyr::Spanned<String>) -> Option<&'a ConnectionConfig> {
        let project = self.project;
        let found = project.connections.get(&span.value).map(|c| &c.value);
        if found.is_none() {
            let names: Vec<&str> = project.connections.keys().map(String::as_str).collect();
            let d = self.at(
                span,
                format!("connection `{}` is not defined in retl.yaml", span.value),
            );
            let d = match did_you_mean(&span.value, names.iter().copied()) {
                Some(s) => d.hint(format!("did you mean `{s}`?")),
                None if names.is_empty() => {
                    d.hint("define it under `connections:` in retl.yaml (defined: none)")
                }
                None => d.hint(format!(
                    "define it under `connections:` in retl.yaml (defined: {})",
                    names.join(", ")
                )),
            };
            self.push(d);
        }
        found
    }

    fn source(&mut self, sync: &SyncConfig) {
        if let Some(c) = self.connection(&sync.source.connection) {
            if c.as_source().is_none() {
                let sources: Vec<&str> = self
                    .project
                    .connections
                    .iter()
                    .filter(|(_, c)| c.value.as_source().is_some())
                    .map(|(n, _)| n.as_str())
                    .collect();
                let hint = match sources.as_slice() {
                    [] => "define a warehouse connection (e.g. type: postgres) in retl.yaml and use it as the source".to_string(),
                    names => format!("connections that can run model SQL: {}", names.join(", ")),
                };
                let d = self.at(
                    &sync.source.connection,
                    format!(
                        "connection `{}` is a {} destination and cannot run model SQL",
                        sync.source.connection.value,
                        c.type_name()
                    ),
                );
                self.push(d.hint(hint));
            }
        }
        if sync.source.sql.value.trim().is_empty() {
            let d = self
                .at(&sync.source.sql, "the model SQL is empty")
                .hint("write the SELECT that returns the model rows");
            self.push(d);
        }
    }

    /// An incremental model: a mode that never deletes, a column, a lookback duration.
    fn incremental(&mut self, sync: &SyncConfig) -> Option<Incremental> {
        let input = sync.source.incremental.as_ref()?;
        let mode = sync.mode.value;
        if !mode.allows_incremental() {
            let d = self
                .at(
                    &sync.mode,
                    format!("mode `{mode}` cannot read an incremental model: it deletes records, and a row the watermark filter leaves out is not a deletion"),
                )
                .hint("remove `source.incremental`, or use upsert, update, insert or append");
            self.push(d);
        }
        if input.column.value.trim().is_empty() {
            let d = self
                .at(&input.column, "the incremental column is empty")
                .hint("name the model's high-watermark column, e.g. updated_at");
            self.push(d);
        }
        let lookback_seconds = match &input.lookback {
            None => 0,
            Some(l) => match parse_lookback(&l.value) {
                Ok(s) => s,
                Err(message) => {
                    let d = self
                        .at(l, message)
                        .hint("write a number and a unit: 30s, 10m, 2h or 1d");
                    self.push(d);
                    0
                }
            },
        };
        Some(Incremental {
            column: input.column.value.clone(),
            lookback_seconds,
        })
    }

    /// The destination side: the connection can be one, supports the mode, the object fits.
    fn destination(&mut self, sync: &SyncConfig) {
        if sync.destination.object.value.trim().is_empty() {
            let d = self.at(&sync.destination.object, "the destination object is empty");
            self.push(d);
        }
        let Some(c) = self.connection(&sync.destination.connection) else {
            return;
        };
        let name = &sync.destination.connection.value;
        let Some(d) = c.as_destination() else {
            let diag = self
                .at(
                    &sync.destination.connection,
                    format!(
                        "connection `{name}` is a {} source and cannot be a destination",
                        c.type_name()
                    ),
                )
                .hint("use a connection of a destination type as the destination");
            self.push(diag);
            return;
        };
        let mode = sync.mode.value;
        let caps = d.capabilities();
        if let Some(why) = unsupported_reason(mode, &caps) {
            let list: Vec<&str> = supported_modes(&caps).iter().map(|m| m.as_str()).collect();
            let diag = self
                .at(
                    &sync.mode,
                    format!(
                        "mode `{mode}` is not supported by the {} destination `{name}`: {why}",
                        c.type_name()
                    ),
                )
                .hint(format!("use one of: {}", list.join(", ")));
            self.push(diag);
        }
        if let Some(problem) = d.check_object(&sync.destination.object.value) {
            self.push_problem(&sync.destination.object, problem);
        }
    }

    /// The mapping's names, and the primary key's columns with the fields that hold them.
    fn mapping_and_key(&mut self, sync: &SyncConfig) -> (Vec<String>, Vec<String>) {
        let mapping = &sync.mapping.value;
        if mapping.is_empty() {
            let d = self
                .at(&sync.mapping, "the mapping is empty")
                .hint("map at least the key: `id: id`");
            self.push(d);
        }
        for (field, col) in mapping {
            if field.trim().is_empty() || col.value.trim().is_empty() {
                let d = self.at(
                    col,
                    format!("mapping `{field}: {}` has an empty name", col.value),
                );
                self.push(d);
            }
        }
        let pk = sync.primary_key.value.columns();
        if pk.is_empty() {
            let d = self
                .at(&sync.primary_key, "primary_key is empty")
                .hint("name the column(s) that identify a record");
            self.push(d);
        }
        let mut seen = BTreeSet::new();
        let mut key_fields = Vec::new();
        for col in &pk {
            if !seen.insert(col) {
                let d = self.at(
                    &sync.primary_key,
                    format!("primary key column `{col}` is listed twice"),
                );
                self.push(d);
                continue;
            }
            let mapped: Vec<&String> = mapping
                .iter()
                .filter(|(_, c)| &c.value == col)
                .map(|(f, _)| f)
                .collect();
            match mapped.iter().find(|f| *f == &col).or(mapped.first()) {
                Some(f) => key_fields.push((*f).clone()),
                None => {
                    let d = self
                        .at(
                            &sync.primary_key,
                            format!(
                                "primary key column `{col}` is not mapped to a destination field"
                            ),
                        )
                        .hint(format!(
                            "add `{col}: {col}` under mapping (destination field: source column)"
                        ));
                    self.push(d);
                }
            }
        }
        (pk, key_fields)
    }

    /// The delete scope and safety rules, each checked at its own line.
    fn safety(&mut self, sync: &SyncConfig) -> SafetyConfig {
        let mode = sync.mode.value;
        if sync.delete_scope == DeleteScope::Synced && !mode.deletes_missing() {
            let d = self
                .at(
                    &sync.mode,
                    format!("delete_scope: synced has no effect in mode `{mode}`"),
                )
                .hint("remove delete_scope, or use mode mirror or delete_only");
            self.push(d);
        }
        let mut safety = SafetyConfig {
            max_deletes: sync.safety.max_deletes,
            ..SafetyConfig::default()
        };
        if let Some(t) = &sync.safety.delete_threshold_pct {
            if !(0.0..=100.0).contains(&t.value) {
                let d = self
                    .at(
                        t,
                        format!(
                            "safety.delete_threshold_pct is {}; it must be between 0 and 100",
                            t.value
                        ),
                    )
                    .hint("it is a percentage of the existing records, e.g. 50");
                self.push(d);
            }
            safety.delete_threshold_pct = t.value;
        }
        if let Some(h) = &sync.safety.approval_timeout_hours {
            if !(h.value > 0.0 && h.value <= 8760.0) {
                let d = self
                    .at(
                        h,
                        format!(
                            "safety.approval_timeout_hours is {}; it must be more than 0 and at most 8760 (one year)",
                            h.value
                        ),
                    )
                    .hint("e.g. 24 for a day");
                self.push(d);
            }
            safety.approval_timeout_hours = h.value;
        }
        safety
    }

    /// The alert rules, each problem at its own value.
    fn alerts(&mut self, sync: &SyncConfig) -> AlertRules {
        let (rules, problems) = resolve_alerts(&sync.alerts);
        for (span, problem) in problems {
            self.push_problem(span, problem);
        }
        rules
    }

    fn schedule_and_triggers(&mut self, sync: &SyncConfig, sync_names: &BTreeSet<&str>) {
        if let Some(s) = &sync.schedule {
            if let Err(e) = validate_schedule(&s.value) {
                let d = self.at(s, e).hint(
                    "see https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html",
                );
                self.push(d);
            }
        }
        for spanned in &sync.triggers {
            let t = &spanned.value;
            let kinds = usize::from(t.after_sync.is_some())
                + usize::from(t.event_pattern.is_some())
                + usize::from(t.dbt_cloud_job.is_some());
            let problem = match (&t.after_sync, &t.event_pattern) {
                _ if kinds == 0 => Some(Problem::new(
                    "a trigger needs `after_sync`, `event_pattern` or `dbt_cloud_job`",
                )),
                _ if kinds > 1 => Some(
                    Problem::new(
                        "a trigger has one kind: `after_sync`, `event_pattern` or `dbt_cloud_job`",
                    )
                    .hint("write each as its own list item under `triggers:`"),
                ),
                _ if t.dbt_cloud_job == Some(0) => Some(
                    Problem::new("trigger dbt_cloud_job is 0; dbt Cloud job ids start at 1")
                        .hint("copy the id from the job's URL: .../jobs/<id>"),
                ),
                (_, Some(p)) if !p.is_object() => Some(Problem::new(
                    "trigger event_pattern must be a mapping (an EventBridge pattern)",
                )),
                (Some(after), _) if after == &sync.name.value => Some(
                    Problem::new(format!("sync `{after}` cannot trigger itself (after_sync)"))
                        .hint("remove the trigger, or name another sync"),
                ),
                (Some(after), _) if !sync_names.contains(after.as_str()) => {
                    let p = Problem::new(format!("trigger after_sync `{after}` names no sync"));
                    Some(match did_you_mean(after, sync_names.iter().copied()) {
                        Some(s) => p.hint(format!("did you mean `{s}`?")),
                        None => p,
                    })
                }
                _ => None,
            };
            if let Some(p) = problem {
                self.push_problem(spanned, p);
            }
        }
    }

    fn shards(&mut self, sync: &SyncConfig) -> u32 {
        match &sync.shards {
            Some(s) if !(1..=4096).contains(&s.value) => {
                let d = self.at(
                    s,
                    format!("shards is {}; it must be between 1 and 4096", s.value),
                );
                self.push(d);
                DEFAULT_SHARDS
            }
            Some(s) => s.value,
            None => DEFAULT_SHARDS,
        }
    }
}

/// `after_sync` chains that come back to where they started would trigger each other
/// forever: each sync on such a cycle gets a diagnostic naming it.
pub(super) fn check_trigger_cycles(
    syncs: &[(SyncConfig, SourceText)],
    diags: &mut Vec<Diagnostic>,
) {
    let after: BTreeMap<&str, Vec<&str>> = syncs
        .iter()
        .map(|(s, _)| {
            let deps = s
                .triggers
                .iter()
                .filter_map(|t| t.value.after_sync.as_deref())
                .filter(|a| *a != s.name.value)
                .collect();
            (s.name.value.as_str(), deps)
        })
        .collect();
    for (sync, src) in syncs {
        let start = sync.name.value.as_str();
        if let Some(path) = cycle_from(start, &after) {
            // At the trigger that enters the cycle (`path[1]` is the sync it follows).
            let trigger = sync
                .triggers
                .iter()
                .find(|t| t.value.after_sync.as_deref() == path.get(1).copied());
            let message = format!("after_sync triggers form a cycle: {}", path.join(" -> "));
            let diagnostic = match trigger {
                Some(t) => Diagnostic::at_span(&src.file, &src.text, t, message),
                None => Diagnostic::at_span(&src.file, &src.text, &sync.name, message),
            };
            diags.push(
                diagnostic.hint(
                    "each sync in the cycle would start the next forever; remove one trigger",
                ),
            );
        }
    }
}

/// A path of `after_sync` edges from `start` back to it, if there is one.
fn cycle_from<'a>(start: &'a str, after: &BTreeMap<&'a str, Vec<&'a str>>) -> Option<Vec<&'a str>> {
    // Depth-first over the syncs that trigger after `start`'s predecessors.
    let mut stack: Vec<Vec<&str>> = vec![vec![start]];
    let mut visited = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = *path.last()?;
        for next in after.get(last).into_iter().flatten() {
            if *next == start {
                let mut cycle = path.clone();
                cycle.push(start);
                return Some(cycle);
            }
            if visited.insert(*next) {
                let mut longer = path.clone();
                longer.push(next);
                stack.push(longer);
            }
        }
    }
    None
}

/// Seconds of a lookback written as `30s`, `10m`, `2h` or `1d`.
fn parse_lookback(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("lookback `{text}` is not a duration"))?;
    let unit_seconds = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "" => return Err(format!("lookback `{text}` has no unit")),
        other => return Err(format!("lookback `{text}`: unknown unit `{other}`")),
    };
    n.checked_mul(unit_seconds)
        .ok_or_else(|| format!("lookback `{text}` is too long"))
}

#[cfg(test)]
mod lookback_tests {
    use super::parse_lookback;

    #[test]
    fn lookbacks_parse_with_their_unit() {
        assert_eq!(parse_lookback("30s"), Ok(30));
        assert_eq!(parse_lookback("10m"), Ok(600));
        assert_eq!(parse_lookback("2h"), Ok(7200));
        assert_eq!(parse_lookback("1d"), Ok(86_400));
        assert!(parse_lookback("10").unwrap_err().contains("no unit"));
        assert!(parse_lookback("10w")
            .unwrap_err()
            .contains("unknown unit `w`"));
        assert!(parse_lookback("m").unwrap_err().contains("not a duration"));
    }
}
