#!/usr/bin/python3
"""Ingest bench for kesu-analytics (issue 6: ≥ 20,000 events/s).

Starts a throw-away Postgres (the e2e harness in tests/conftest.py), migrates
it, and runs ONE kesu-analytics against three fake producers (intake, router,
sla) served from this script over ZeroMQ with the real stream protocol
(docs/internals.md "Streams": PUB heads + REPLAY/EVENTS). The fake producers
hold pre-built envelopes for --orders work orders: ComplaintReceived (intake),
WorkOrderCreated, WorkOrderStepChanged(dispatch), WorkOrderClosed (router) and
an SlaWarning for every 5th order (sla). analytics replays them all from offset
0 through its consumers — every fact upsert and every rollup update, in the
consumers' batch transactions — and the bench reports events/s from the
process start to the moment /metrics shows every offset at its head.

  /usr/bin/python3 bench/analytics_ingest.py [--orders 20000]

Keep it short on a shared machine: 20,000 orders ≈ 64,000 events. Prints
numbers; asserts nothing."""
import argparse
import os
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import requests  # noqa: E402
import zmq  # noqa: E402

import conftest  # noqa: E402  (sets up sys.path for the generated protobuf classes)
from kesu.v1 import envelope_pb2, events_pb2  # noqa: E402


def build(n, t0):
    intake, router, sla = [], [], []

    def env(lst, producer, type_, no, region, at, field, msg):
        e = envelope_pb2.Envelope(producer=producer, seq=len(lst) + 1, event_id="%s-%d" % (
            producer, len(lst) + 1), type=type_, occurred_at=at, order_no=no, region=region)
        getattr(e, field).CopyFrom(msg)
        lst.append(e.SerializeToString())

    regions = ["310115", "320500", "440100", "110105", "330100"]
    for i in range(n):
        no = "KSB%012d" % i
        region = regions[i % 5]
        at = t0 + i * 1000
        c = events_pb2.Complaint(order_no=no, kind=1, stream=1, channel=1 + i % 10, accepted_at=at,
                                 region=region, business_type=["mobile", "broadband", "iptv"][i % 3],
                                 problem_type="network", title="宽带断网", tier=1,
                                 promised_by=at + 86400000)
        c.customer.level = ["", "gold"][i % 2]
        env(intake, "intake", "ComplaintReceived", no, region, at, "complaint_received",
            events_pb2.ComplaintReceived(complaint=c))
        env(router, "router", "WorkOrderCreated", no, region, at + 10, "work_order_created",
            events_pb2.WorkOrderCreated(order_no=no, unit_id="u%d" % (i % 20), tier=1, kind=1,
                                        accepted_at=at, promised_by=at + 86400000, region=region,
                                        channel=1 + i % 10, business_type="mobile", stream=1))
        env(router, "router", "WorkOrderStepChanged", no, region, at + 20,
            "work_order_step_changed",
            events_pb2.WorkOrderStepChanged(order_no=no, action="dispatch", from_state="accepted",
                                            to_state="dispatched", holder_unit="u%d" % (i % 20),
                                            at=at + 20))
        if i % 5 == 0:
            env(sla, "sla", "SlaWarning", no, region, at + 30, "sla_warning",
                events_pb2.SlaWarning(order_no=no, step=3, unit_id="u%d" % (i % 20),
                                      started_at=at, due_at=at + 3600000, limit_seconds=3600))
        if i % 4:
            env(router, "router", "WorkOrderClosed", no, region, at + 40, "work_order_closed",
                events_pb2.WorkOrderClosed(order_no=no, unit_id="u%d" % (i % 20),
                                           closed_at=at + 40 + (i % 97) * 60000, accepted_at=at))
    return {"intake": intake, "router": router, "sla": sla}


class Producer(threading.Thread):
    def __init__(self, name, events, pub, rep):
        super().__init__(daemon=True)
        self.name_, self.events = name, events
        ctx = zmq.Context.instance()
        self.pub = ctx.socket(zmq.PUB)
        self.pub.bind(pub)
        self.rep = ctx.socket(zmq.ROUTER)
        self.rep.bind(rep)
        self.running = True

    def run(self):
        head = str(len(self.events)).encode()
        last = 0
        while self.running:
            if time.time() - last > 0.5:
                self.pub.send_multipart([b"_head", self.name_.encode(), head])
                last = time.time()
            if not self.rep.poll(50):
                continue
            frames = self.rep.recv_multipart()
            ident, req = frames[0], frames[1:]
            if len(req) < 3 or req[0] != b"REPLAY":
                continue
            after, mx = int(req[1]), int(req[2])
            self.rep.send_multipart([ident, b"EVENTS", head] + self.events[after:after + mx])


def offsets(url):
    text = requests.get(url + "/metrics", timeout=2).text
    return {m.group(1): int(m.group(2)) for m in
            re.finditer(r'kesu_analytics_consumer_offset\{producer="(\w+)"\} (\d+)', text)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=20000)
    a = ap.parse_args()
    s = conftest.System()
    try:
        t0 = int(time.time() * 1000) - a.orders * 1000
        ev = build(a.orders, t0)
        total = sum(len(v) for v in ev.values())
        base = 20000 + s.offset % 20000
        env = {}
        prods = []
        for k, name in enumerate(("intake", "router", "sla")):
            pub = "tcp://127.0.0.1:%d" % (base + 2 * k)
            rep = "tcp://127.0.0.1:%d" % (base + 2 * k + 1)
            env["KESU_%s_PUB" % name.upper()] = pub
            env["KESU_%s_REPLAY" % name.upper()] = rep
            p = Producer(name, ev[name], pub, rep)
            p.start()
            prods.append(p)
        svc = conftest.Service(s, "analytics", env)
        start = time.time()
        svc.start(wait=False)
        url = svc.url("")
        want = {k: len(v) for k, v in ev.items()}
        got = {}
        while time.time() - start < 60:
            try:
                got = offsets(url)
            except requests.RequestException:
                pass
            if got == want:
                break
            time.sleep(0.05)
        took = time.time() - start
        rows = s.pg.scalar("SELECT count(*) FROM analytics.orders")
        print("analytics ingest: %d events (%d orders; %s) in %.2f s → %.0f events/s%s" % (
            total, rows, ", ".join("%s %d" % kv for kv in sorted(want.items())), took,
            total / took, "" if got == want else " — DID NOT FINISH: %r" % got))
        if got != want:
            print(svc.tail(3000))
        svc.stop()
        for p in prods:
            p.running = False
    finally:
        s.shutdown()


if __name__ == "__main__":
    main()
