"""Issue 4: an appeal that runs across the 2026 National Day holiday, end to end.

The shared system's clock starts today and only moves forward, so this module runs its own
system (own Postgres, own services, own clock) set to Tuesday 2026-09-29 10:00 local.
R-28: an appeal's whole process is 7 working days; R-33: Oct 1–7 are holidays and Saturday
Oct 10 is a make-up working day. Counted by hand:
  Sep 30 (1) · Oct 1–7 holiday · Oct 8 (2) · Oct 9 (3) · Sat Oct 10 make-up (4) ·
  Oct 12 (5) · Oct 13 (6) · Oct 14 (7)  →  due 2026-10-14 10:00 +08:00.
"""
import datetime
import time

import pytest

from conftest import System, complaint, wait_for
from kesu.v1 import events_pb2
from streams import Subscriber


@pytest.fixture(scope="module")
def holiday_system():
    s = System()
    s.kesuctl("clock", "set", "2026-09-29T10:00:00+08:00")
    try:
        s.start_all()
        yield s
    finally:
        problems = s.shutdown()
    assert not problems, problems


def answer_timer(system, no):
    r = system.get("sla", "/v1/timers/" + no)
    if r.status_code != 200:
        return None
    return next((t for t in r.json()["timers"] if t["step"] == "answer"), None)


def answer_events(sub, type_, no):
    return [e for e in sub.of(type_, no) if getattr(e, SLA_FIELD[type_]).step == ANSWER]


SLA_FIELD = {"SlaWarning": "sla_warning", "SlaBreached": "sla_breached"}
ANSWER = events_pb2.ANSWER


def test_appeal_due_after_national_day_and_make_up_saturday(holiday_system):
    s = holiday_system
    sub = Subscriber("tcp://127.0.0.1:%d" % (7120 + s.offset))
    try:
        r = s.post("intake", "/v1/complaints",
                   complaint(stream="appeal", appeal={"source_body": "工信部", "filed": True}))
        assert r.status_code in (200, 201), r.text
        no = r.json()["order_no"]
        t = wait_for(lambda: answer_timer(s, no), what="answer timer")
        # (the clock runs on while the services start: accepted a few seconds after 10:00)
        start = datetime.datetime.fromisoformat(t["started_at"])
        due = datetime.datetime.fromisoformat(t["due_at"])
        assert start.date() == datetime.date(2026, 9, 29), t
        assert due == start.replace(month=10, day=14), t

        # Nine calendar days later, through the whole holiday: the answer step has neither
        # warned nor breached (it is only 2 of 7 working days in).
        s.advance(9 * 24 * 3600)                       # → Thu Oct 8 10:00
        time.sleep(1.5)
        assert answer_events(sub, "SlaWarning", no) == []
        assert answer_events(sub, "SlaBreached", no) == []

        # A minute past Wed Oct 14 10:00: exactly one breach of the answer step, due then.
        s.advance(6 * 24 * 3600 + 60)
        wait_for(lambda: answer_events(sub, "SlaBreached", no), what="answer breach")
        time.sleep(1.5)
        b = answer_events(sub, "SlaBreached", no)
        assert len(b) == 1
        assert len(answer_events(sub, "SlaWarning", no)) == 1   # warned once, before
        assert b[0].sla_breached.due_at // 1000 == int(due.timestamp())
    finally:
        sub.close()
