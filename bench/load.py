#!/usr/bin/python3
"""Load generator: submits complaints over HTTP with N concurrent keep-alive
connections and reports accepted complaints/s and the latency from the 201
to "dispatched to a handler" (WorkOrderDispatched on the router's PUB).

  /usr/bin/python3 bench/load.py [--total 20000] [--conns 32] [--url http://127.0.0.1:8080]
                                 [--token-file var/admin.token] [--router-pub tcp://127.0.0.1:7110]

Runs against a live system (`make run`). Prints numbers; asserts nothing."""
import argparse
import asyncio
import json
import os
import random
import sys
import time
from urllib.parse import urlparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "build", "gen", "py"))

from dispatch import Dispatched, read_reply  # noqa: E402  (bench/dispatch.py)

REGIONS = ["310115", "310104", "110105", "110108", "440305", "440103"]


def body(i):
    r = random.choice(REGIONS)
    return json.dumps({
        "channel": random.choice(["hotline", "website", "app", "hall"]),
        "customer": {"name": "压测用户%d" % i, "phone": "138%08d" % (i % 10**8), "home_region": r,
                     "address": "压测地址%d号" % i},
        "region": r, "business_type": "broadband", "problem_type": "network",
        "title": "宽带断网第%d号" % i, "content": "压测：家中宽带频繁掉线，影响办公，请尽快处理。",
    }, ensure_ascii=False).encode("utf-8")


async def worker(host, port, token, queue, accepted, errors):
    reader, writer = await asyncio.open_connection(host, port)
    while True:
        try:
            i = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        b = body(i)
        req = (b"POST /v1/complaints HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % (host.encode(), token.encode(), len(b))) + b
        writer.write(req)
        status, data = await read_reply(reader)
        if status == 201:
            accepted[json.loads(data)["order_no"]] = time.monotonic()
        else:
            errors.append((status, data[:200]))
    writer.close()


def pct(v, p):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def main():
    ap = argparse.ArgumentParser()
    off = int(os.environ.get("KESU_PORT_OFFSET", "0"))
    ap.add_argument("--total", type=int, default=20000)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--url", default="http://127.0.0.1:%d" % (8080 + off))
    ap.add_argument("--router-pub", default="tcp://127.0.0.1:%d" % (7110 + off))
    ap.add_argument("--token-file", default=os.path.join(
        ROOT, "var", "admin.token" if off == 0 else "admin-%d.token" % off))
    ap.add_argument("--token", default=os.environ.get("KESU_TOKEN"))
    a = ap.parse_args()
    token = a.token or open(a.token_file).read().strip()
    u = urlparse(a.url)
    disp = Dispatched(a.router_pub)
    disp.start()
    time.sleep(0.5)

    accepted, errors = {}, []
    q = asyncio.Queue()
    for i in range(a.total):
        q.put_nowait(i)

    async def run():
        await asyncio.gather(*[worker(u.hostname, u.port, token, q, accepted, errors)
                               for _ in range(a.conns)])

    print("submitting %d complaints over %d connections to %s ..." % (a.total, a.conns, a.url),
          flush=True)
    t0 = time.monotonic()
    asyncio.run(run())
    t1 = time.monotonic()
    print("accepted %d in %.2f s = %.0f complaints/s (%d errors%s)" % (
        len(accepted), t1 - t0, len(accepted) / (t1 - t0), len(errors),
        (": %r" % (errors[0],)) if errors else ""), flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(1 for o in accepted if o in disp.at) < len(accepted):
        time.sleep(0.2)
    disp.running = False
    lat = [(disp.at[o] - t) * 1000 for o, t in accepted.items() if o in disp.at]
    last = max(disp.at[o] for o in accepted if o in disp.at) if lat else t1
    print("dispatched %d/%d; end to end %.0f complaints/s (first POST to last dispatch)" % (
        len(lat), len(accepted), len(lat) / (last - t0)))
    print("201 → dispatched latency: p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms" % (
        pct(lat, 50), pct(lat, 90), pct(lat, 99), max(lat) if lat else float("nan")))


if __name__ == "__main__":
    main()
