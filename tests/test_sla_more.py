"""Issue 4, third part: repairs by area (R-29: arrival 30 min urban / 2 h
rural from acceptance, stopped by the repairer's `arrive`; small fault 1 h /
12 h, large fault 1 day), deadlines recomputed when the centre re-tiers an
order or changes its customer level (R-35, the old due kept), and calendars
per region with one definition of business hours shared with the notifier
(R-33, `kesuctl load calendar`).

The system and its clock are shared and the clock only moves forward: all
expectations are relative to an order's own start."""
import datetime
import os
import shutil
import subprocess
import tempfile

from conftest import BIN, ROOT, complaint, wait_for
from streams import Subscriber
from test_sla_policies import working, ts
from test_sla_steps import at_handler, hact, step_timer, timers

from kesu.v1 import events_pb2

H = 3600
ADDR = "上海市浦东新区张杨路100号"


def sla_sub(system):
    return Subscriber("tcp://127.0.0.1:%d" % (7120 + system.offset))


def repair(system, **over):
    body = dict(kind="repair", title="宽带报修", content="光猫红灯闪烁，无法上网，请尽快上门维修。",
                customer={"name": "钱多", "phone": "13811112222", "home_region": "310115",
                          "address": ADDR})
    body.update(over)
    r = system.post("intake", "/v1/complaints", complaint(**body))
    assert r.status_code == 201, r.text
    no = r.json()["order_no"]
    step_timer(system, no, "arrive")
    return no


def steps_of(sub, type_, no):
    return [getattr(e, {"SlaWarning": "sla_warning", "SlaBreached": "sla_breached"}[type_]).step
            for e in sub.of(type_, no)]


def supervision(system, no):
    r = system.get("sla", "/v1/supervision?order_no=" + no)
    assert r.status_code == 200, r.text
    return [(x["step"], x["kind"]) for x in r.json()["records"]]


def test_urban_repair_arrival_warns_at_27_min_and_breaches_at_30(system):
    sub = sla_sub(system)
    try:
        no = repair(system)                       # no area given: urban
        t = timers(system, no)
        start = ts(t["arrive"]["started_at"])
        assert ts(t["answer"]["started_at"]) == start
        assert t["arrive"]["limit_seconds"] == 1800 and t["arrive"]["policy"] == "repair-arrive-urban"
        assert ts(t["arrive"]["warn_at"]) - start == datetime.timedelta(minutes=27)
        assert ts(t["arrive"]["due_at"]) - start == datetime.timedelta(minutes=30)
        # small fault fixed within 1 h, large within 1 day (the answer step)
        assert t["fix"]["limit_seconds"] == H and t["fix"]["policy"] == "repair-small-urban"
        assert t["answer"]["limit_seconds"] == 24 * H and t["answer"]["policy"] == "repair-answer"
        assert "handle" not in t                  # a repair runs arrival and fix instead

        system.advance(26 * 60)
        wait_for(lambda: step_timer(system, no, "arrive", state="open"), what="still open")
        assert sub.of("SlaWarning", no) == []
        system.advance(60)                        # 27 min: the warning, for the arrival only
        wait_for(lambda: steps_of(sub, "SlaWarning", no) == [events_pb2.ARRIVE],
                 what="arrival warning")
        step_timer(system, no, "arrive", state="warned")
        assert sub.of("SlaBreached", no) == []
        system.advance(3 * 60)                    # 30 min: overdue
        wait_for(lambda: steps_of(sub, "SlaBreached", no) == [events_pb2.ARRIVE],
                 what="arrival breach")
        w = sub.of("SlaBreached", no)[0].sla_breached
        assert w.limit_seconds == 1800 and w.unit_id == "sh-pd"
        assert supervision(system, no) == [("arrive", "warning"), ("arrive", "breach")]
        assert timers(system, no)["fix"]["state"] == "open"   # 54 min not reached
    finally:
        sub.close()


