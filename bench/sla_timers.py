#!/usr/bin/python3
"""SLA watcher bench (issue 4): 1,000,000 open timers — resident memory, the
lag from due time to the SlaBreached event at 2,000 expiries/s (p50/p99/max,
measured where a consumer receives it, on sla's PUB) and the restart time
until every timer is back in memory.

  KESU_PG_ADMIN="host=... port=... dbname=kesu user=postgres" \\
  /usr/bin/python3 bench/sla_timers.py [--timers 1000000] [--rate 2000] [--fire 20000]
                                       [--bin build/bin/kesu-sla]

Needs a migrated database (`kesuctl migrate && kesuctl load`) that no running
sla uses: it empties sla.timers/supervision/ledger. Runs the real kesu-sla
binary on the real clock, with a stand-in for the router's stream (an empty
replay endpoint) so the watcher is caught up at once. Prints numbers;
asserts nothing."""
import argparse
import os
import random
import re
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "build", "gen", "py"))

import psycopg2  # noqa: E402
import requests  # noqa: E402
import zmq  # noqa: E402
from kesu.v1 import envelope_pb2  # noqa: E402


def fake_router(ctx, pub_ep, replay_ep, stop):
    """The router's stream with nothing in it: replay answers 'EVENTS 0',
    the PUB sends the heartbeat."""
    rep = ctx.socket(zmq.ROUTER)
    rep.bind(replay_ep)
    pub = ctx.socket(zmq.PUB)
    pub.bind(pub_ep)
    poller = zmq.Poller()
    poller.register(rep, zmq.POLLIN)
    last = 0
    while not stop.is_set():
        if dict(poller.poll(100)).get(rep):
            frames = rep.recv_multipart()
            if len(frames) >= 2 and frames[1] == b"REPLAY":
                rep.send_multipart([frames[0], b"EVENTS", b"0"])
        if time.time() - last > 1:
            pub.send_multipart([b"_head", b"router", b"0"])
            last = time.time()
    rep.close(0)
    pub.close(0)


def metric(url, name):
    try:
        text = requests.get(url + "/metrics", timeout=2).text
    except requests.RequestException:
        return None
    m = re.search(r"^%s (\d+)" % name, text, re.M)
    return int(m.group(1)) if m else None


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def start_sla(args, env, url):
    log = open(args.log, "ab")
    t0 = time.time()
    p = subprocess.Popen([args.bin], env=env, stdout=log, stderr=log)
    while True:
        n = metric(url, "kesu_sla_open_timers")
        if n is not None and n >= args.expect:
            return p, time.time() - t0
        if p.poll() is not None:
            sys.exit("kesu-sla exited; see %s" % args.log)
        if time.time() - t0 > 300:
            sys.exit("kesu-sla did not load its timers in 300 s")
        time.sleep(0.05)


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timers", type=int, default=1000000)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--fire", type=int, default=20000)
    ap.add_argument("--lead", type=float, default=0, help="seconds before the first expiry "
                    "(default: measured load time + 5 s)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin", "kesu-sla"))
    ap.add_argument("--log", default="/tmp/kesu-bench-sla.log")
    args = ap.parse_args()
    admin = os.environ.get("KESU_PG_ADMIN")
    if not admin:
        sys.exit("KESU_PG_ADMIN is not set")
    base = re.sub(r"\buser=\S+", "", admin).strip()
    off = random.randrange(20000, 40000, 10)
    env = dict(os.environ, KESU_PG=base, KESU_PORT_OFFSET=str(off), KESU_CLOCK="real",
               KESU_ROUTER_PUB="tcp://127.0.0.1:%d" % (7110 + off),
               KESU_ROUTER_REPLAY="tcp://127.0.0.1:%d" % (7111 + off))
    url = "http://127.0.0.1:%d" % (8084 + off)
    ctx = zmq.Context.instance()
    stop = threading.Event()
    threading.Thread(target=fake_router, args=(ctx, env["KESU_ROUTER_PUB"],
                                               env["KESU_ROUTER_REPLAY"], stop),
                     daemon=True).start()

    db = psycopg2.connect(admin)
    db.autocommit = True
    cur = db.cursor()
    n, nfire = args.timers, min(args.fire, args.timers)
    print("setting up %d timers (%d to expire at %d/s) ..." % (n, nfire, args.rate), flush=True)
    t = time.time()
    cur.execute("TRUNCATE sla.timers, sla.supervision, sla.ledger")
    # The background: open timers due in 10 days, already warned (one fire left).
    cur.execute("""INSERT INTO sla.timers (order_no, step, unit_id, region, started_at, warn_at,
                   due_at, limit_seconds, warned_at, limit_unit)
                   SELECT 'KS20261123' || lpad(i::text, 10, '0'), 'answer', 'sh-pd', '310115',
                          now(), now() + interval '9 days', now() + interval '10 days', 864000,
                          now(), 'clock_hours'
                   FROM generate_series(1, %s) i""", (n - nfire,))
    cur.execute("VACUUM ANALYZE sla.timers")  # as autovacuum would have, long before a restart
    print("  %.1f s" % (time.time() - t), flush=True)

    # First start: how long until the timers are in memory, and the memory.
    args.expect = n - nfire
    p, load_s = start_sla(args, env, url)
    print("start with %d timers: loaded in %.2f s, RSS %.0f MB" % (args.expect, load_s,
                                                                  rss_mb(p.pid)), flush=True)
    p.terminate()
    p.wait()

    # The expiring ones, due at `rate`/s starting after the load time.
    lead = args.lead or load_s * 1.5 + 5
    t0_ms = int((time.time() + lead) * 1000)
    cur.execute("""INSERT INTO sla.timers (order_no, step, unit_id, region, started_at, warn_at,
                   due_at, limit_seconds, warned_at, limit_unit)
                   SELECT 'KS20261124' || lpad(i::text, 10, '0'), 'answer', 'sh-pd', '310115',
                          now(), now(), to_timestamp((%s + (i * 1000) / %s) / 1000.0), 86400,
                          now(), 'clock_hours'
                   FROM generate_series(0, %s - 1) i""", (t0_ms, args.rate, nfire))
    cur.execute("VACUUM ANALYZE sla.timers")
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"SlaBreached")
    sub.setsockopt(zmq.RCVTIMEO, 500)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.connect("tcp://127.0.0.1:%d" % (7120 + off))
    args.expect = n
    p, load_s = start_sla(args, env, url)
    print("restart with %d timers: all in memory after %.2f s, RSS %.0f MB" % (
        n, load_s, rss_mb(p.pid)), flush=True)
    lags = []
    deadline = t0_ms / 1000.0 + nfire / args.rate + 60
    peak = 0.0
    while len(lags) < nfire and time.time() < deadline:
        try:
            frames = sub.recv_multipart()
        except zmq.Again:
            continue
        now_ms = time.time() * 1000
        env_ = envelope_pb2.Envelope()
        env_.ParseFromString(frames[1])
        lags.append(now_ms - env_.sla_breached.due_at)
        if len(lags) % 1000 == 0:
            peak = max(peak, rss_mb(p.pid))
    print("expiries: %d of %d events received at %d/s; lag due → event received: "
          "p50 %.0f ms, p99 %.0f ms, max %.0f ms; RSS %.0f MB" % (
              len(lags), nfire, args.rate, pct(lags, 0.5), pct(lags, 0.99),
              max(lags) if lags else float("nan"), max(peak, rss_mb(p.pid))), flush=True)
    p.terminate()
    p.wait()
    stop.set()
    sub.close(0)


if __name__ == "__main__":
    main()
