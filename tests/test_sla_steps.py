"""Issue 4, second part: stream and customer level from WorkOrderCreated in
the policy match (VIP lower bound, appeals in working days), one timer per
workflow step from the router's WorkOrderStepChanged (R-26) recomputed on
transfer (R-35), the clock paused while waiting for the customer with no
deduction for the customer's delay (R-34, R-37), and the morning
DailyDueList event (R-36).

The system and its clock are shared and the clock only moves forward: all
expectations are relative to an order's own start."""
import datetime
import time

from conftest import complaint, wait_for
from streams import Subscriber
from test_sla_policies import plus_working_days, ts, working

H = 3600


def timers(system, no):
    r = system.get("sla", "/v1/timers/" + no)
    return {t["step"]: t for t in r.json()["timers"]} if r.status_code == 200 else {}


def step_timer(system, no, step, **want):
    def check():
        t = timers(system, no).get(step)
        return t if t and all(t[k] == v for k, v in want.items()) else None
    return wait_for(check, what="%s timer of %s %s" % (step, no, want))


def new_order(system, **over):
    r = system.post("intake", "/v1/complaints", complaint(**over))
    assert r.status_code in (200, 201), r.text
    no = r.json()["order_no"]
    step_timer(system, no, "answer")
    return no


def hact(system, no, body):
    r = system.post("handler", "/v1/orders/%s/actions" % no, body)
    assert r.status_code != 202, "router did not answer in time: " + r.text
    return r


def at_handler(system, no):
    wait_for(lambda: any(o["order_no"] == no
                         for o in system.get("handler", "/v1/queue").json()["orders"]),
             what="order at the handler")


def policy(system, no, step):
    return system.pg.scalar("SELECT policy_id FROM sla.timers WHERE order_no = %s AND step = %s",
                            (no, step))


def test_provincial_vip_uses_the_lower_bound(system):
    """R-26: department handling provincial 24–41 h; VIP/3G use the lower bound."""
    vip = new_order(system, tier="provincial",
                    customer={"name": "李四", "phone": "13900139000", "home_region": "310115",
                              "level": "vip"})
    other = new_order(system, tier="provincial")
    for no in (vip, other):        # the handling step starts with the holder's sign
        at_handler(system, no)
        assert hact(system, no, {"action": "sign"}).status_code == 200
    tv = step_timer(system, vip, "handle")
    to = step_timer(system, other, "handle")
    assert tv["limit_seconds"] == 24 * H and policy(system, vip, "handle") == "handle-provincial-vip"
    assert to["limit_seconds"] == 41 * H and policy(system, other, "handle") == "handle-provincial"
    assert ts(tv["due_at"]) - ts(tv["started_at"]) == datetime.timedelta(hours=24)
    # the answer step keeps the tier's commitment
    assert timers(system, vip)["answer"]["limit_seconds"] == 48 * H


def test_appeal_counts_seven_working_days(system):
    """R-28: an appeal's whole process is 7 working days of the calendar (the
    calendar's unit tests cover National Day; the shared clock is past it)."""
    no = new_order(system, stream="appeal", appeal={"source_body": "工信部", "filed": True})
    t = timers(system, no)["answer"]
    assert policy(system, no, "answer") == "appeal-answer"
    start = ts(t["started_at"])
    if not working(start):          # counted from the next working day's start
        start = start.replace(hour=0, minute=0, second=0, microsecond=0)
        while not working(start):
            start += datetime.timedelta(days=1)
    assert ts(t["due_at"]) == plus_working_days(start, 7), t
    assert system.pg.scalar("SELECT limit_unit FROM sla.timers WHERE order_no = %s"
                            " AND step = 'answer'", (no,)) == "working_days"
    esc = new_order(system, stream="escalated")
    assert policy(system, esc, "answer") == "escalated-answer"


def test_transfer_recomputes_the_holders_timer(system):
    no = new_order(system)
    at_handler(system, no)
    assert hact(system, no, {"action": "sign"}).status_code == 200
    first = step_timer(system, no, "handle", unit_id="sh-pd")
    assert first["limit_seconds"] == 17 * H            # general, not VIP: upper bound
    system.advance(2 * H)
    r = hact(system, no, {"action": "transfer", "to_unit": "sh-xh", "reason": "属徐汇辖区"})
    assert r.status_code == 200, r.text
    # the first holder's handling ends with the transfer; the new holder's
    # starts with its own sign 签收
    step_timer(system, no, "handle", unit_id="sh-pd", state="closed")
    system.advance(600)
    wait_for(lambda: any(o["order_no"] == no and o.get("unit_id", "sh-xh") == "sh-xh"
                         for o in system.get("handler", "/v1/queue").json()["orders"]),
             what="order back at the handler for sh-xh")
    r = wait_for(lambda: (lambda x: x if x.status_code == 200 else None)(
        hact(system, no, {"action": "sign"})), what="sign by sh-xh")
    t = step_timer(system, no, "handle", unit_id="sh-xh")
    assert ts(t["started_at"]) - ts(first["started_at"]) >= datetime.timedelta(hours=2, minutes=10)
    assert ts(t["started_at"]) - ts(first["started_at"]) >= datetime.timedelta(hours=2)
    assert ts(t["due_at"]) - ts(t["started_at"]) == datetime.timedelta(hours=17)
    assert t["state"] == "open"
    # past the first holder's warning: nothing fires for it (its timer restarted)
    system.advance(14 * H)
    time.sleep(1)
    recs = system.get("sla", "/v1/supervision?order_no=" + no).json()["records"]
    assert not [x for x in recs if x["step"] == "handle" and x["unit_id"] == "sh-pd"], recs


