#!/usr/bin/python3
"""python_example.py -- the takhin SQLite extension from Python's sqlite3 module.

Loading an extension needs a Python whose sqlite3 module was built with
enable_load_extension: Debian's /usr/bin/python3 (package python3) is; a
default pyenv build, for one, is not, and this script says so and stops.

    /usr/bin/python3 examples/python_example.py [DB] [EXTENSION]

DB defaults to demo-py.db, EXTENSION to build/takhin (SQLite adds the .so);
after an install (cmake --install, or the libtakhin .deb) pass just takhin.
The store lives beside the database file: DB-takhin/ holds the segments.
"""
import json
import sqlite3
import sys

db_path = sys.argv[1] if len(sys.argv) > 1 else "demo-py.db"
ext_path = sys.argv[2] if len(sys.argv) > 2 else "build/takhin"

if not hasattr(sqlite3.Connection, "enable_load_extension"):
    sys.exit(
        "python_example.py: the sqlite3 module of %s (Python %s) cannot load SQLite "
        "extensions: it was built without enable_load_extension (as pyenv builds it by "
        "default). Run it with Debian's /usr/bin/python3 (apt-get install python3), "
        "or a Python built with --enable-loadable-sqlite-extensions."
        % (sys.executable, sys.version.split()[0])
    )

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
    # headers: any JSON that json.dumps writes, "\ud83d\ude00" escapes included
    (1, None, b"\x00\xff", 1700000001000, json.dumps([["trace", "abc"], ["emoji", "\U0001F600"]])),
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

blob, headers = db.execute("SELECT value, headers FROM orders WHERE partition = 1 LIMIT 1").fetchone()
print("blob", blob == b"\x00\xff", type(blob).__name__)
print("headers", json.loads(headers) == [["trace", "abc"], ["emoji", "\U0001F600"]])

print("committed", db.execute("SELECT takhin_commit('py', 'orders', 0, 2)").fetchone()[0])
for row in db.execute("SELECT group_id, topic, partition, committed_offset, lag FROM takhin_group_offsets"):
    print("group", row)

# Errors come back as sqlite3 exceptions naming the problem.
try:
    db.execute("UPDATE orders SET value = 'x'")
except sqlite3.Error as e:
    print("refused:", e)

db.close()
