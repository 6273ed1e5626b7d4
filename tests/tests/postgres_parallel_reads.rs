//! PostgreSQL read over several connections (`parallel_reads`), through the CLI against the
//! machine's server: the partitions (rows by the hash of their composite key, in one
//! exported snapshot) together give every row once, rejects included, so a run that reads
//! in parallel after one that read over one connection finds every record unchanged, and
//! then sees exactly the rows that changed, came and went.

use retl_tests::{Pg, Project};
use serde_json::Value;

const ROWS: i64 = 5000;

fn retl_yaml(pg: &Pg, parallel: u32) -> String {
    format!(
        "connections:\n  wh: {{ type: postgres, url: \"{}\", parallel_reads: {parallel} }}\n  \
         app: {{ type: sqlite, path: app.db, create_tables: true }}\n",
        pg.url
    )
}

fn sync(pg: &Pg) -> String {
    format!(
        "name: people\nsource: {{ connection: wh, sql: \"select * from {}\" }}\n\
         primary_key: [region, id]\ndestination: {{ connection: app, object: people }}\n\
         mapping: {{ region: region, id: id, name: name, seen: seen }}\nmode: mirror\n",
        pg.table("people")
    )
}

/// The extract manifest of the run `v` reports.
fn manifest(p: &Project, v: &Value) -> Value {
    let run_id = v["run_id"].as_str().expect("a run id");
    let path = p
        .path()
        .join(format!(".retl/objects/extract/{run_id}/manifest.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Distinct readers the run's parts came from: `part-0003-00000.bin` is reader 3's.
fn readers(manifest: &Value) -> usize {
    let names: std::collections::BTreeSet<String> = manifest["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let name = p["key"].as_str()?.rsplit('/').next()?;
            (name.len() == "part-0000-00000.bin".len()).then(|| name[5..9].to_string())
        })
        .collect();
    names.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_reads_give_every_row_once() {
    let pg = Pg::new("pg_parallel").await;
    pg.exec(&format!(
        "CREATE TABLE people (region text, id bigint, name text, seen timestamptz);
         INSERT INTO people SELECT CASE WHEN i % 3 = 0 THEN 'eu' ELSE 'us' END, i, 'n' || i,
           timestamptz '2024-03-01 10:00:00+02' + i * interval '1 second'
           FROM generate_series(1, {ROWS}) AS i;
         INSERT INTO people VALUES (NULL, 0, 'no region', NULL);"
    ))
    .await;
    let p = Project::new();
    p.write("syncs/people.yaml", &sync(&pg));

    p.write("retl.yaml", &retl_yaml(&pg, 4));
    let (code, first) = p.run_json(&["run", "people"]).await;
    assert_eq!(code, 1, "the null-key row is rejected: {first}");
    assert_eq!(
        (&first["creates"], &first["rejected"]),
        (&Value::from(ROWS), &Value::from(1)),
        "{first}"
    );
    assert_eq!(
        readers(&manifest(&p, &first)),
        4,
        "four connections read it"
    );

    p.write("retl.yaml", &retl_yaml(&pg, 1));
    let (_, second) = p.run_json(&["run", "people"]).await;
    assert_eq!(
        (&second["unchanged"], &second["creates"], &second["updates"]),
        (&Value::from(ROWS), &Value::from(0), &Value::from(0)),
        "one connection reads the same records: {second}"
    );
    assert_eq!(readers(&manifest(&p, &second)), 0, "one stream");

    p.write("retl.yaml", &retl_yaml(&pg, 4));
    pg.exec(&format!(
        "UPDATE people SET name = name || '!' WHERE id <= 100;
         DELETE FROM people WHERE id > {ROWS} - 25;
         INSERT INTO people SELECT 'eu', i, 'new', NULL FROM generate_series(100001, 100050) AS i;"
    ))
    .await;
    let (_, third) = p.run_json(&["run", "people"]).await;
    assert_eq!(
        (&third["updates"], &third["creates"], &third["deletes"]),
        (&Value::from(100), &Value::from(50), &Value::from(25)),
        "{third}"
    );
    let db = rusqlite::Connection::open(p.path().join("app.db")).unwrap();
    let count: i64 = db
        .query_row("SELECT count(*) FROM people", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, ROWS - 25 + 50);
}
