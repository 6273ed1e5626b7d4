-- The quickstart warehouse (warehouse.db was built from this file with:
--   sqlite3 warehouse.db < warehouse.sql)
CREATE TABLE people (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    plan TEXT NOT NULL,
    lifetime_value REAL,
    signed_up_at TEXT NOT NULL,
    active INTEGER NOT NULL
);
INSERT INTO people VALUES
  (1, 'alice@example.com', 'Alice Martin', 'pro', 1290.50, '2024-01-15', 1),
  (2, 'bob@example.com', 'Bob Chen', 'free', 0, '2024-02-03', 1),
  (3, 'carol@example.com', 'Carol Diaz', 'team', 4520.00, '2024-03-22', 1),
  (4, 'dave@example.com', 'Dave Okafor', 'pro', 310.75, '2024-04-09', 0),
  (5, 'erin@example.com', 'Erin Novak', 'free', 0, '2024-05-30', 1),
  (6, 'frank@example.com', 'Frank Ito', 'team', 2210.00, '2024-06-11', 1);
