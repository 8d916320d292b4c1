#!/usr/bin/python3
"""What the machine can do at best for one step of the dispatch path: the handler's store.

  /usr/bin/python3 bench/floor.py [--clients 62] [--seconds 15] [--keep]

Every dispatched order costs, at the least, one durable transaction in the handler that
receives it (the handler acknowledges only what it has committed), and with 31 provinces x 2
handlers those are 62 processes with a database connection each: the handler's transactions
cannot share a commit with each other or with the centre's. This bench measures that one step
with no kesu process in the way: a Postgres cluster of its own (durable commits, the settings
of bench/dispatch.py and deploy/local/pg.sh), the real schema (`kesuctl migrate`), and
Postgres's own load client `pgbench` (C, one thread per core) running the handler's exact
statement — services/handler/store.c SQL_INSERT_WITH_HISTORY: the order row with its complaint
and the dispatch's history row, one statement in a pipeline with one Sync, as the handler sends
it — from --clients connections as the role kesu_handler, for --seconds.

Prints transactions/s, how busy the machine was, the CPU per transaction (Postgres and
pgbench together), and what share of the machine the stores alone take at 1,500 orders/s
(issue 3's target). A reference line runs the smallest durable transaction (one short row,
no index but its key) the same way. Asserts nothing."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("KESU_BUILD", os.path.join(ROOT, "build")), "bin")
PGBIN = os.environ.get("KESU_PGBIN", "/usr/lib/postgresql/15/bin")
TICK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print("floor.py:", *a, flush=True)


def c_literals(text):
    """The concatenated C string literals of a piece of source (no escapes used in ours)."""
    return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', text))


def handler_statement():
    """SQL_INSERT_WITH_HISTORY as store.c builds it from its two macros."""
    src = open(os.path.join(ROOT, "services", "handler", "store.c"), encoding="utf-8").read()

    def macro(name):
        m = re.search(r"#define %s(?:\(\w+\))?\s*\\\n((?:.*\\\n)*.*\n)" % name, src)
        if not m:
            raise SystemExit("floor.py: %s not found in services/handler/store.c" % name)
        return m.group(1)
    upsert = c_literals(macro("ORDER_UPSERT"))
    hist = macro("HISTORY_INSERT")
    hist = c_literals(hist.replace('" param "', "$11"))
    if "WITH o AS (\" ORDER_UPSERT \" RETURNING 1) \" HISTORY_INSERT(\"$11\")" not in src:
        raise SystemExit("floor.py: SQL_INSERT_WITH_HISTORY is no longer built as this script "
                         "expects; update it")
    return "WITH o AS (" + upsert + " RETURNING 1) " + hist


COMPLAINT = ('{"customer":{"name":"压测用户","phone":"13900000001","level":"normal",'
             '"home_region":"310115","address":"上海市浦东新区压测地址1号"},"title":"宽带断网",'
             '"content":"压测：家中宽带频繁掉线，影响办公，请尽快处理。","channel":"hotline",'
             '"region":"310115","business_type":"broadband","problem_type":"network",'
             '"kind":"complaint","stream":"ordinary","tier":"general","vip":false,"priority":3}')


def pgbench_script(stmt):
    """pgbench cannot bind text parameters: $n become expressions (a unique order number per
    transaction from the client id and a random number; the JSON from a one-row table, as
    pgbench would read ':' inside a literal as a variable)."""
    order_no = "('F' || :client_id || '-' || :r)"
    vals = {1: order_no, 2: "'u-sh'", 3: "'310115'", 4: "gen_random_uuid()::text",
            5: "'1763900000000'", 6: "'1764000000000'", 7: "(SELECT complaint FROM handler.c)",
            8: "''", 9: "('h-' || :client_id)", 10: "'false'",
            11: "(SELECT jsonb_set(history, '{0,order_no}', to_jsonb(%s))::text FROM handler.c)"
                % order_no}
    for i in sorted(vals, reverse=True):  # $11 before $1
        stmt = re.sub(r"\$%d(?!\d)" % i, vals[i].replace("\\", "\\\\"), stmt)
    return ("\\set r random(1, 2000000000)\n\\startpipeline\n%s;\n\\endpipeline\n" % stmt)


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / TICK


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=62, help="connections (62 = 31 x 2 handlers)")
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--keep", action="store_true", help="keep the temp cluster's directory")
    a = ap.parse_args()
    stmt = handler_statement()
    base = tempfile.mkdtemp(prefix="kesu-floor-")
    os.chmod(base, 0o755)
    pgdir = os.path.join(base, "pg")
    os.makedirs(pgdir)
    run_as = []
    if os.geteuid() == 0:  # Postgres refuses to run as root
        shutil.chown(base, "postgres")
        shutil.chown(pgdir, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = 6000 + os.getpid() % 3000
    conninfo = "host=%s port=%d dbname=kesu" % (pgdir, port)
    env = dict(os.environ, KESU_PG=conninfo, KESU_PG_ADMIN=conninfo + " user=postgres",
               KESU_HOME=ROOT)
    started = False
    try:
        subprocess.run(run_as + [PGBIN + "/initdb", "-D", pgdir + "/data", "-E", "UTF8",
                                 "--locale=C.UTF-8", "-A", "trust", "-U", "postgres"],
                       check=True, stdout=subprocess.DEVNULL)
        opts = ("-p %d -k %s -c listen_addresses='' -c max_connections=%d -c shared_buffers=256MB"
                " -c fsync=on -c synchronous_commit=on -c full_page_writes=on"
                % (port, pgdir, a.clients + 20))
        subprocess.run(run_as + [PGBIN + "/pg_ctl", "-D", pgdir + "/data", "-w", "-l",
                                 pgdir + "/log", "-o", opts, "start"],
                       check=True, stdout=subprocess.DEVNULL)
        started = True
        subprocess.run(run_as + [PGBIN + "/createdb", "-h", pgdir, "-p", str(port), "-U",
                                 "postgres", "kesu"], check=True)
        r = subprocess.run([os.path.join(BIN, "kesuctl"), "migrate"], env=env, cwd=ROOT,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit("floor.py: kesuctl migrate failed: %s %s" % (r.stdout, r.stderr))

        def psql(sql, user="postgres"):
            subprocess.run([PGBIN + "/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pgdir,
                            "-p", str(port), "-U", user, "-d", "kesu", "-c", sql], check=True)
        history = ('[{"order_no":"","seq":1,"action":"dispatch","actor":"router",'
                   '"actor_unit":"hq","at":1763900000000,"reason":"","from_unit":"hq",'
                   '"to_unit":"u-sh","answer":"","from_state":"accepted",'
                   '"to_state":"dispatched"}]')
        psql("CREATE TABLE handler.c AS SELECT $c$%s$c$::text AS complaint, $h$%s$h$::jsonb AS "
             "history" % (COMPLAINT, history), user="kesu_handler")
        psql("CREATE TABLE handler.floor_ref (k text PRIMARY KEY, v int)", user="kesu_handler")
        scripts = [
            ("handler store (SQL_INSERT_WITH_HISTORY)", pgbench_script(stmt)),
            ("reference: smallest durable insert",
             "\\set r random(1, 2000000000)\n\\startpipeline\nINSERT INTO handler.floor_ref "
             "VALUES ('F' || :client_id || '-' || :r, 1) ON CONFLICT DO NOTHING;\n"
             "\\endpipeline\n")]
        for name, text in scripts:
            path = os.path.join(base, "script.sql")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(path, 0o644)
            b0, t0 = machine_busy(), time.monotonic()
            r = subprocess.run([PGBIN + "/pgbench", "-h", pgdir, "-p", str(port), "-U",
                                "kesu_handler", "-n", "-M", "prepared", "-c", str(a.clients),
                                "-j", str(os.cpu_count() or 2), "-T", str(a.seconds), "-f", path,
                                "kesu"], capture_output=True, text=True)
            b1, t1 = machine_busy(), time.monotonic()
            m = re.search(r"tps = ([\d.]+)", r.stdout)
            failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
            if r.returncode != 0 or not m:
                raise SystemExit("floor.py: pgbench failed:\n%s\n%s" % (r.stdout, r.stderr[-2000:]))
            tps = float(m.group(1))
            busy = (b1 - b0) / (t1 - t0)  # cores busy
            ncpu = os.cpu_count() or 2
            log("%s, %d connections, %d s: %.0f transactions/s; machine %.0f %% busy (of %d %%); "
                "%.3f ms CPU per transaction (Postgres + pgbench)%s" % (
                    name, a.clients, a.seconds, tps, 100 * busy, 100 * ncpu,
                    1000 * busy / tps, ", %s failed" % failed.group(1) if failed and
                    failed.group(1) != "0" else ""))
            log("  at 1,500 orders/s this step alone takes %.0f %% of the machine's %d cores" % (
                100 * 1500 * busy / tps / ncpu, ncpu))
    finally:
        if started:
            subprocess.run(run_as + [PGBIN + "/pg_ctl", "-D", pgdir + "/data", "-m", "fast",
                                     "-w", "stop"], stdout=subprocess.DEVNULL)
        if a.keep:
            log("kept", base)
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
