#!/usr/bin/env python3
"""The benchmark users run: `bash infra/scripts/bench.sh [ROWS]`.

Builds an SQLite warehouse with ROWS model rows, then times what a user runs, the release
`retl` CLI, on a mirror sync into an SQLite destination:

  1. first run (extract, plan, apply of ROWS creates),
  2. a no-change run,
  3. `retl plan` after 10% of the rows changed, 5% are new and 5% are gone,
  4. the same diff in DuckDB, when the dev virtualenv has it (its sqlite_scanner reading the
     same file; the previous snapshot of key + hash FULL OUTER JOIN the current model, the
     changed rows written to Parquet), the way warehouse-native engines diff,
  5. the first run of a webhook sync of up to 200,000 of the rows to a local receiver that
     answers at once (100-record batches, concurrency 16): retl's delivery rate,

printing wall time, rows/s and peak memory (the child's maximum resident set, from wait4)
of each, retl's own phase timings, the state folder's size after the dry runs, and the
ratio of retl's plan to DuckDB's. Each timed command runs RUNS times, alternating retl and
DuckDB, and the median is reported. Only the standard library is needed; DuckDB is optional.
"""

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def peak(cmd, cwd=None, env=None):
    """Runs cmd under fork/exec + wait4; returns (wall seconds, peak RSS MiB, stdout, code)."""
    r, w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        if cwd:
            os.chdir(cwd)
        os.execvpe(cmd[0], cmd, env or os.environ)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024.0, b"".join(chunks).decode(), code


def make_warehouse(path, rows):
    db = sqlite3.connect(path)
    db.execute("DROP TABLE IF EXISTS model")
    db.execute("CREATE TABLE model (id INTEGER PRIMARY KEY, email TEXT, name TEXT, plan TEXT, seats INTEGER)")
    plans = ("free", "pro", "team", "enterprise")
    db.executemany(
        "INSERT INTO model VALUES (?, ?, ?, ?, ?)",
        ((i, f"user{i}@example.com", f"User {i}", plans[i % 4], i % 50) for i in range(1, rows + 1)),
    )
    db.commit()
    db.close()


def mutate(path, rows):
    """10% changed, 5% gone, 5% new."""
    db = sqlite3.connect(path)
    db.execute("UPDATE model SET name = name || ' (changed)' WHERE id % 10 = 0")
    db.execute("DELETE FROM model WHERE id % 20 = 1")
    n = rows // 20
    db.executemany(
        "INSERT INTO model VALUES (?, ?, ?, ?, ?)",
        ((i, f"user{i}@example.com", f"User {i}", "pro", 1) for i in range(rows + 1, rows + n + 1)),
    )
    db.commit()
    db.close()


def project(folder):
    with open(os.path.join(folder, "retl.yaml"), "w") as f:
        f.write(
            "connections:\n"
            "  warehouse: { type: sqlite, path: warehouse.db }\n"
            "  app: { type: sqlite, path: app.db }\n"
        )
    os.makedirs(os.path.join(folder, "syncs"), exist_ok=True)
    with open(os.path.join(folder, "syncs", "bench.yaml"), "w") as f:
        f.write(
            "name: bench\n"
            "source: { connection: warehouse, sql: \"select id, email, name, plan, seats from model\" }\n"
            "primary_key: id\n"
            "destination: { connection: app, object: users }\n"
            "mapping: { id: id, email: email, name: name, plan: plan, seats: seats }\n"
            "mode: mirror\n"
        )
    app = sqlite3.connect(os.path.join(folder, "app.db"))
    app.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, name TEXT, plan TEXT, seats INTEGER)")
    app.commit()
    app.close()


