//! What each mode promises the destination holds after a run killed and run again, given the
//! model when the killed run read it (`before`) and when the rerun read it (`after`).

use std::collections::BTreeMap;

/// A two-column model or destination: `id → name`.
pub type People = BTreeMap<i64, String>;

/// Checks `dest` against what `mode` promises; `Err` says the first few differences.
pub fn check(mode: &str, before: &People, after: &People, dest: &People) -> Result<(), String> {
    let mut wrong = Vec::new();
    for (id, name) in after {
        let held = dest.get(id);
        let ok = match mode {
            // Append never updates: a record created before the kill keeps its first values.
            "append" => held == Some(name) || (held.is_some() && held == before.get(id)),
            _ => held == Some(name),
        };
        if !ok {
            wrong.push(format!("{id}: model {name:?}, destination {held:?}"));
        }
    }
    for (id, name) in dest {
        if after.contains_key(id) {
            continue;
        }
        // A record that left the model: mirror deletes it; the other modes may keep it, but
        // only as the killed run delivered it.
        let ok = mode != "mirror" && before.get(id) == Some(name);
        if !ok {
            wrong.push(format!(
                "{id}: not in the model, destination holds {name:?}"
            ));
        }
    }
    if wrong.is_empty() {
        return Ok(());
    }
    let n = wrong.len();
    wrong.truncate(5);
    Err(format!(
        "{mode}: {n} record(s) not as the mode promises: {}",
        wrong.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people(rows: &[(i64, &str)]) -> People {
        rows.iter().map(|(i, n)| (*i, n.to_string())).collect()
    }

    #[test]
    fn mirror_holds_exactly_the_model() {
        let before = people(&[(1, "a"), (2, "b")]);
        let after = people(&[(1, "a2"), (3, "c")]);
        assert!(check("mirror", &before, &after, &after).is_ok());
        let stray = people(&[(1, "a2"), (2, "b"), (3, "c")]);
        assert!(check("mirror", &before, &after, &stray).is_err());
        assert!(check("upsert", &before, &after, &stray).is_ok());
    }

    #[test]
    fn append_keeps_first_values_but_never_misses_a_record() {
        let before = people(&[(1, "a")]);
        let after = people(&[(1, "a2"), (2, "b")]);
        assert!(check("append", &before, &after, &people(&[(1, "a"), (2, "b")])).is_ok());
        assert!(check("upsert", &before, &after, &people(&[(1, "a"), (2, "b")])).is_err());
        assert!(check("append", &before, &after, &people(&[(1, "a")])).is_err());
    }
}