def test_rural_repair_arrival_2h_stopped_by_arrive_and_large_fault(system):
    sub = sla_sub(system)
    try:
        late = repair(system, area="rural")
        early = repair(system, area="rural", customer={"name": "孙丽", "phone": "13811113333",
                                                       "home_region": "310115", "address": ADDR})
        for no in (late, early):
            t = timers(system, no)
            assert t["arrive"]["limit_seconds"] == 2 * H
            assert t["arrive"]["policy"] == "repair-arrive-rural"
            assert ts(t["arrive"]["warn_at"]) - ts(t["arrive"]["started_at"]) == \
                datetime.timedelta(minutes=108)
            assert t["fix"]["limit_seconds"] == 12 * H and t["fix"]["policy"] == "repair-small-rural"
            at_handler(system, no)
            assert hact(system, no, {"action": "sign"}).status_code == 200
        start = ts(timers(system, late)["arrive"]["started_at"])

        system.advance(100 * 60)
        r = hact(system, early, {"action": "arrive"})          # on site after 100 min
        assert r.status_code == 200, r.text
        t = step_timer(system, early, "arrive", state="closed")
        assert ts(t["closed_at"]) - ts(t["started_at"]) >= datetime.timedelta(minutes=100)
        system.advance(8 * 60)                                  # 108 min
        wait_for(lambda: steps_of(sub, "SlaWarning", late) == [events_pb2.ARRIVE],
                 what="rural arrival warning")
        system.advance(12 * 60)                                 # 2 h
        wait_for(lambda: steps_of(sub, "SlaBreached", late) == [events_pb2.ARRIVE],
                 what="rural arrival breach")
        assert sub.of("SlaWarning", early) == [] and sub.of("SlaBreached", early) == []
        assert supervision(system, early) == []

        # The repairer finds a large fault: the fix step gets 1 day from the
        # report instead of 12 h; the 12 h due stays in the history.
        r = hact(system, late, {"action": "arrive", "reason": "large_fault"})
        assert r.status_code == 200, r.text
        fix = step_timer(system, late, "fix", policy="repair-large")
        assert fix["limit_seconds"] == 24 * H
        assert ts(fix["due_at"]) == start + datetime.timedelta(hours=24)
        assert ts(fix["original_due_at"]) == start + datetime.timedelta(hours=12)
        assert ts(fix["warn_at"]) == start + datetime.timedelta(hours=21, minutes=36)
        assert step_timer(system, late, "arrive")["state"] == "closed"
        rows = system.pg.query("SELECT kind, reason FROM sla.recommits WHERE order_no = %s"
                               " AND step = 'fix'", (late,))
        assert [tuple(x) for x in rows] == [("reclassify", "large_fault")]
    finally:
        sub.close()


def test_reclassify_recomputes_answer_and_handling_from_their_start(system):
    """R-35: the centre re-tiers a general complaint to provincial and makes
    the customer VIP: the answer step is 48 h from acceptance, the handling
    step the provincial VIP lower bound 24 h from the sign; the first dues
    stay (original_due_at, sla.recommits)."""
    centre = system.token("sla-more-centre", "centre", "310000")
    no = system.post("intake", "/v1/complaints",
                     complaint(customer={"name": "吴敏", "phone": "13811114444",
                                         "home_region": "310115"})).json()["order_no"]
    step_timer(system, no, "answer")
    at_handler(system, no)
    assert hact(system, no, {"action": "sign"}).status_code == 200
    h0 = step_timer(system, no, "handle", policy="handle-general")
    a0 = timers(system, no)["answer"]
    system.advance(H)
    r = system.post("router", "/v1/orders/%s/actions" % no,
                    {"action": "reclassify", "tier": "provincial", "customer_level": "vip",
                     "reason": "媒体关注，升为省级"}, token=centre)
    assert r.status_code == 200, r.text
    a = step_timer(system, no, "answer", policy="answer-provincial")
    start = ts(a0["started_at"])
    assert ts(a["started_at"]) == start
    assert a["limit_seconds"] == 48 * H
    assert ts(a["due_at"]) == start + datetime.timedelta(hours=48)
    assert ts(a["warn_at"]) == start + datetime.timedelta(hours=43, minutes=12)
    assert ts(a["original_due_at"]) == ts(a0["due_at"]) == start + datetime.timedelta(hours=24)
    h = step_timer(system, no, "handle", policy="handle-provincial-vip")
    hs = ts(h0["started_at"])
    assert ts(h["started_at"]) == hs and h["limit_seconds"] == 24 * H
    assert ts(h["due_at"]) == hs + datetime.timedelta(hours=24)
    assert ts(h["original_due_at"]) == hs + datetime.timedelta(hours=17)
    rows = system.pg.query("SELECT step, kind, reason, old_due_at, new_due_at FROM sla.recommits"
                           " WHERE order_no = %s ORDER BY step", (no,))
    assert [(x[0], x[1], x[2]) for x in rows] == [("answer", "reclassify", "媒体关注，升为省级"),
                                                  ("handle", "reclassify", "媒体关注，升为省级")]
    assert rows[0][3] == start + datetime.timedelta(hours=24)
    assert rows[0][4] == start + datetime.timedelta(hours=48)
    # The new deadline holds: past the old 24 h nothing fires for the answer.
    sub = sla_sub(system)
    try:
        system.advance(24 * H)
        wait_for(lambda: steps_of(sub, "SlaBreached", no) == [events_pb2.HANDLE],
                 what="handling breach at 24 h after the sign")
        assert events_pb2.ANSWER not in steps_of(sub, "SlaWarning", no)
        assert step_timer(system, no, "answer")["state"] == "open"
    finally:
        sub.close()


