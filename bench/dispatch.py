#!/usr/bin/python3
"""End-to-end dispatch bench (issue 3, "Speed"): 31 provinces x 2 handlers each.

  /usr/bin/python3 bench/dispatch.py [--total 20000] [--conns 32] [--per-province 2]
                                     [--rate N] [--warmup N] [--keep] [--no-extras]
  /usr/bin/python3 bench/dispatch.py --attach [--offset 0] [--token-file var/admin.token] ...

Without --attach it starts a system of its own, the way `make run` does: a Postgres cluster
in a temp dir (durable commits: fsync and synchronous_commit on, as deploy/local/pg.sh),
`kesuctl migrate` + `kesuctl load`, an admin token, kesu-intake, kesu-router, kesu-sla,
kesu-notifier, kesu-analytics (--no-extras: only intake and router) and, instead of the one
handler of `make run`, 31 x --per-province kesu-handler processes: for each province unit of
data/units.csv (kind `province`), handlers `h-<unit>-<k>` serving that unit's whole subtree
(KESU_HANDLER_UNITS), each on an HTTP port of its own. Every port is free-checked and shifted
by a KESU_PORT_OFFSET nothing else uses. Everything it started is stopped on exit (also on
Ctrl-C / SIGTERM; the services also get SIGKILL if this script is killed, PR_SET_PDEATHSIG).

It first submits --warmup complaints (default 620) at 200/s and waits until they are
dispatched — not measured: a cold system's first second (statements prepared on every
connection, backends touching their pages) would otherwise set the p99. It then submits
--total complaints spread evenly over the 31 provinces (round robin, each
province's region codes from data/regions.csv in turn; unique phones so none is a repeat
contact) with --conns keep-alive connections at full speed (or --rate per second), listens to WorkOrderDispatched on
the router's PUB, and prints: accepted/s, dispatched/s, the latency from each 201 to its
WorkOrderDispatched (p50/p95/p99/max), whether every order was dispatched exactly once
(distinct orders in the events; in the database: one handler.orders row per order, no
re-dispatch), how the orders spread over the handlers, and the CPU each process group used
during the run (from /proc), plus what the rest of the machine used meanwhile.
Asserts nothing; exit status 0 unless the system could not be started."""
import argparse
import asyncio
import collections
import csv
import ctypes
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("KESU_BUILD", os.path.join(ROOT, "build")), "bin")
sys.path.insert(0, os.path.join(ROOT, "build", "gen", "py"))
PGBIN = os.environ.get("KESU_PGBIN", "/usr/lib/postgresql/15/bin")
HTTP_PORT = {"intake": 8080, "handler": 8081, "analytics": 8082, "notifier": 8083,
             "sla": 8084, "router": 8085}
ZMQ_PORTS = [7100, 7101, 7110, 7111, 7112, 7120, 7121]
HANDLER_PORT_BASE = 8300  # + offset + i for the i-th handler

import zmq  # noqa: E402
from kesu.v1 import envelope_pb2  # noqa: E402


def log(*a):
    print("dispatch.py:", *a, flush=True)


# --- reference data: provinces, their unit subtrees and region codes ---------------------

def read_csv(name):
    with open(os.path.join(ROOT, "data", name), encoding="utf-8") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def provinces():
    """[(unit_id, region_code, [subtree unit ids], [region codes])] for every province unit."""
    units = read_csv("units.csv")
    children = collections.defaultdict(list)
    for u in units:
        children[u["parent"]].append(u["id"])
    regions = read_csv("regions.csv")
    out = []
    for u in units:
        if u["kind"] != "province":
            continue
        sub, todo = [], [u["id"]]
        while todo:
            x = todo.pop()
            sub.append(x)
            todo.extend(children.get(x, []))
        pfx = u["region"][:2]
        codes = [r["code"] for r in regions if r["code"].startswith(pfx)]
        out.append((u["id"], u["region"], sub, codes or [u["region"]]))
    return out


