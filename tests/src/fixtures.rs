//! The recurring fixture: a `people` model in an SQLite warehouse synced into a `people`
//! table of a PostgreSQL test schema.

use serde_json::Value;

use crate::{Pg, Project};

/// retl.yaml with the SQLite warehouse and the test's PostgreSQL as `app_db`.
pub fn project_yaml(pg: &Pg) -> String {
    format!(
        "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  app_db: {{ type: postgres, url: \"{}\" }}\n",
        pg.url
    )
}

/// The `people` sync file.
pub fn people_sync(pg: &Pg, mode: &str, extra: &str) -> String {
    format!(
        "name: people\nsource: {{ connection: warehouse, sql: \"select id, name from model\" }}\n\
         primary_key: id\ndestination: {{ connection: app_db, object: {} }}\n\
         mapping: {{ id: id, name: name }}\nmode: {mode}\n{extra}",
        pg.table("people")
    )
}

/// A project syncing `model` (SQLite) into `people` (PostgreSQL) with `mode`, the
/// destination holding `dest` first.
pub async fn people_project(
    test: &str,
    mode: &str,
    dest: &[(i64, &str)],
    extra: &str,
) -> (Project, Pg) {
    let pg = Pg::new(test).await;
    pg.exec("CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL)")
        .await;
    for (id, name) in dest {
        pg.exec(&format!("INSERT INTO people VALUES ({id}, '{name}')"))
            .await;
    }
    let p = Project::new();
    p.write("retl.yaml", &project_yaml(&pg));
    p.write("syncs/people.yaml", &people_sync(&pg, mode, extra));
    (p, pg)
}

/// Replaces the model's rows.
pub fn set_model(p: &Project, rows: &[(i64, &str)]) {
    let mut sql =
        String::from("DROP TABLE IF EXISTS model; CREATE TABLE model (id INTEGER, name TEXT);");
    for (id, name) in rows {
        sql.push_str(&format!(
            "INSERT INTO model VALUES ({id}, '{}');",
            name.replace('\'', "''")
        ));
    }
    p.warehouse(&sql);
}

/// The destination table's rows, ordered by id.
pub async fn people(pg: &Pg) -> Value {
    Value::Array(pg.rows("SELECT id, name FROM people ORDER BY id").await)
}

/// A project appending the SQLite `model` (ids `0..rows`, names `n<id>`) to a webhook at
/// `url`, with the connection's `delivery` settings (e.g. `batch_size: 100, concurrency: 1`).
pub fn webhook_append_project(url: &str, delivery: &str, rows: usize) -> Project {
    let p = Project::new();
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  \
             hook: {{ type: webhook, url: \"{url}\", delivery: {{ {delivery} }} }}\n"
        ),
    );
    p.write(
        "syncs/people.yaml",
        "name: people\nsource: { connection: warehouse, sql: \"select id, name from model\" }\n\
         primary_key: id\ndestination: { connection: hook, object: people }\n\
         mapping: { id: id, name: name }\nmode: append\n",
    );
    let mut sql = String::from("CREATE TABLE model (id INTEGER, name TEXT);");
    for i in 0..rows {
        sql.push_str(&format!("INSERT INTO model VALUES ({i}, 'n{i}');"));
    }
    p.warehouse(&sql);
    p
}