RECEIVER = """
import asyncio, os, sys

async def serve(reader, writer):
    # HTTP/1.1 with keep-alive, answering every POST at once with 200 and no results: the
    # 0 ms receiver retl's delivery is measured against. Counts the records it was sent.
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            length = 0
            for line in head.split(b"\\r\\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            COUNT[0] += body.count(b'"event_id"')
            writer.write(b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\ncontent-length: 2\\r\\n\\r\\n{}")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(COUNT[0], flush=True)
    os._exit(0)  # the open connections' tasks need no orderly end

COUNT = [0]
asyncio.run(main())
"""


def webhook_phase(base_dir, retl, rows):
    """The first run of a webhook sync (upsert, 100-record batches, concurrency 16) of up to
    200,000 rows to a local receiver that answers at once: retl's delivery rate, receiver-bound
    or CPU-bound."""
    n = min(rows, 200_000)
    recv = subprocess.Popen([sys.executable, "-c", RECEIVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    port = int(recv.stdout.readline())
    proj = os.path.join(base_dir, "webhook")
    os.makedirs(os.path.join(proj, "syncs"))
    shutil.copy(os.path.join(base_dir, "project", "warehouse.db"), os.path.join(proj, "warehouse.db"))
    with open(os.path.join(proj, "retl.yaml"), "w") as f:
        f.write(
            "connections:\n"
            "  warehouse: { type: sqlite, path: warehouse.db }\n"
            f"  hook: {{ type: webhook, url: 'http://127.0.0.1:{port}/ingest',"
            " delivery: { batch_size: 100, concurrency: 16 } }\n"
        )
    with open(os.path.join(proj, "syncs", "hook.yaml"), "w") as f:
        f.write(
            "name: hook\n"
            f"source: {{ connection: warehouse, sql: \"select id, email, name, plan, seats from model where id <= {n}\" }}\n"
            "primary_key: id\n"
            "destination: { connection: hook, object: people }\n"
            "mapping: { id: id, email: email, name: name, plan: plan, seats: seats }\n"
            "mode: upsert\n"
        )
    wall, rss, out, code = peak([retl, "--project", proj, "run", "hook", "--json"])
    received, _ = recv.communicate("")
    run = json.loads(out)
    apply_s = run["timings_ms"].get("apply_ms", 0) / 1000
    print(f"webhook delivery (first run of {n:,} records, 100-record batches, concurrency 16, 0 ms receiver):")
    print(f"  {run['creates']:,} delivered, {int(received):,} received; apply {apply_s:.2f} s ="
          f" {run['creates'] / apply_s / 1000:.1f} k records/s; whole run {wall:.2f} s, {rss:.0f} MiB peak")


def folder_mib(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total / (1 << 20)


DUCKDB_DIFF = """
import sys, duckdb
con = duckdb.connect()
con.execute("LOAD sqlite")
con.execute(f"ATTACH '{sys.argv[1]}' AS w (TYPE sqlite, READ_ONLY)")
con.execute(f"CREATE VIEW snap AS SELECT * FROM read_parquet('{sys.argv[2]}')")
con.execute(f'''
COPY (
  WITH cur AS (
    SELECT id, email, name, plan, seats, hash(email, name, plan, seats) AS h FROM w.model
  )
  SELECT coalesce(cur.id, snap.id) AS id, cur.email, cur.name, cur.plan, cur.seats,
         CASE WHEN snap.id IS NULL THEN 'create' WHEN cur.id IS NULL THEN 'delete'
              ELSE 'update' END AS op
  FROM cur FULL OUTER JOIN snap ON cur.id = snap.id
  WHERE snap.id IS NULL OR cur.id IS NULL OR cur.h <> snap.h
) TO '{sys.argv[3]}' (FORMAT parquet)
''')
print(con.execute(f"SELECT op, count(*) FROM read_parquet('{sys.argv[3]}') GROUP BY op ORDER BY op").fetchall())
"""

DUCKDB_SNAPSHOT = """
import sys, duckdb
con = duckdb.connect()
con.execute("LOAD sqlite")
con.execute(f"ATTACH '{sys.argv[1]}' AS w (TYPE sqlite, READ_ONLY)")
con.execute(f"COPY (SELECT id, hash(email, name, plan, seats) AS h FROM w.model) TO '{sys.argv[2]}' (FORMAT parquet)")
"""


def report(name, rows, samples):
    walls = [s[0] for s in samples]
    peaks = [s[1] for s in samples]
    wall = statistics.median(walls)
    print(f"  {name:<34} {wall:8.2f} s  {rows / wall / 1000:9.0f} k rows/s  {max(peaks):7.0f} MiB peak"
          f"   (runs: {', '.join(f'{w:.2f}' for w in walls)})")
    return wall


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    retl = os.environ.get("RETL_BIN") or sys.exit("RETL_BIN is not set (bench.sh sets it)")
    python = os.environ.get("BENCH_PYTHON", "")
    has_duckdb = bool(python) and subprocess.run(
        [python, "-c", "import duckdb"], capture_output=True).returncode == 0
    work = tempfile.mkdtemp(prefix="retl-bench-")
    try:
        print(f"retl benchmark: {rows:,} rows, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
        proj = os.path.join(work, "project")
        os.makedirs(proj)
        project(proj)
        wh = os.path.join(proj, "warehouse.db")
        make_warehouse(wh, rows)
        base = [retl, "--project", proj]

        print("retl (release CLI):")
        wall, rss, out, code = peak(base + ["run", "bench", "--json"])
        first = json.loads(out)
        assert first["creates"] == rows, first
        report("first run (extract+plan+apply)", rows, [(wall, rss)])
        t = first["timings_ms"]
        print(f"    phases: extract {t.get('extract_ms', 0) / 1000:.2f} s, plan {t.get('plan_ms', 0) / 1000:.2f} s,"
              f" apply {t.get('apply_ms', 0) / 1000:.2f} s")
        wall, rss, out, code = peak(base + ["run", "bench", "--json"])
        again = json.loads(out)
        assert again["creates"] + again["updates"] + again["deletes"] == 0, again
        report("no-change run", rows, [(wall, rss)])

        snapshot = os.path.join(work, "snapshot.parquet")
        if has_duckdb:
            subprocess.run([python, "-c", DUCKDB_SNAPSHOT, wh, snapshot], check=True)
        mutate(wh, rows)
        state_before = folder_mib(os.path.join(proj, ".retl"))
        plan_samples, duck_samples = [], []
        counts = None
        for i in range(RUNS):
            wall, rss, out, code = peak(base + ["plan", "bench", "--json"])
            plan = json.loads(out)
            counts = (plan["creates"], plan["updates"], plan["deletes"])
            plan_samples.append((wall, rss))
            if has_duckdb:
                changed = os.path.join(work, f"changed-{i}.parquet")
                wall, rss, out, code = peak([python, "-c", DUCKDB_DIFF, wh, snapshot, changed])
                if code != 0:
                    sys.exit("the DuckDB diff failed")
                duck = out.strip()
                duck_samples.append((wall, rss))
        state_after = folder_mib(os.path.join(proj, ".retl"))
        print(f"  plan: {counts[0]:,} creates, {counts[1]:,} updates, {counts[2]:,} deletes")
        plan_wall = report(f"retl plan (median of {RUNS})", rows, plan_samples)
        print(f"  state folder: {state_before:.1f} MiB before the dry runs, {state_after:.1f} MiB after {RUNS}")
        if has_duckdb:
            print("DuckDB 1.5.5 (sqlite_scanner, same file):")
            print(f"  diff: {duck}")
            duck_wall = report(f"FULL OUTER JOIN diff to Parquet (median of {RUNS})", rows, duck_samples)
            print(f"retl plan / DuckDB: {plan_wall / duck_wall:.2f}x")
        else:
            print("DuckDB is not in the dev virtualenv (bash infra/scripts/setup-warehouses.sh installs it): no peer figures")
        webhook_phase(work, retl, rows)
        print(f"load at the end: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