def _reference_loads(system):
    return system.services["sla"].tail(10 ** 9).count("sla: reference loaded")


def _load_calendar(system, home):
    env = dict(system.env, KESU_HOME=home)
    r = subprocess.run([os.path.join(BIN, "kesuctl"), "load", "calendar"], env=env,
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def plus_working_days_on(is_working, start, n):
    if not is_working(start):          # counted from the next working day's start
        start = start.replace(hour=0, minute=0, second=0, microsecond=0)
        while not is_working(start):
            start += datetime.timedelta(days=1)
    day = start
    while n:
        day += datetime.timedelta(days=1)
        if is_working(day):
            n -= 1
    return day


def test_region_calendar_with_a_local_holiday_and_hours(system):
    """R-33: Guangxi gets a calendar of its own (the national one plus a local
    holiday) and its own business hours, loaded from data by `kesuctl load
    calendar` into sla AND the notifier's tables; Shanghai keeps the national
    calendar; the most specific region row wins."""
    sh = system.post("intake", "/v1/complaints", complaint(
        kind="suggestion", title="建议增加营业厅", content="建议在小区附近增加营业厅网点。")).json()["order_no"]
    start = ts(step_timer(system, sh, "answer")["started_at"])
    holiday = start + datetime.timedelta(days=1)
    while not working(holiday):
        holiday += datetime.timedelta(days=1)
    home = tempfile.mkdtemp(prefix="kesu-cal-")
    try:
        os.mkdir(os.path.join(home, "data"))
        with open(os.path.join(ROOT, "data", "calendar_2026.csv"), encoding="utf-8") as f:
            cal = f.read()
        with open(os.path.join(home, "data", "calendar_2026.csv"), "w", encoding="utf-8") as f:
            f.write(cal + "%s,holiday,壮族三月三（测试）,gx\n" % holiday.strftime("%Y-%m-%d"))
        with open(os.path.join(ROOT, "data", "business_hours.csv"), encoding="utf-8") as f:
            bh = f.read()
        with open(os.path.join(home, "data", "business_hours.csv"), "w", encoding="utf-8") as f:
            f.write(bh + "gx,45,09:00,18:00\ngx,4501,08:00,17:00\n")
        before = _reference_loads(system)
        out = _load_calendar(system, home)
        assert "notify.business_hours" in out, out
        wait_for(lambda: _reference_loads(system) > before, what="sla reloads its calendar")

        rows = system.pg.query("SELECT region_prefix, calendar_id, open_time::text,"
                               " close_time::text FROM sla.calendar_regions ORDER BY 1")
        assert [tuple(x) for x in rows] == [("*", "cn", "08:30:00", "17:30:00"),
                                            ("45", "gx", "09:00:00", "18:00:00"),
                                            ("4501", "gx", "08:00:00", "17:00:00")]
        rows = system.pg.query("SELECT region_prefix, calendar_id, open::text, close::text"
                               " FROM notify.business_hours ORDER BY 1")
        assert [tuple(x) for x in rows] == [("*", "cn", "08:30:00", "17:30:00"),
                                            ("45", "gx", "09:00:00", "18:00:00"),
                                            ("4501", "gx", "08:00:00", "17:00:00")]
        assert system.pg.scalar("SELECT name FROM notify.calendar_days WHERE calendar_id = 'gx'"
                                " AND day = %s", (holiday.date(),)) == "壮族三月三（测试）"
        assert system.pg.scalar("SELECT count(*) FROM notify.calendar_days WHERE calendar_id"
                                " = 'cn'") == system.pg.scalar(
            "SELECT count(*) FROM sla.calendar_days WHERE calendar = 'cn'") > 20

        gx = system.post("intake", "/v1/complaints", complaint(
            kind="suggestion", region="450100", title="建议增加营业厅",
            content="建议在南宁市青秀区增加营业厅网点。",
            customer={"name": "韦强", "phone": "13811115555", "home_region": "450100"}))
        assert gx.status_code == 201, gx.text
        gx = gx.json()["order_no"]
        sh2 = system.post("intake", "/v1/complaints", complaint(
            kind="suggestion", title="建议延长营业时间", content="建议营业厅周末延长营业时间。",
            customer={"name": "张三", "phone": "13811116666", "home_region": "310115"})).json()["order_no"]
        tg = step_timer(system, gx, "answer")
        t2 = step_timer(system, sh2, "answer")
        gs = ts(tg["started_at"])
        assert ts(tg["due_at"]) == plus_working_days_on(
            lambda d: working(d) and d.date() != holiday.date(), gs, 2), tg
        assert ts(t2["due_at"]) == plus_working_days_on(working, ts(t2["started_at"]), 2), t2
        assert ts(tg["due_at"]) > ts(t2["due_at"])   # the local holiday costs Guangxi a day
    finally:
        shutil.rmtree(home, ignore_errors=True)
        before = _reference_loads(system)
        _load_calendar(system, ROOT)
        wait_for(lambda: _reference_loads(system) > before, what="national calendar back")
    assert system.pg.scalar("SELECT count(*) FROM sla.calendar_regions") == 1


def test_escalation_ends_the_holders_handling_and_the_next_starts_at_its_sign(system):
    """R-26 / R-35: handling counts from the holder's sign 签收; escalating one
    level up closes the holder's handling step, the unit above starts its own
    when it signs; the answer step (R-25, from acceptance) does not move."""
    no = system.post("intake", "/v1/complaints", complaint(
        customer={"name": "陈晨", "phone": "13811117777", "home_region": "310115"})).json()["order_no"]
    a0 = step_timer(system, no, "answer")
    at_handler(system, no)
    assert "handle" not in timers(system, no)          # dispatched, not signed: no handling yet
    assert hact(system, no, {"action": "sign"}).status_code == 200
    first = step_timer(system, no, "handle", unit_id="sh-pd", state="open")
    system.advance(H)
    r = hact(system, no, {"action": "escalate", "reason": "需上级协调处理"})
    assert r.status_code == 200, r.text
    up = r.json()["holder_unit"]                       # the unit above sh-pd
    assert up not in ("", "sh-pd")
    step_timer(system, no, "handle", unit_id="sh-pd", state="closed")
    system.advance(30 * 60)
    wait_for(lambda: (lambda x: x if x.status_code == 200 else None)(
        hact(system, no, {"action": "sign"})), what="sign by the unit above")
    t = step_timer(system, no, "handle", unit_id=up, state="open")
    assert ts(t["started_at"]) - ts(first["started_at"]) >= datetime.timedelta(hours=1, minutes=30)
    assert ts(t["due_at"]) - ts(t["started_at"]) == datetime.timedelta(hours=17)
    a = timers(system, no)["answer"]
    assert (a["started_at"], a["due_at"]) == (a0["started_at"], a0["due_at"])
