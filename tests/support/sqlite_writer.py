#!/usr/bin/env python3
"""Builds and drives SQLite databases for cairn's SQLite tests and benchmark.

Only the standard library (sqlite3) is used, so this runs wherever python3
does. Subcommands:

  create DB [--journal wal|delete] [--page-size N] [--accounts N] [--pad N]
            [--filler-rows N] [--filler-bytes N]
      A bank: `accounts(id, balance, pad)` with every balance 1000,
      `ledger(id, src, dst, amount, note)` recording every transfer,
      `meta(k, v)` with k='txns' counting committed transfers, and
      `filler(id, data)` of random blobs (so the file has some size).

  transfer DB --stop FILE [--seconds S] [--vacuum-every N] [--report FILE]
           [--synchronous OFF|NORMAL|FULL]
      Flat out, one transfer per transaction: a random amount moves between
      two random accounts, a ledger row records it and meta.txns goes up by
      one. With --vacuum-every N, every N transfers a scratch table is
      filled and emptied (so the page count changes) and the database is
      VACUUMed. Prints "running" once the first transfer is committed.
      Stops when FILE exists (or after S seconds, 120 by default,
      so that an orphan never runs forever) and prints the number of
      committed transfers as JSON (also to --report FILE).

  check DB
      Prints JSON facts: integrity_check, sum of balances, number of
      accounts, meta.txns, ledger rows, and whether every balance equals
      1000 plus what the ledger says came in minus what went out.

  bulk DB [--journal wal|delete] [--page-size N] --rows N --row-bytes N
      `items(id, body TEXT, data BLOB)` with N rows of random text and
      random bytes (incompressible), for incremental backups and the bench.

  update DB --fraction F [--seed N]
      Rewrites the `data` of a random F share of the rows of `items`, in
      one transaction; prints how many rows changed.

  churn DB [--seconds S] [--body-bytes N] [--synchronous OFF|NORMAL|FULL]
        [--busy-timeout-ms MS]
      For S seconds, flat out, one small transaction at a time: the `body`
      of a random row of `items` is replaced by N random letters. With the
      default busy timeout of 0, a transaction that finds the database
      locked fails at once and is retried, and counted as `busy`. Prints
      JSON: transactions, seconds, tps, the writer's own CPU seconds and
      transactions per CPU second (which CPU contention does not lower),
      commit latencies (p50, p99, max, in ms, retries included), busy, and
      the size of DB-wal at the end.

  hold-exclusive DB --seconds S
      Rollback-journal mode: BEGIN EXCLUSIVE, write a row, print "locked",
      then sleep S seconds holding the lock, and roll back.

  hold-wal DB
      WAL mode, automatic checkpoints off: commits a few rows so that
      DB-wal has frames, prints "ready", then waits for stdin to close,
      keeping the connection (and so DB-wal and DB-shm) open.

  crash-wal DB --rows N
      WAL mode, automatic checkpoints off: commits N rows into a table
      `stale` and exits without closing, so DB-wal is left behind full of
      committed frames (what a crashed application leaves).
"""

import argparse
import json
import os
import random
import resource
import sqlite3
import sys
import time

START_BALANCE = 1000


def connect(path, timeout=60.0):
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = %d" % int(timeout * 1000))
    return conn


def set_mode(conn, journal, page_size):
    conn.execute("PRAGMA page_size = %d" % page_size)
    mode = conn.execute("PRAGMA journal_mode = %s" % journal).fetchone()[0]
    if mode.lower() != journal.lower():
        sys.exit("journal_mode %s not set (got %s)" % (journal, mode))
    conn.execute("PRAGMA synchronous = NORMAL")