# --- processes --------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    os.setpgrp()  # Ctrl-C reaches us only; we stop the services in order


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick_offset(nhandlers):
    for _ in range(300):
        off = random.randrange(50000, 57000 - nhandlers, 10)
        ports = ([p + off for p in list(HTTP_PORT.values()) + ZMQ_PORTS + [5433]] +
                 [HANDLER_PORT_BASE + off + i for i in range(nhandlers)])
        if all(port_free(p) for p in ports):
            return off
    raise RuntimeError("no free port range")


class Proc:
    def __init__(self, name, argv, env, logdir, http_port):
        self.name, self.port = name, http_port
        self.log_path = os.path.join(logdir, name + ".log")
        self.log = open(self.log_path, "ab")
        self.p = subprocess.Popen(argv, env=env, stdout=self.log, stderr=self.log,
                                  preexec_fn=_die_with_parent)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def tail(self, n=2000):
        with open(self.log_path, "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace")


def http_get(port, path, token=None, timeout=1.0):
    """Tiny blocking GET (status, body) — no third-party HTTP client needed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        h = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % path
        if token:
            h += "Authorization: Bearer %s\r\n" % token
        s.sendall((h + "\r\n").encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


class System:
    def __init__(self, a, provs):
        self.a = a
        self.provs = provs
        self.procs = []
        self.pg_started = False
        self.base = None
        nh = len(provs) * a.per_province
        self.offset = pick_offset(nh)
        self.base = tempfile.mkdtemp(prefix="kesu-bench-")
        os.chmod(self.base, 0o755)
        self.pgdir = os.path.join(self.base, "pg")
        os.makedirs(self.pgdir)
        self.run_as = []
        if os.geteuid() == 0:  # Postgres refuses to run as root
            shutil.chown(self.base, "postgres")
            shutil.chown(self.pgdir, "postgres")
            self.run_as = ["runuser", "-u", "postgres", "--"]
        self.pgport = 5433 + self.offset
        conninfo = "host=%s port=%d dbname=kesu" % (self.pgdir, self.pgport)
        self.env = dict(os.environ)
        self.env.update({"KESU_PG": conninfo, "KESU_PG_ADMIN": conninfo + " user=postgres",
                         "KESU_PORT_OFFSET": str(self.offset), "KESU_HOME": ROOT,
                         "KESU_CLOCK": "real"})
        for k in ("KESU_SMS_URL", "KESU_SMTP_URL"):
            self.env.pop(k, None)

    def start(self):
        a = self.a
        t = time.monotonic()
        log("system under %s, port offset %d, Postgres port %d" % (self.base, self.offset,
                                                                   self.pgport))
        subprocess.run(self.run_as + [PGBIN + "/initdb", "-D", self.pgdir + "/data", "-E", "UTF8",
                                      "--locale=C.UTF-8", "-A", "trust", "-U", "postgres"],
                       check=True, stdout=subprocess.DEVNULL)
        nh = len(self.provs) * a.per_province
        # The settings of deploy/local/pg.sh (durable commits); max_connections raised for
        # the handler processes (each holds its own connections).
        opts = ("-p %d -k %s -c listen_addresses='' -c max_connections=%d -c shared_buffers=256MB "
                "-c fsync=on -c synchronous_commit=on -c full_page_writes=on" %
                (self.pgport, self.pgdir, 100 + 4 * nh))
        if a.pg_stats:
            opts += " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
        subprocess.run(self.run_as + [PGBIN + "/pg_ctl", "-D", self.pgdir + "/data", "-w", "-l",
                                      self.pgdir + "/log", "-o", opts, "start"],
                       check=True, stdout=subprocess.DEVNULL)
        self.pg_started = True
        subprocess.run(self.run_as + [PGBIN + "/createdb", "-h", self.pgdir, "-p",
                                      str(self.pgport), "-U", "postgres", "kesu"], check=True)
        self.kesuctl("migrate")
        self.kesuctl("load")
        if a.pg_stats:
            self.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        self.token = self.kesuctl("token", "create", "--name", "bench-admin", "--role",
                                  "admin").stdout.strip()
        services = ["intake", "router"] + ([] if a.no_extras else ["sla", "notifier",
                                                                    "analytics"])
        for s in services:
            self.procs.append(Proc(s, [os.path.join(BIN, "kesu-" + s)], self.env, self.base,
                                   HTTP_PORT[s] + self.offset))
        i = 0
        for unit, _, sub, _ in self.provs:
            for k in range(1, a.per_province + 1):
                port = HANDLER_PORT_BASE + self.offset + i
                env = dict(self.env)
                env.update({"KESU_HANDLER_ID": "h-%s-%d" % (unit, k),
                            "KESU_HANDLER_UNITS": ",".join(sub),
                            "KESU_HANDLER_HTTP": "127.0.0.1:%d" % port})
                self.procs.append(Proc("handler-%s-%d" % (unit, k),
                                       [os.path.join(BIN, "kesu-handler")], env, self.base, port))
                i += 1
        for p in self.procs:
            self.wait(lambda p=p: http_get(p.port, "/readyz")[0] == 200, p, 60)
        router = self.proc("router")
        self.wait(lambda: json.loads(http_get(router.port, "/v1/handlers", self.token)[1])
                  ["count"] >= nh, router, 30, "%d handlers known to the router" % nh)
        log("%d processes up (%d handlers) in %.1f s" % (len(self.procs), nh,
                                                          time.monotonic() - t))

    def wait(self, ok, p, timeout, what=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not p.alive():
                raise RuntimeError("%s exited (%s); log tail:\n%s" % (p.name, p.p.returncode,
                                                                      p.tail()))
            try:
                if ok():
                    return
            except (OSError, ValueError, KeyError, IndexError):
                pass
            time.sleep(0.1)
        raise RuntimeError("%s: no %s within %d s; log tail:\n%s" % (
            p.name, what or "/readyz", timeout, p.tail()))

    def proc(self, name):
        return next(p for p in self.procs if p.name == name)

    def kesuctl(self, *args):
        r = subprocess.run([os.path.join(BIN, "kesuctl")] + list(args), env=self.env,
                           capture_output=True, text=True, cwd=ROOT)
        if r.returncode != 0:
            raise RuntimeError("kesuctl %s failed: %s %s" % (" ".join(args), r.stdout, r.stderr))
        return r

    def psql(self, sql):
        r = subprocess.run([PGBIN + "/psql", "-X", "-tA", "-h", self.pgdir, "-p", str(self.pgport),
                            "-U", "postgres", "-d", "kesu", "-c", sql],
                           capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else "error: " + r.stderr.strip()

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.pgdir, "data", "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def stop(self):
        for p in self.procs:
            if p.alive():
                p.p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in self.procs:
            try:
                p.p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.p.kill()
                p.p.wait()
            p.log.close()
        if self.pg_started:
            subprocess.run(self.run_as + [PGBIN + "/pg_ctl", "-D", self.pgdir + "/data", "-m",
                                          "fast", "-w", "stop"], stdout=subprocess.DEVNULL)
        if self.base and not self.a.keep:
            shutil.rmtree(self.base, ignore_errors=True)
        elif self.base:
            log("kept %s (logs: <name>.log)" % self.base)


# --- CPU accounting from /proc ----------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """utime + stime of a process in seconds (None if gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children_of(ppid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        if int(s[s.rindex(")") + 2:].split()[1]) == ppid:
            out.append(int(d))
    return out


def pg_backend_name(pid):
    """A backend's title is "postgres: <user> <db> [local] <state>": group by the user
    (the service role, e.g. kesu_intake); other children (walwriter, ...) by their title."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            t = f.read().replace(b"\0", b" ").decode("utf-8", "replace").split()
    except OSError:
        return "postgres"
    if len(t) > 1 and t[1].startswith("kesu_"):
        return "postgres " + t[1]
    return "postgres (%s)" % " ".join(t[1:3]) if len(t) > 1 else "postgres"


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v) - idle) / TICK, sum(v) / TICK


def cpu_snapshot(sysm):
    snap = {}
    if sysm:
        for p in sysm.procs:
            snap[(p.name, p.pid)] = proc_cpu(p.pid)
        pm = sysm.postmaster_pid()
        if pm:
            snap[("postgres", pm)] = proc_cpu(pm)
            for c in children_of(pm):
                snap[(pg_backend_name(c), c)] = proc_cpu(c)
    snap[("bench (this script)", os.getpid())] = proc_cpu(os.getpid())
    return snap, machine_busy(), time.monotonic()


def cpu_report(before, after, ncpu):
    (s0, (b0, t0), w0), (s1, (b1, t1), w1) = before, after
    wall = w1 - w0
    groups = collections.defaultdict(float)
    hmax = ("", 0.0)
    for (name, pid), c1 in s1.items():
        if c1 is None:
            continue
        d = c1 - (s0.get((name, pid)) or 0.0)
        g = "handlers (all)" if name.startswith("handler-") else name
        groups[g] += d
        if name.startswith("postgres"):
            groups["= postgres total"] += d
        if name.startswith("handler-") and d > hmax[1]:
            hmax = (name, d)
    ours = sum(d for g, d in groups.items() if not g.startswith("="))
    log("CPU during the run (%.1f s wall, %d cores = %.0f %% max; 100 %% = one core busy):" %
        (wall, ncpu, 100 * ncpu))
    for g, d in sorted(groups.items(), key=lambda x: -x[1]):
        if d < 0.005 * wall:
            continue
        log("  %-22s %6.1f %%  (%.1f s)" % (g, 100 * d / wall, d))
    if hmax[0]:
        log("  busiest handler: %s %.1f %%" % (hmax[0], 100 * hmax[1] / wall))
    machine = b1 - b0
    log("  machine total busy %.1f %%; of which NOT this system (other work on the box): %.1f %%"
        % (100 * machine / wall, max(0.0, 100 * (machine - ours) / wall)))


# --- load -------------------------------------------------------------------------------

def make_bodies(total, provs, start=0):
    out = []
    nprov = len(provs)
    for i in range(start, start + total):
        _, _, _, codes = provs[i % nprov]
        r = codes[(i // nprov) % len(codes)]
        out.append(json.dumps({
            "channel": ("hotline", "website", "app", "hall")[i % 4],
            "customer": {"name": "压测用户%d" % i, "phone": "139%08d" % (i % 10**8),
                         "home_region": r, "address": "压测地址%d号" % i},
            "region": r, "business_type": "broadband", "problem_type": "network",
            "title": "宽带断网第%d号" % i, "content": "压测：家中宽带频繁掉线，影响办公，请尽快处理。",
        }, ensure_ascii=False).encode("utf-8"))
    return out


class Dispatched(threading.Thread):
    """WorkOrderDispatched from the router's PUB: when each order was first dispatched, how
    often, to which handler (bench/load.py uses it too)."""

    def __init__(self, endpoint):
        super().__init__(daemon=True)
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"WorkOrderDispatched")
        self.sock.setsockopt(zmq.RCVTIMEO, 200)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.connect(endpoint)
        self.at = {}  # order_no → first WorkOrderDispatched (monotonic)
        self.count = collections.Counter()  # order_no → how many WorkOrderDispatched
        self.handler = {}  # order_no → handler_id of the first
        self.running = True

    def run(self):
        env = envelope_pb2.Envelope()
        while self.running:
            try:
                frames = self.sock.recv_multipart()
            except zmq.Again:
                continue
            now = time.monotonic()
            if frames[0] != b"WorkOrderDispatched" or len(frames) < 2:
                continue
            env.ParseFromString(frames[1])
            o = env.order_no
            self.count[o] += 1
            if o not in self.at:
                self.at[o] = now
                self.handler[o] = env.work_order_dispatched.handler_id


CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)


async def read_reply(reader):
    """(status, body) of one HTTP/1.1 reply; the head in one read (the load generator's
    own CPU is taken from the system's). bench/load.py uses it too."""
    head = await reader.readuntil(b"\r\n\r\n")
    m = CONTENT_LENGTH.search(head)
    return int(head[9:12]), (await reader.readexactly(int(m.group(1))) if m else b"")


async def worker(port, token, bodies, queue, accepted, errors, pace=None):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while True:
        try:
            i = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        if pace:  # --rate: the i-th complaint is due at t0 + i / rate
            delay = pace[0] + i / pace[1] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        b = bodies[i]
        writer.write((b"POST /v1/complaints HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % (token.encode(), len(b))) + b)
        status, data = await read_reply(reader)
        if status == 201:
            accepted[json.loads(data)["order_no"]] = time.monotonic()
        else:
            errors.append((status, data[:200]))
    writer.close()


def pg_counters(sysm):
    """(commits, WAL syncs, WAL bytes) of the cluster so far, or None."""
    if not sysm:
        return None
    r = sysm.psql("SELECT (SELECT sum(xact_commit) FROM pg_stat_database), wal_sync, wal_bytes "
                  "FROM pg_stat_wal")
    try:
        return [float(x) for x in r.split("|")]
    except ValueError:
        return None


def pct(v, p):
    if not v:
        return float("nan")
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def warm_up(a, intake_port, token, provs, disp):
    """--warmup complaints (other phones than the measured ones) at a calm pace, waited for
    until dispatched: every handler's connections have prepared their statements and the
    backends touched their pages before the clock starts (the first second of a cold system
    otherwise sets the p99)."""
    bodies = make_bodies(a.warmup, provs, start=a.total)
    done, errors = {}, []
    q = asyncio.Queue()
    for i in range(a.warmup):
        q.put_nowait(i)

    async def go():
        pace = (time.monotonic(), 200.0)
        await asyncio.gather(*[worker(intake_port, token, bodies, q, done, errors, pace)
                               for _ in range(min(a.conns, 8))])
    t = time.monotonic()
    asyncio.run(go())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(o not in disp.at for o in done):
        time.sleep(0.1)
    log("warm-up: %d complaints (%d errors), %d dispatched, in %.1f s; not counted below"
        % (len(done), len(errors), sum(1 for o in done if o in disp.at), time.monotonic() - t))
    time.sleep(1.0)
    return set(done)


def run_load(a, intake_port, router_pub, token, provs, sysm):
    bodies = make_bodies(a.total, provs)
    disp = Dispatched(router_pub)
    disp.start()
    time.sleep(0.5)  # the SUB's subscription reaches the PUB
    warm = warm_up(a, intake_port, token, provs, disp) if a.warmup > 0 else set()
    accepted, errors = {}, []
    q = asyncio.Queue()
    for i in range(a.total):
        q.put_nowait(i)

    async def go():
        pace = (time.monotonic(), a.rate) if a.rate > 0 else None
        await asyncio.gather(*[worker(intake_port, token, bodies, q, accepted, errors, pace)
                               for _ in range(a.conns)])

    log("submitting %d complaints (%d provinces, round robin) over %d connections to "
        "http://127.0.0.1:%d %s..." % (a.total, len(provs), a.conns, intake_port,
                                       "at %g/s " % a.rate if a.rate > 0 else "at full speed "))
    before = cpu_snapshot(sysm)
    pg0 = pg_counters(sysm)
    top = []

    def sample_top():  # one `top` snapshot a few seconds in: what else runs on the box
        time.sleep(min(3.0, a.total / 2000.0))
        r = subprocess.run(["top", "-b", "-n", "1", "-w", "160"], capture_output=True, text=True)
        top.extend(r.stdout.splitlines()[:22])
    if a.top:
        threading.Thread(target=sample_top, daemon=True).start()
    t0 = time.monotonic()
    asyncio.run(go())
    t1 = time.monotonic()
    log("accepted %d in %.2f s = %.0f complaints/s (%d errors%s)" % (
        len(accepted), t1 - t0, len(accepted) / (t1 - t0), len(errors),
        (", first: %r" % (errors[0],)) if errors else ""))
    deadline = time.monotonic() + a.drain
    while (time.monotonic() < deadline and
           sum(1 for o in accepted if o in disp.at) < len(accepted)):
        time.sleep(0.1)
    after = cpu_snapshot(sysm)
    pg1 = pg_counters(sysm)
    time.sleep(1.0)  # a late duplicate would show up here
    disp.running = False
    disp.join()

    got = [o for o in accepted if o in disp.at]
    lat = sorted((disp.at[o] - accepted[o]) * 1000 for o in got)
    if got:
        first = min(disp.at[o] for o in got)
        last = max(disp.at[o] for o in got)
        log("dispatched %d/%d; %.0f orders/s dispatched (first POST to last dispatch, %.2f s); "
            "%.0f/s between first and last dispatch" % (
                len(got), len(accepted), len(got) / (last - t0), last - t0,
                len(got) / max(1e-9, last - first)))
        # Throughput in steady state: per-second histogram of dispatches.
        per_s = collections.Counter(int(disp.at[o] - t0) for o in got)
        log("dispatches per second of the run: %s" % " ".join(
            str(per_s.get(s, 0)) for s in range(int(last - t0) + 1)))
    else:
        log("dispatched 0/%d" % len(accepted))
    log("201 → WorkOrderDispatched latency: p50 %.1f ms  p95 %.1f ms  p99 %.1f ms  max %.1f ms"
        % (pct(lat, 50), pct(lat, 95), pct(lat, 99), lat[-1] if lat else float("nan")))
    dups = {o: n for o, n in disp.count.items() if n > 1}
    strays = [o for o in disp.count if o not in accepted and o not in warm]
    log("exactly once (events): %d distinct orders dispatched of %d accepted; %d with more than "
        "one WorkOrderDispatched; %d never dispatched; %d events for orders not of this run"
        % (len(got), len(accepted), len(dups), len(accepted) - len(got), len(strays)))
    per_h = collections.Counter(disp.handler[o] for o in got)
    if per_h:
        v = sorted(per_h.values())
        log("orders per handler: %d handlers got orders, min %d, median %d, max %d" % (
            len(per_h), v[0], v[len(v) // 2], v[-1]))
        pairs = collections.defaultdict(list)  # h-<unit>-<k> → the unit's handlers' counts
        for h, n in per_h.items():
            pairs[h.rsplit("-", 1)[0]].append(n)
        shares = sorted(max(c) / sum(c) for c in pairs.values() if len(c) > 1)
        if shares:
            log("spread within a province: the busiest of its handlers got %.0f–%.0f %% "
                "(median %.0f %%) of the province's orders" % (
                    100 * shares[0], 100 * shares[-1], 100 * shares[len(shares) // 2]))
    if sysm:
        r = sysm.psql("SELECT count(*), count(DISTINCT order_no), "
                      "count(*) FILTER (WHERE cardinality(former_handlers) > 0) "
                      "FROM handler.orders")
        log("exactly once (database): handler.orders rows, distinct orders, re-dispatched: %s"
            % r.replace("|", ", "))
        r = sysm.psql("SELECT count(*) FROM (SELECT order_no FROM router.dispatches "
                      "GROUP BY order_no HAVING count(DISTINCT dispatch_id) > 1) x")
        log("router.dispatches: orders with more than one dispatch_id: %s" % r)
        cpu_report(before, after, os.cpu_count())
        if pg0 and pg1 and got:
            d = [y - x for x, y in zip(pg0, pg1)]
            log("Postgres during the run, per dispatched order (its statistics are flushed lazily:"
                " approximate): %.1f commits, %.1f WAL syncs "
                "(fsync), %.1f kB WAL" % (d[0] / len(got), d[1] / len(got),
                                         d[2] / 1024.0 / len(got)))
        if a.pg_stats:
            log("Postgres statements by total time (pg_stat_statements, whole life of the system):")
            print(sysm.psql(
                "SELECT rpad(r.rolname, 14) || lpad(round(s.total_exec_time)::text, 7) || ' ms ' "
                "|| lpad(s.calls::text, 7) || ' calls  ' || "
                "left(regexp_replace(s.query, '\\s+', ' ', 'g'), 110) FROM pg_stat_statements s "
                "JOIN pg_roles r ON r.oid = s.userid ORDER BY s.total_exec_time DESC LIMIT %d"
                % a.pg_stats))
    if top:
        log("top -b -n 1 during the run:")
        for line in top:
            print("    " + line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--total", type=int, default=20000)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--per-province", type=int, default=2, help="handlers per province")
    ap.add_argument("--drain", type=float, default=60, help="seconds to wait for the last "
                    "dispatches after the last 201")
    ap.add_argument("--warmup", type=int, default=620, help="first submit this many complaints "
                    "at 200/s and wait until they are dispatched, not measured (default 620: ten "
                    "per handler; 0: measure a cold system)")
    ap.add_argument("--rate", type=float, default=0, help="offer this many complaints per "
                    "second (default: as fast as the connections go): latency below saturation")
    ap.add_argument("--no-extras", action="store_true", help="start only intake, router and the "
                    "handlers (no sla, notifier, analytics)")
    ap.add_argument("--top", action="store_true", help="also print one `top -b -n 1` snapshot "
                    "taken during the run")
    ap.add_argument("--idle", type=float, default=0, help="first measure the CPU the idle "
                    "system uses over this many seconds")
    ap.add_argument("--pg-stats", type=int, default=0, metavar="N", help="load pg_stat_statements "
                    "and print the N statements that took the most time")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, cluster)")
    ap.add_argument("--attach", action="store_true", help="use a running system (make run with "
                    "its handlers) instead of starting one")
    ap.add_argument("--offset", type=int, default=int(os.environ.get("KESU_PORT_OFFSET", "0")),
                    help="with --attach: its KESU_PORT_OFFSET")
    ap.add_argument("--token-file", help="with --attach: admin token (default var/admin[-OFF].token)")
    a = ap.parse_args()
    provs = provinces()
    if len(provs) != 31:
        log("note: data/units.csv has %d province units (expected 31)" % len(provs))

    if a.attach:
        tf = a.token_file or os.path.join(ROOT, "var", "admin.token" if a.offset == 0
                                          else "admin-%d.token" % a.offset)
        token = open(tf).read().strip()
        run_load(a, 8080 + a.offset, "tcp://127.0.0.1:%d" % (7110 + a.offset), token, provs,
                 None)
        return 0

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started in the background (SIG_IGN)
    sysm = None
    try:
        sysm = System(a, provs)
        sysm.start()
        if a.idle > 0:
            log("idle for %.0f s (no load): what the system costs doing nothing" % a.idle)
            before = cpu_snapshot(sysm)
            time.sleep(a.idle)
            cpu_report(before, cpu_snapshot(sysm), os.cpu_count())
        run_load(a, HTTP_PORT["intake"] + sysm.offset,
                 "tcp://127.0.0.1:%d" % (7110 + sysm.offset), sysm.token, provs, sysm)
        dead = [p.name for p in sysm.procs if not p.alive()]
        if dead:
            log("processes that died during the run: %s" % ", ".join(dead))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if sysm:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip this
            log("stopping what it started")
            sysm.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
