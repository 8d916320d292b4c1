#!/usr/bin/python3
"""Notifier bench (issue 5): how many notifications per second the sender
delivers to a local HTTP SMS gateway (curl multi on the libevent loop,
keep-alive, 64 transfers in flight), and that each is delivered exactly once.

  KESU_PG_ADMIN="host=... port=... dbname=kesu user=postgres" \\
  /usr/bin/python3 bench/notify_load.py [--total 20000] [--bin build/bin/kesu-notifier]

Needs a migrated database (`kesuctl migrate && kesuctl load`) with no notifier
running on it. Runs the real kesu-notifier binary with KESU_SMS_URL pointing
at an asyncio HTTP/1.1 gateway started here (it dedupes by Idempotency-Key
like a provider and counts requests and distinct keys), inserts --total
pending deliveries in one transaction and times them until the last one is
'sent'. Prints numbers; asserts nothing."""
import argparse
import asyncio
import os
import random
import subprocess
import sys
import threading
import time

import psycopg2
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Gateway:
    def __init__(self):
        self.requests = 0
        self.keys = {}
        self.first = self.last = None
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def handle(reader, writer):
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length, key = 0, None
                    for line in head.split(b"\r\n"):
                        k, _, v = line.partition(b":")
                        k = k.strip().lower()
                        if k == b"content-length":
                            length = int(v)
                        elif k == b"idempotency-key":
                            key = v.strip().decode()
                    if length:
                        await reader.readexactly(length)
                    now = time.time()
                    self.first = self.first or now
                    self.last = now
                    self.requests += 1
                    self.keys[key] = self.keys.get(key, 0) + 1
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: 11\r\n\r\n{\"ok\":true}")
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        async def main():
            self.server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            await self.server.serve_forever()

        threading.Thread(target=lambda: self.loop.run_until_complete(main()), daemon=True).start()
        ready.wait()
        self.url = "http://127.0.0.1:%d/sms" % self.port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--total", type=int, default=20000)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin", "kesu-notifier"))
    ap.add_argument("--kill", action="store_true",
                    help="SIGKILL the notifier when a third is sent, restart it at once")
    args = ap.parse_args()
    admin = os.environ.get("KESU_PG_ADMIN")
    if not admin:
        sys.exit("set KESU_PG_ADMIN (superuser conninfo of a migrated kesu database)")
    gw = Gateway()
    offset = random.randrange(20000, 40000, 10)
    env = dict(os.environ)
    env.update({"KESU_PG": admin.replace("user=postgres", "").strip(), "KESU_SMS_URL": gw.url,
                "KESU_PORT_OFFSET": str(offset), "KESU_CLOCK": "real",
                "KESU_NOTIFY_RATE_PER_MINUTE": "0", "KESU_NOTIFY_QUIET_HOURS": "00:00-00:00"})
    db = psycopg2.connect(admin)
    db.autocommit = True
    cur = db.cursor()
    run = "bench-%d" % int(time.time())
    log = open("/tmp/notify_bench.log", "wb")

    def start():
        p = subprocess.Popen([args.bin], env=env, stdout=subprocess.DEVNULL, stderr=log)
        url = "http://127.0.0.1:%d/healthz" % (8083 + offset)
        for _ in range(100):
            try:
                if requests.get(url, timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        return p

    proc = start()
    killed = None
    try:
        time.sleep(0.5)
        t0 = time.time()
        cur.execute("INSERT INTO notify.deliveries (delivery_key, order_no, event_type, recipient,"
                    " channel, body, status, next_attempt_at)"
                    " SELECT %s || ':' || i, 'BENCH' || i, 'Bench', '138' || lpad(i::text, 8, '0'),"
                    " 'sms', '【客诉】压测短信第' || i || '条', 'pending', now()"
                    " FROM generate_series(1, %s) i", (run, args.total))
        t1 = time.time()
        while True:
            cur.execute("SELECT count(*) FROM notify.deliveries WHERE delivery_key LIKE %s"
                        " AND status = 'sent'", (run + ":%",))
            done = cur.fetchone()[0]
            if args.kill and killed is None and gw.requests >= args.total // 3:
                proc.kill()
                proc.wait()
                cur.execute("SELECT count(*) FROM notify.deliveries WHERE delivery_key LIKE %s"
                            " AND status = 'sending'", (run + ":%",))
                killed = cur.fetchone()[0]
                proc = start()
            if done >= args.total or time.time() - t1 > 300:
                break
            time.sleep(0.05)
        t2 = time.time()
        keys = {k: n for k, n in gw.keys.items() if k and k.startswith(run + ":")}
        twice = sum(1 for n in keys.values() if n > 1)
        span = (gw.last - gw.first) if gw.first and gw.last else 0
        print("notifications:        %d (inserted in %.2f s)" % (args.total, t1 - t0))
        print("all 'sent' after:     %.2f s  → %.0f notifications/s end to end" %
              (t2 - t1, done / (t2 - t1)))
        print("gateway requests:     %d over %.2f s → %.0f requests/s" %
              (gw.requests, span, gw.requests / span if span else 0))
        if killed is not None:
            print("SIGKILLed with %d deliveries 'sending'; restarted (time includes restart)"
                  % killed)
        print("distinct keys:        %d; requested more than once: %d (resent with the same"
              " key, deduped by the gateway); rows sent: %d" % (len(keys), twice, done))
        cur.execute("DELETE FROM notify.deliveries WHERE delivery_key LIKE %s", (run + ":%",))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
