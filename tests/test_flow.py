"""Issue 2, test 1: one complaint through all six services."""
import json
import threading
import time

import requests

from conftest import complaint, wait_for
from streams import Subscriber


class SseReader:
    def __init__(self, url, token):
        self.events = []
        self.resp = requests.get(url, headers={"Authorization": "Bearer " + token,
                                               "Accept": "text/event-stream"},
                                 stream=True, timeout=60)
        assert self.resp.status_code == 200, self.resp.text
        assert self.resp.headers["Content-Type"].startswith("text/event-stream")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        ev = {}
        try:
            for raw in self.resp.iter_lines(decode_unicode=False):
                line = raw.decode("utf-8")
                if not line:
                    if "data" in ev:
                        self.events.append(ev)
                    ev = {}
                elif line.startswith(":"):
                    continue
                else:
                    k, _, v = line.partition(":")
                    ev[k] = v[1:] if v.startswith(" ") else v
        except Exception:
            pass

    def close(self):
        self.resp.close()


def test_one_complaint_end_to_end(system):
    off = system.offset
    sub = Subscriber("tcp://127.0.0.1:%d" % (7100 + off))
    before = system.get("analytics", "/v1/kpi/summary?region=110000").json()
    sse = SseReader(system["analytics"].url("/v1/stream"), system.admin)
    try:
        body = complaint(region="110105", customer={"name": "王芳", "phone": "13912345678",
                                                    "home_region": "110105"},
                         title="手机信号差", content="小区里手机信号一直很差，打电话经常掉线。")
        r = system.post("intake", "/v1/complaints", body)
        assert r.status_code == 201, r.text
        ans = r.json()
        order_no = ans["order_no"]
        assert ans["accepted_at"].endswith("+08:00") and ans["promised_by"].endswith("+08:00")

        # intake has it, Chinese text intact
        got = system.get("intake", "/v1/complaints/" + order_no).json()
        assert got["content"] == body["content"]
        assert got["customer"]["name"] == "王芳"

        # a Python subscriber decodes the protobuf envelope from intake's PUB
        ev = wait_for(lambda: sub.of("ComplaintReceived", order_no), what="ComplaintReceived")[0]
        assert ev.producer == "intake" and ev.seq > 0
        assert ev.complaint_received.complaint.title == "手机信号差"
        assert ev.complaint_received.complaint.customer.phone == "13912345678"

        # router → handler: it is in the workbench queue
        def in_queue():
            q = system.get("handler", "/v1/queue").json()
            return [o for o in q["orders"] if o["order_no"] == order_no]
        wait_for(in_queue, what="order in handler queue")
        wo = wait_for(lambda: (lambda j: j if j.get("state") == "dispatched" else None)(
            system.get("router", "/v1/orders/" + order_no).json()), what="dispatched")
        assert wo["unit_id"]

        # an open SLA timer
        t = wait_for(lambda: system.get("sla", "/v1/timers/" + order_no).json()
                     if system.get("sla", "/v1/timers/" + order_no).status_code == 200 else None,
                     what="sla timer")
        assert t["timers"][0]["state"] == "open"

        # exactly one SMS receipt with the order number
        wait_for(lambda: system.sms.for_order(order_no), what="SMS receipt")
        time.sleep(0.5)
        sms = system.sms.for_order(order_no)
        assert len(sms) == 1
        assert sms[0]["body"]["to"] == "13912345678"
        assert order_no in sms[0]["body"]["text"]
        promised = ans["promised_by"][:16].replace("T", " ")  # "2026-11-24 10:00"
        assert promised in sms[0]["body"]["text"]

        # close it at the handler
        r = system.post("handler", "/v1/orders/%s/actions" % order_no,
                        {"action": "close", "answer": "已派人修复基站，信号恢复正常。"})
        assert r.status_code in (200, 202), r.text
        wait_for(lambda: system.get("router", "/v1/orders/" + order_no).json()["state"] == "closed",
                 what="closed at router")
        wait_for(lambda: system.get("sla", "/v1/timers/" + order_no).json()["timers"][0]["state"]
                 == "closed", what="timer cleared")

        # analytics counted it
        def counted():
            s = system.get("analytics", "/v1/kpi/summary?region=110000").json()
            return s if (s["received"] == before["received"] + 1
                         and s["closed"] == before["closed"] + 1) else None
        wait_for(counted, what="analytics counts")

        # the SSE stream carried its events
        def sse_has():
            types = {e.get("event") for e in sse.events
                     if json.loads(e["data"]).get("order_no") == order_no}
            return {"ComplaintReceived", "WorkOrderClosed"} <= types
        wait_for(sse_has, what="SSE events")
    finally:
        sse.close()
        sub.close()


def test_summary_filters_by_region_and_sse_takes_access_token(system):
    # Query parameters reach the handlers: a region with no complaints counts 0
    # while the whole country does not.
    everything = system.get("analytics", "/v1/kpi/summary").json()
    xinjiang = system.get("analytics", "/v1/kpi/summary?region=650000").json()
    assert everything["received"] > 0
    assert xinjiang["received"] == 0
    # EventSource cannot send headers: the token may come as ?access_token=.
    r = requests.get(system["analytics"].url("/v1/stream?access_token=" + system.admin),
                     stream=True, timeout=10)
    assert r.status_code == 200
    r.close()
