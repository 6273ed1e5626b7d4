//! Validation of EventBridge Scheduler expressions: `cron(...)`, `rate(...)` and `at(...)`.

/// Checks an expression; the error says what is wrong and shows a valid example.
pub fn validate_schedule(expr: &str) -> Result<(), String> {
    let expr = expr.trim();
    if let Some(body) = strip_call(expr, "rate") {
        return validate_rate(body);
    }
    if let Some(body) = strip_call(expr, "cron") {
        return validate_cron(body);
    }
    if let Some(body) = strip_call(expr, "at") {
        return chrono::NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M:%S")
            .map(|_| ())
            .map_err(|_| format!("`at({body})` is not a date-time like at(2026-01-31T09:00:00)"));
    }
    Err(format!(
        "`{expr}` is not a schedule expression; write cron(0 * * * ? *) or rate(1 hour)"
    ))
}

fn strip_call<'a>(expr: &'a str, name: &str) -> Option<&'a str> {
    expr.strip_prefix(name)?
        .trim_start()
        .strip_prefix('(')?
        .strip_suffix(')')
        .map(str::trim)
}

fn validate_rate(body: &str) -> Result<(), String> {
    let mut parts = body.split_whitespace();
    let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "`rate({body})` needs a value and a unit, like rate(5 minutes)"
        ));
    };
    let n: u64 = value
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("rate value `{value}` must be a positive whole number"))?;
    let singular = ["minute", "hour", "day"];
    let plural = ["minutes", "hours", "days"];
    let ok = if n == 1 {
        singular.contains(&unit)
    } else {
        plural.contains(&unit)
    };
    if ok {
        Ok(())
    } else if n == 1 {
        Err(format!(
            "rate unit `{unit}` must be minute, hour or day when the value is 1"
        ))
    } else {
        Err(format!(
            "rate unit `{unit}` must be minutes, hours or days when the value is {n}"
        ))
    }
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn validate_cron(body: &str) -> Result<(), String> {
    let fields: Vec<&str> = body.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!(
            "cron needs 6 fields (minutes hours day-of-month month day-of-week year), got {}: \
             write cron(0 * * * ? *) for hourly",
            fields.len()
        ));
    }
    let names = [
        "minutes",
        "hours",
        "day-of-month",
        "month",
        "day-of-week",
        "year",
    ];
    let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (1, 7), (1970, 2199)];
    for (i, field) in fields.iter().enumerate() {
        check_field(field, names[i], ranges[i], i)?;
    }
    let (dom, dow) = (fields[2], fields[4]);
    if (dom == "?") == (dow == "?") {
        return Err(
            "cron needs `?` in exactly one of day-of-month and day-of-week, like cron(0 9 * * ? *)"
                .into(),
        );
    }
    Ok(())
}

fn check_field(field: &str, name: &str, (lo, hi): (u32, u32), index: usize) -> Result<(), String> {
    let bad = || format!("cron {name} field `{field}` is not valid (allowed values {lo}-{hi})");
    if field == "?" {
        return if index == 2 || index == 4 {
            Ok(())
        } else {
            Err(format!(
                "`?` is only allowed in day-of-month or day-of-week, not in {name}"
            ))
        };
    }
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if let Some(s) = step {
            s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(bad)?;
        }
        if range == "*" {
            continue;
        }
        if index == 2 && (range == "L" || range == "LW" || range.ends_with('W')) {
            let digits = range.trim_end_matches('W');
            if digits == "L" || digits.is_empty() || value(digits, index).is_some() {
                continue;
            }
            return Err(bad());
        }
        if index == 4 {
            if let Some((d, n)) = range.split_once('#') {
                value(d, index).ok_or_else(bad)?;
                n.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=5).contains(n))
                    .ok_or_else(bad)?;
                continue;
            }
            if range == "L"
                || range.ends_with('L') && value(&range[..range.len() - 1], index).is_some()
            {
                continue;
            }
        }
        let (a, b) = match range.split_once('-') {
            Some((a, b)) => (a, Some(b)),
            None => (range, None),
        };
        let a = value(a, index).ok_or_else(bad)?;
        if !(lo..=hi).contains(&a) {
            return Err(bad());
        }
        if let Some(b) = b {
            let b = value(b, index).ok_or_else(bad)?;
            if !(lo..=hi).contains(&b) {
                return Err(bad());
            }
        }
    }
    Ok(())
}

fn value(s: &str, index: usize) -> Option<u32> {
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    let upper = s.to_ascii_uppercase();
    match index {
        3 => MONTHS
            .iter()
            .position(|m| *m == upper)
            .map(|p| p as u32 + 1),
        4 => DAYS.iter().position(|d| *d == upper).map(|p| p as u32 + 1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::validate_schedule;

    #[test]
    fn accepts_valid_expressions() {
        for e in [
            "cron(0 * * * ? *)",
            "cron(15 10 ? * MON-FRI *)",
            "cron(0/15 * * * ? *)",
            "cron(0 8 L * ? *)",
            "cron(0 8 ? * 6#3 *)",
            "rate(1 hour)",
            "rate(5 minutes)",
            "at(2026-12-01T09:00:00)",
        ] {
            assert!(
                validate_schedule(e).is_ok(),
                "{e}: {:?}",
                validate_schedule(e)
            );
        }
    }

    #[test]
    fn rejects_invalid_expressions() {
        for e in [
            "cron(0 * * * *)",
            "cron(0 * * * * *)",
            "cron(61 * * * ? *)",
            "cron(0 * ? * ? *)",
            "rate(1 hours)",
            "rate(0 minutes)",
            "every hour",
        ] {
            assert!(validate_schedule(e).is_err(), "{e} should be rejected");
        }
    }
}
