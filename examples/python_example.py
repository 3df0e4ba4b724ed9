#!/usr/bin/python3
"""python_example.py -- the takhin SQLite extension from Python's sqlite3 module.

Debian's /usr/bin/python3 can load extensions (enable_load_extension); many
other builds (pyenv, some macOS pythons) are compiled without it.

    /usr/bin/python3 examples/python_example.py [DB] [EXTENSION]

DB defaults to demo-py.db, EXTENSION to build/takhin (SQLite adds the .so).
The store lives beside the database file: DB-takhin/ holds the segments.
"""
import sqlite3
import sys

db_path = sys.argv[1] if len(sys.argv) > 1 else "demo-py.db"
ext_path = sys.argv[2] if len(sys.argv) > 2 else "build/takhin"

# isolation_level=None: no implicit BEGIN; each INSERT outside an explicit
# transaction is appended at once as one batch.
db = sqlite3.connect(db_path, isolation_level=None)
db.enable_load_extension(True)
db.load_extension(ext_path)  # entry point sqlite3_takhin_init
db.enable_load_extension(False)

print("takhin", db.execute("SELECT takhin_version()").fetchone()[0])

exists = db.execute("SELECT count(*) FROM takhin_topics WHERE name = 'orders'").fetchone()[0]
if not exists:
    db.execute("CREATE VIRTUAL TABLE orders USING takhin(partitions=2)")

# Parameters bind as usual: str stays text, bytes round-trip as a blob.
db.execute(
    "INSERT INTO orders(key, value, timestamp) VALUES (?, ?, ?)",
    ("user-1", '{"total":10}', 1700000000000),
)
db.execute(
    "INSERT INTO orders(partition, key, value, timestamp, headers) VALUES (?, ?, ?, ?, ?)",
    (1, None, b"\x00\xff", 1700000001000, '[["trace","abc"]]'),
)

# A transaction: its rows land together at COMMIT, one batch per partition.
db.execute("BEGIN")
db.executemany(
    "INSERT INTO orders(partition, key, value, timestamp) VALUES (0, ?, ?, ?)",
    [("user-%d" % i, "v%d" % i, 1700000002000 + i) for i in range(3)],
)
db.execute("COMMIT")

for row in db.execute(
    "SELECT partition, offset, timestamp, key, value, headers FROM orders "
    "WHERE partition = 0 AND offset >= 0 ORDER BY partition, offset LIMIT 10"
):
    print("row", row)

blob = db.execute("SELECT value FROM orders WHERE partition = 1 LIMIT 1").fetchone()[0]
print("blob", blob == b"\x00\xff", type(blob).__name__)

print("committed", db.execute("SELECT takhin_commit('py', 'orders', 0, 2)").fetchone()[0])
for row in db.execute("SELECT group_id, topic, partition, committed_offset, lag FROM takhin_group_offsets"):
    print("group", row)

# Errors come back as sqlite3 exceptions naming the problem.
try:
    db.execute("UPDATE orders SET value = 'x'")
except sqlite3.Error as e:
    print("refused:", e)

db.close()