def test_answered_steps_never_warn(system):
    """R-35: the steps left behind are closed; an answered order's answer step
    and its handling step never warn."""
    no = new_order(system)
    at_handler(system, no)
    r = hact(system, no, {"action": "sign"})
    assert r.status_code == 200, r.text
    step_timer(system, no, "handle")
    r = hact(system, no, {"action": "feedback", "answer": "已上门检修，线路恢复。"})
    assert r.status_code == 200, r.text
    wait_for(lambda: timers(system, no)["handle"]["state"] == "closed", what="handle closed")
    fb = step_timer(system, no, "feedback")
    assert fb["limit_seconds"] == 2 * H and fb["unit_id"] == "sh"   # reply within 2 h
    system.advance(30 * H)
    time.sleep(1)
    recs = system.get("sla", "/v1/supervision?order_no=" + no).json()["records"]
    assert not [x for x in recs if x["step"] == "handle"], recs
    assert [x["kind"] for x in recs if x["step"] == "feedback"][:2] == ["warning", "breach"], recs


def test_pause_moves_deadline_and_skips_the_deduction(system):
    no = new_order(system)
    at_handler(system, no)
    assert hact(system, no, {"action": "sign"}).status_code == 200
    t0 = step_timer(system, no, "handle")
    r = system.post("sla", "/v1/timers/%s/pause" % no, {"step": "handle",
                                                         "reason": "客户约定明天上门"})
    assert r.status_code == 200, r.text
    r = system.post("sla", "/v1/timers/%s/pause" % no, {"step": "handle"})
    assert r.status_code == 409, r.text
    system.advance(20 * H)            # past the 17 h limit, but the clock stood still
    time.sleep(1)
    recs = system.get("sla", "/v1/supervision?order_no=" + no).json()["records"]
    assert not [x for x in recs if x["step"] == "handle"], recs
    r = system.post("sla", "/v1/timers/%s/resume" % no, {"step": "handle"})
    assert r.status_code == 200, r.text
    moved = ts(r.json()["due_at"]) - ts(t0["due_at"])
    assert datetime.timedelta(hours=20) <= moved < datetime.timedelta(hours=21), moved
    system.advance(18 * H)
    wait_for(lambda: "breach" in [x["kind"] for x in system.get(
        "sla", "/v1/supervision?order_no=" + no).json()["records"] if x["step"] == "handle"],
        what="handle breach after resume")
    led = system.get("sla", "/v1/ledger?order_no=" + no).json()["entries"]
    assert not [e for e in led if e["step"] == "handle"], led   # the customer's delay
    r = system.post("sla", "/v1/timers/%s/resume" % no, {"step": "handle"})
    assert r.status_code == 409, r.text


def test_recommit_for_the_customer_books_no_deduction(system):
    no = new_order(system)
    t = timers(system, no)["answer"]
    new_due = ts(t["due_at"]) + datetime.timedelta(hours=5)
    r = system.post("sla", "/v1/timers/%s/recommit" % no,
                    {"promised_by": new_due.isoformat(), "reason": "客户出差，约定下周处理",
                     "customer_caused": True})
    assert r.status_code == 200, r.text
    r = system.post("sla", "/v1/timers/%s/recommit" % no,
                    {"promised_by": new_due.isoformat(), "reason": "x", "customer_caused": "yes"})
    assert r.status_code == 422, r.text
    system.advance(31 * H)
    wait_for(lambda: "breach" in [x["kind"] for x in system.get(
        "sla", "/v1/supervision?order_no=" + no).json()["records"] if x["step"] == "answer"],
        what="answer breach")
    led = system.get("sla", "/v1/ledger?order_no=" + no).json()["entries"]
    assert not [e for e in led if e["step"] == "answer"], led


def test_daily_due_list_at_eight(system):
    """R-36: each morning at 08:00 local one DailyDueList event per day."""
    no = new_order(system)                 # its answer step is due by tomorrow
    sub = Subscriber("tcp://127.0.0.1:%d" % (7120 + system.offset), ["DailyDueList"])
    try:
        now = ts(system.advance(0)["now"])
        # to the next 08:00 local, then a little past it
        local = now.astimezone(datetime.timezone(datetime.timedelta(hours=8)))
        eight = local.replace(hour=8, minute=0, second=0, microsecond=0)
        if eight <= local:
            eight += datetime.timedelta(days=1)
        system.advance((eight - local).total_seconds() - 60)
        time.sleep(1)
        day = eight.date().isoformat()
        assert not [e for e in sub.of("DailyDueList") if e.daily_due_list.date == day]
        system.advance(120)
        ev = wait_for(lambda: [e for e in sub.of("DailyDueList")
                               if e.daily_due_list.date == day], what="DailyDueList")
        assert len(ev) == 1
        units = {u.unit_id: u for u in ev[0].daily_due_list.units}
        assert "sh-pd" in units, units.keys()
        u = units["sh-pd"]
        assert u.due_today + u.overdue >= 1
        due = ts(timers(system, no)["answer"]["due_at"]).astimezone(local.tzinfo)
        key = no + "/answer"
        if due.date() == eight.date():
            assert key in u.due_today_orders or u.due_today > 50, u
        else:                           # due after that day: not on its list
            assert due.date() > eight.date()
            assert key not in u.due_today_orders and key not in u.overdue_orders, u
        # once a day: a restart does not send it again
        system["sla"].restart()
        system["sla"].wait_ready()
        time.sleep(1)
        assert system.pg.scalar("SELECT count(*) FROM sla.daily_lists WHERE day = %s",
                                (day,)) == 1
    finally:
        sub.close()
