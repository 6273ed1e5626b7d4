//! Random-kill trials: `retl run` (the real binary) is SIGKILLed at a random point (after a
//! random delay, or once the destination holds a random number of records), the model
//! optionally changes (a row added, one changed, one removed), and `retl run` runs again. The
//! destination must then hold what the mode promises, with no record created twice.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::ledger::Ledger;
use super::promise::{self, People};
use super::trials::{Tags, Trial, TrialResult};
use crate::ensure;
use crate::fixtures::set_model;
use crate::http::WebhookReceiver;
use crate::{Pg, Project};

/// Where a kill trial delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A PostgreSQL table (listed and looked up; a trigger records every real insert).
    Postgres,
    /// A recording webhook receiver (known only through the key set; creates counted by
    /// event id).
    Webhook,
}

/// The modes the kill trials cover.
pub const MODES: [&str; 3] = ["upsert", "mirror", "append"];

/// How long a run may take before the trial gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The destination of one trial, and how to read it back.
enum Dest {
    Postgres(Pg),
    Webhook(WebhookReceiver),
}

impl Dest {
    async fn start(target: Target, trial: u64) -> Dest {
        match target {
            Target::Postgres => {
                let pg = Pg::new(&format!("campaign_kill_{trial}")).await;
                let created = pg.table("created");
                // Every row slows its statement a little (so a run can be killed mid-apply),
                // and every row really inserted is recorded: an id recorded twice is a
                // duplicate create, whatever the primary key later made of it.
                pg.exec(&format!(
                    "CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL);
                     CREATE TABLE created (id integer NOT NULL);
                     CREATE FUNCTION slow_row() RETURNS trigger AS $$
                       BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$ LANGUAGE plpgsql;
                     CREATE FUNCTION record_insert() RETURNS trigger AS $$
                       BEGIN INSERT INTO {created} VALUES (NEW.id); RETURN NEW; END $$ LANGUAGE plpgsql;
                     CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON people
                       FOR EACH ROW EXECUTE FUNCTION slow_row();
                     CREATE TRIGGER audit AFTER INSERT ON people
                       FOR EACH ROW EXECUTE FUNCTION record_insert();"
                ))
                .await;
                Dest::Postgres(pg)
            }
            Target::Webhook => {
                let hook = WebhookReceiver::start().await;
                hook.delay(Duration::from_millis(25));
                Dest::Webhook(hook)
            }
        }
    }

    fn connection(&self) -> String {
        match self {
            Dest::Postgres(pg) => format!(
                "{{ type: postgres, url: \"{}\", delivery: {{ batch_size: 20, concurrency: 2 }} }}",
                pg.url
            ),
            Dest::Webhook(hook) => format!(
                "{{ type: webhook, url: \"{}\", delivery: {{ batch_size: 10, concurrency: 2 }} }}",
                hook.url
            ),
        }
    }

    fn object(&self) -> String {
        match self {
            Dest::Postgres(pg) => pg.table("people"),
            Dest::Webhook(_) => "people".into(),
        }
    }

    /// Records the destination holds now (what the kill point watches).
    async fn delivered(&self) -> u64 {
        match self {
            Dest::Postgres(pg) => pg.count("SELECT count(*) FROM people").await as u64,
            Dest::Webhook(hook) => hook.accepted().len() as u64,
        }
    }