def cmd_create(a):
    if os.path.exists(a.db):
        os.remove(a.db)
    conn = connect(a.db)
    set_mode(conn, a.journal, a.page_size)
    rng = random.Random(a.seed)
    conn.execute("BEGIN")
    conn.execute(
        "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, pad BLOB)"
    )
    conn.execute(
        "CREATE TABLE ledger(id INTEGER PRIMARY KEY, src INTEGER NOT NULL,"
        " dst INTEGER NOT NULL, amount INTEGER NOT NULL, note TEXT)"
    )
    conn.execute("CREATE INDEX ledger_src ON ledger(src)")
    conn.execute("CREATE TABLE meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    conn.execute("CREATE TABLE filler(id INTEGER PRIMARY KEY, data BLOB)")
    conn.execute("CREATE TABLE scratch(id INTEGER PRIMARY KEY, data BLOB)")
    conn.executemany(
        "INSERT INTO accounts VALUES(?, ?, ?)",
        ((i, START_BALANCE, rng.randbytes(a.pad)) for i in range(1, a.accounts + 1)),
    )
    conn.execute("INSERT INTO meta VALUES('txns', 0)")
    conn.executemany(
        "INSERT INTO filler VALUES(?, ?)",
        ((i, rng.randbytes(a.filler_bytes)) for i in range(1, a.filler_rows + 1)),
    )
    conn.execute("COMMIT")
    conn.close()


def cmd_transfer(a):
    conn = connect(a.db)
    conn.execute("PRAGMA synchronous = %s" % a.synchronous)
    n_accounts = conn.execute("SELECT count(*) FROM accounts").fetchone()[0]
    rng = random.Random(os.getpid())
    deadline = time.monotonic() + a.seconds
    done = 0
    vacuums = 0
    while True:
        if done % 16 == 0 and (os.path.exists(a.stop) or time.monotonic() > deadline):
            break
        src = rng.randint(1, n_accounts)
        dst = rng.randint(1, n_accounts)
        amount = rng.randint(1, 100)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "UPDATE accounts SET balance = balance - ? WHERE id = ?", (amount, src)
            )
            conn.execute(
                "UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, dst)
            )
            conn.execute(
                "INSERT INTO ledger(src, dst, amount, note) VALUES(?, ?, ?, ?)",
                (src, dst, amount, "transfer %d" % done),
            )
            conn.execute("UPDATE meta SET v = v + 1 WHERE k = 'txns'")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done += 1
        if done == 1:
            print("running", flush=True)
        if a.vacuum_every and done % a.vacuum_every == 0:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO scratch(data) VALUES(?)",
                ((rng.randbytes(3000),) for _ in range(rng.randint(50, 400))),
            )
            conn.execute("COMMIT")
            conn.execute("DELETE FROM scratch")
            conn.execute("VACUUM")
            vacuums += 1
    conn.close()
    out = json.dumps({"transactions": done, "vacuums": vacuums})
    if a.report:
        with open(a.report, "w") as f:
            f.write(out + "\n")
    print(out, flush=True)


def cmd_check(a):
    conn = sqlite3.connect("file:%s?mode=ro" % a.db, uri=True, isolation_level=None)
    ic = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    total, accounts = conn.execute("SELECT sum(balance), count(*) FROM accounts").fetchone()
    txns = conn.execute("SELECT v FROM meta WHERE k = 'txns'").fetchone()[0]
    ledger = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
    bad = conn.execute(
        "SELECT count(*) FROM accounts a WHERE a.balance != ? "
        " + coalesce((SELECT sum(amount) FROM ledger WHERE dst = a.id), 0)"
        " - coalesce((SELECT sum(amount) FROM ledger WHERE src = a.id), 0)",
        (START_BALANCE,),
    ).fetchone()[0]
    print(
        json.dumps(
            {
                "integrity_check": "; ".join(ic),
                "sum": total,
                "accounts": accounts,
                "txns": txns,
                "ledger": ledger,
                "accounts_disagreeing_with_ledger": bad,
            }
        )
    )


