"""Issue 2, test 2: SLA timers with the controllable clock (general tier: 24 h,
warning at 90 % = 21 h 36 min); a closed order gets neither event."""
import time

from conftest import complaint, wait_for
from streams import Subscriber


def timer(system, order_no):
    r = system.get("sla", "/v1/timers/" + order_no)
    return r.json()["timers"][0] if r.status_code == 200 else None


def test_warning_at_90_percent_and_breach_at_100(system):
    sub = Subscriber("tcp://127.0.0.1:%d" % (7120 + system.offset))
    try:
        open_no = system.post("intake", "/v1/complaints", complaint()).json()["order_no"]
        closed_no = system.post("intake", "/v1/complaints",
                                complaint(title="账单多扣费")).json()["order_no"]
        for no in (open_no, closed_no):
            wait_for(lambda: timer(system, no), what="timer for " + no)
        wait_for(lambda: any(o["order_no"] == closed_no
                             for o in system.get("handler", "/v1/queue").json()["orders"]),
                 what="order at handler")
        r = system.post("handler", "/v1/orders/%s/actions" % closed_no,
                        {"action": "close", "answer": "已退还多扣费用。"})
        assert r.status_code in (200, 202), r.text
        wait_for(lambda: timer(system, closed_no)["state"] == "closed", what="closed timer")

        # Just before 90 %: nothing.
        system.advance(21 * 3600 + 35 * 60)
        time.sleep(1.5)
        assert sub.of("SlaWarning", open_no) == []
        # Past 21 h 36 min: one warning, for the open order only.
        system.advance(2 * 60)
        wait_for(lambda: sub.of("SlaWarning", open_no), what="SlaWarning")
        assert timer(system, open_no)["state"] == "warned"
        time.sleep(1.5)
        assert len(sub.of("SlaWarning", open_no)) == 1
        assert sub.of("SlaBreached", open_no) == []
        # Past 24 h: one breach.
        system.advance(2 * 3600 + 30 * 60)
        wait_for(lambda: sub.of("SlaBreached", open_no), what="SlaBreached")
        time.sleep(1.5)
        assert len(sub.of("SlaWarning", open_no)) == 1
        assert len(sub.of("SlaBreached", open_no)) == 1
        b = sub.of("SlaBreached", open_no)[0].sla_breached
        assert b.due_at - b.started_at == 24 * 3600 * 1000
        assert timer(system, open_no)["state"] == "breached"
        # The closed order: neither.
        assert sub.of("SlaWarning", closed_no) == [] and sub.of("SlaBreached", closed_no) == []
        assert timer(system, closed_no)["state"] == "closed"
    finally:
        sub.close()