    /// The destination's records, and the keys created more than once.
    async fn holds(&self) -> (People, Vec<String>) {
        match self {
            Dest::Postgres(pg) => {
                let rows = pg.rows("SELECT id, name FROM people").await;
                let people = rows
                    .iter()
                    .map(|r| {
                        (
                            r["id"].as_i64().unwrap_or_default(),
                            r["name"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
                let twice = pg
                    .rows("SELECT id FROM created GROUP BY id HAVING count(*) > 1")
                    .await
                    .iter()
                    .map(|r| r["id"].to_string())
                    .collect();
                (people, twice)
            }
            Dest::Webhook(hook) => {
                let ledger = Ledger::replay(&hook.received());
                let mut twice: Vec<String> = ledger.duplicate_creates.clone();
                twice.extend(ledger.split_creates().into_iter().cloned());
                twice.sort();
                twice.dedup();
                (ledger.people(), twice)
            }
        }
    }
}

fn write_model(p: &Project, model: &People) {
    let rows: Vec<(i64, &str)> = model.iter().map(|(i, n)| (*i, n.as_str())).collect();
    set_model(p, &rows);
}

/// A change of the model between the kill and the rerun: one or two rows added, changed and
/// removed, chosen by the trial's seed.
fn change(trial: &mut Trial, model: &People) -> People {
    let mut next = model.clone();
    let ids: Vec<i64> = model.keys().copied().collect();
    let top = ids.last().copied().unwrap_or(0);
    for n in 0..trial.rng.range(1, 3) {
        let id = top + 1 + n as i64;
        next.insert(id, format!("person {id}"));
    }
    for _ in 0..trial.rng.range(1, 3) {
        let id = *trial.rng.pick(&ids);
        next.insert(id, format!("person {id} changed"));
    }
    for _ in 0..trial.rng.range(1, 3) {
        next.remove(trial.rng.pick(&ids));
    }
    next
}

/// Where the killed run is stopped.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// This long after it started (anywhere: extract, plan or apply).
    After(Duration),
    /// Once the destination holds this many records (mid-apply).
    Delivered(u64),
}

/// Starts `retl run`, SIGKILLs it at `at`; true if it was killed before it ended on its own.
async fn run_and_kill(p: &Project, dest: &Dest, at: KillAt) -> Result<bool, String> {
    let mut child = p
        .command(&["run", "people"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("retl did not start: {e}"))?;
    let started = Instant::now();
    loop {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            return Ok(false);
        }
        let due = match at {
            KillAt::After(d) => started.elapsed() >= d,
            KillAt::Delivered(n) => dest.delivered().await >= n,
        };
        if due {
            // `Child::kill` is SIGKILL on Unix: no cleanup, no lock release.
            child.kill().map_err(|e| format!("kill -9: {e}"))?;
            child.wait().map_err(|e| e.to_string())?;
            return Ok(true);
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the run neither ended nor reached {at:?}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One kill trial: `target`, `mode`, and whether the model changes between kill and rerun.
pub async fn trial(mut trial: Trial, target: Target, mode: &str, changes: bool) -> TrialResult {
    let dest = Dest::start(target, trial.index).await;
    let p = Project::new();
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  dest: {}\n",
            dest.connection()
        ),
    );
    p.write(
        "syncs/people.yaml",
        &format!(
            "name: people\nsource: {{ connection: warehouse, sql: \"select id, name from model\" }}\n\
             primary_key: id\ndestination: {{ connection: dest, object: {} }}\n\
             mapping: {{ id: id, name: name }}\nmode: {mode}\n",
            dest.object()
        ),
    );
    let rows = trial.rng.range(120, 300) as i64;
    let before: People = (1..=rows).map(|i| (i, format!("person {i}"))).collect();
    write_model(&p, &before);

    let at = if trial.rng.chance(35) {
        KillAt::After(Duration::from_millis(trial.rng.range(50, 1500)))
    } else {
        KillAt::Delivered(trial.rng.range(1, rows as u64))
    };
    let what = format!("{target:?} {mode}, {rows} rows, kill at {at:?}, model change: {changes}");
    let killed = run_and_kill(&p, &dest, at)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let at_kill = dest.delivered().await;
    let after = if changes {
        change(&mut trial, &before)
    } else {
        before.clone()
    };
    write_model(&p, &after);

    let (code, v) = p.run_json(&["run", "people"]).await;
    ensure!(
        code == 0 && v["status"] == "succeeded",
        "{what}: the rerun did not succeed (exit {code}): {v}"
    );
    let (held, twice) = dest.holds().await;
    promise::check(mode, &before, &after, &held).map_err(|e| format!("{what}: {e}"))?;
    ensure!(
        twice.is_empty(),
        "{what}: {} record(s) created twice: {:?}",
        twice.len(),
        &twice[..twice.len().min(10)]
    );
    // The key set now matches the destination: nothing left to do.
    let (code, v) = p.run_json(&["run", "people"]).await;
    let writes: BTreeMap<&str, i64> = ["creates", "updates", "deletes"]
        .into_iter()
        .map(|k| (k, v[k].as_i64().unwrap_or(-1)))
        .collect();
    ensure!(
        code == 0 && writes.values().all(|n| *n == 0),
        "{what}: a third run still writes (exit {code}): {v}"
    );
    let rows = rows as u64;
    let point = match (killed, at_kill) {
        (false, _) => "ended before the kill",
        (true, 0) => "killed before delivery",
        (true, n) if n >= rows => "killed after delivery",
        (true, _) => "killed mid-apply",
    };
    let mut tags: Tags = vec![point.into()];
    if changes {
        tags.push("model changed".into());
    }
    Ok(tags)
}