def cmd_bulk(a):
    if os.path.exists(a.db):
        os.remove(a.db)
    conn = connect(a.db)
    set_mode(conn, a.journal, a.page_size)
    rng = random.Random(a.seed)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
        for _ in range(5000)
    ]
    text_len = a.row_bytes // 4
    blob_len = a.row_bytes - text_len
    conn.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, body TEXT, data BLOB)")
    batch = 2000
    for start in range(1, a.rows + 1, batch):
        conn.execute("BEGIN")
        rows = []
        for i in range(start, min(start + batch, a.rows + 1)):
            body = " ".join(rng.choice(words) for _ in range(text_len // 6 + 1))[:text_len]
            rows.append((i, body, rng.randbytes(blob_len)))
        conn.executemany("INSERT INTO items VALUES(?, ?, ?)", rows)
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def cmd_update(a):
    conn = connect(a.db)
    rng = random.Random(a.seed)
    ids = [r[0] for r in conn.execute("SELECT id FROM items")]
    n = max(1, round(len(ids) * a.fraction))
    chosen = rng.sample(ids, n)
    conn.execute("BEGIN IMMEDIATE")
    for i in chosen:
        (length,) = conn.execute("SELECT length(data) FROM items WHERE id = ?", (i,)).fetchone()
        conn.execute("UPDATE items SET data = ? WHERE id = ?", (rng.randbytes(length), i))
    conn.execute("COMMIT")
    conn.close()
    print(json.dumps({"rows_updated": n}))


def setup_query(conn, sql):
    """Runs a setup statement before the timed loop, retrying for up to 10 s
    while another connection (a backup opening the database) holds a lock
    for a moment: the writer's busy timeout may be 0."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def cmd_churn(a):
    conn = connect(a.db, timeout=a.busy_timeout_ms / 1000.0)
    setup_query(conn, "PRAGMA synchronous = %s" % a.synchronous)
    ((max_id,),) = setup_query(conn, "SELECT max(id) FROM items")
    rng = random.Random(os.getpid())
    alphabet = "abcdefghijklmnopqrstuvwxyz "
    latencies = []
    busy = 0
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    deadline = start + a.seconds
    now = start
    while now < deadline:
        body = "".join(rng.choices(alphabet, k=a.body_bytes))
        i = rng.randint(1, max_id)
        t0 = time.perf_counter()
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("UPDATE items SET body = ? WHERE id = ?", (body, i))
                conn.execute("COMMIT")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                # Another connection held a lock the writer needed.
                busy += 1
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        now = time.perf_counter()
        latencies.append(now - t0)
    elapsed = now - start
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    try:
        wal_bytes = os.path.getsize(a.db + "-wal")
    except OSError:
        wal_bytes = 0
    conn.close()
    latencies.sort()
    n = len(latencies)
    out = {
        "transactions": n,
        "seconds": round(elapsed, 3),
        "tps": round(n / elapsed, 1),
        "cpu_seconds": round(cpu, 3),
        "tx_per_cpu_second": round(n / cpu, 1) if cpu > 0 else None,
        "p50_ms": round(latencies[n // 2] * 1000, 3),
        "p99_ms": round(latencies[min(n - 1, n * 99 // 100)] * 1000, 3),
        "max_ms": round(latencies[-1] * 1000, 3),
        "busy": busy,
        "wal_bytes": wal_bytes,
    }
    print(json.dumps(out), flush=True)


def cmd_hold_exclusive(a):
    conn = connect(a.db, timeout=5.0)
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if mode.lower() == "wal":
        sys.exit("hold-exclusive wants a rollback-journal database")
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("CREATE TABLE IF NOT EXISTS held(x)")
    conn.execute("INSERT INTO held VALUES(1)")
    print("locked", flush=True)
    time.sleep(a.seconds)
    conn.execute("ROLLBACK")
    conn.close()


def cmd_hold_wal(a):
    conn = connect(a.db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE IF NOT EXISTS held(x)")
    for i in range(20):
        conn.execute("INSERT INTO held VALUES(?)", (i,))
    print("ready", flush=True)
    sys.stdin.read()
    conn.close()


def cmd_crash_wal(a):
    conn = connect(a.db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE IF NOT EXISTS stale(id INTEGER PRIMARY KEY, data BLOB)")
    rng = random.Random(7)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO stale(data) VALUES(?)", ((rng.randbytes(500),) for _ in range(a.rows))
    )
    conn.execute("COMMIT")
    sys.stdout.flush()
    os._exit(0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("create")
    c.add_argument("db")
    c.add_argument("--journal", default="wal", choices=["wal", "delete"])
    c.add_argument("--page-size", type=int, default=4096)
    c.add_argument("--accounts", type=int, default=1000)
    c.add_argument("--pad", type=int, default=300)
    c.add_argument("--filler-rows", type=int, default=1000)
    c.add_argument("--filler-bytes", type=int, default=2000)
    c.add_argument("--seed", type=int, default=1)
    c.set_defaults(fn=cmd_create)

    c = sub.add_parser("transfer")
    c.add_argument("db")
    c.add_argument("--stop", required=True)
    c.add_argument("--seconds", type=float, default=120.0)
    c.add_argument("--vacuum-every", type=int, default=0)
    c.add_argument("--report")
    c.add_argument("--synchronous", default="NORMAL", choices=["OFF", "NORMAL", "FULL"])
    c.set_defaults(fn=cmd_transfer)

    c = sub.add_parser("check")
    c.add_argument("db")
    c.set_defaults(fn=cmd_check)

    c = sub.add_parser("bulk")
    c.add_argument("db")
    c.add_argument("--journal", default="wal", choices=["wal", "delete"])
    c.add_argument("--page-size", type=int, default=4096)
    c.add_argument("--rows", type=int, required=True)
    c.add_argument("--row-bytes", type=int, default=1000)
    c.add_argument("--seed", type=int, default=1)
    c.set_defaults(fn=cmd_bulk)

    c = sub.add_parser("update")
    c.add_argument("db")
    c.add_argument("--fraction", type=float, required=True)
    c.add_argument("--seed", type=int, default=2)
    c.set_defaults(fn=cmd_update)

    c = sub.add_parser("churn")
    c.add_argument("db")
    c.add_argument("--seconds", type=float, default=20.0)
    c.add_argument("--body-bytes", type=int, default=100)
    c.add_argument("--busy-timeout-ms", type=int, default=0)
    c.add_argument("--synchronous", default="NORMAL", choices=["OFF", "NORMAL", "FULL"])
    c.set_defaults(fn=cmd_churn)

    c = sub.add_parser("hold-exclusive")
    c.add_argument("db")
    c.add_argument("--seconds", type=float, default=30.0)
    c.set_defaults(fn=cmd_hold_exclusive)

    c = sub.add_parser("hold-wal")
    c.add_argument("db")
    c.set_defaults(fn=cmd_hold_wal)

    c = sub.add_parser("crash-wal")
    c.add_argument("db")
    c.add_argument("--rows", type=int, default=200)
    c.set_defaults(fn=cmd_crash_wal)

    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
