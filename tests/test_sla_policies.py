"""Issue 4: SLA limits from policies as data (data/sla_policies.csv), the
2026 working calendar (data/calendar_2026.csv), supervision records 督办记录,
the escalation ladder, the assessment ledger, the daily due lists, a reload
on NOTIFY sla_reference and a restart of the watcher.

The system and its clock are shared with the other tests and the clock only
moves forward: every expectation here is relative to an order's own start."""
import datetime
import time

from conftest import complaint, wait_for

H = 3600
HOLIDAYS_2026 = {(1, d) for d in (1, 2, 3)} | {(2, d) for d in range(15, 24)} | \
    {(4, d) for d in (4, 5, 6)} | {(5, d) for d in range(1, 6)} | {(6, d) for d in (19, 20, 21)} | \
    {(9, d) for d in (25, 26, 27)} | {(10, d) for d in range(1, 8)}
MAKEUP_2026 = {(1, 4), (2, 14), (2, 28), (5, 9), (9, 20), (10, 10)}


def working(day):
    if day.year == 2026 and (day.month, day.day) in MAKEUP_2026:
        return True
    if day.year == 2026 and (day.month, day.day) in HOLIDAYS_2026:
        return False
    return day.weekday() < 5


def plus_working_days(start, n):
    """start (aware, +08:00) + n working days: the same time on the n-th
    following working day (start is on a working day in these tests)."""
    day = start
    while n:
        day += datetime.timedelta(days=1)
        if working(day):
            n -= 1
    return day


def ts(s):
    return datetime.datetime.fromisoformat(s)


def timer(system, order_no):
    r = system.get("sla", "/v1/timers/" + order_no)
    return r.json()["timers"][0] if r.status_code == 200 else None


def new_order(system, **over):
    r = system.post("intake", "/v1/complaints", complaint(**over))
    assert r.status_code in (200, 201), r.text
    no = r.json()["order_no"]
    wait_for(lambda: timer(system, no), what="timer for " + no)
    return no


def records(system, order_no):
    return system.get("sla", "/v1/supervision?order_no=" + order_no).json()["records"]


def kinds(system, order_no):
    return [r["kind"] for r in records(system, order_no)]


def close(system, order_no):
    wait_for(lambda: any(o["order_no"] == order_no
                         for o in system.get("handler", "/v1/queue").json()["orders"]),
             what="order at handler")
    r = system.post("handler", "/v1/orders/%s/actions" % order_no,
                    {"action": "close", "answer": "已处理完毕。"})
    assert r.status_code in (200, 202), r.text
    wait_for(lambda: timer(system, order_no)["state"] == "closed", what="closed timer")


def parent_of(system, unit):
    rows = system.pg.query("SELECT parent FROM sla.units WHERE id = %s", (unit,))
    return rows[0][0] if rows else None


def test_provincial_limit_comes_from_policy(system):
    no = new_order(system, tier="provincial")
    t = timer(system, no)
    assert t["limit_seconds"] == 48 * H
    assert ts(t["due_at"]) - ts(t["started_at"]) == datetime.timedelta(hours=48)
    # 90 % of 48 h = 43 h 12 min.
    assert ts(t["warn_at"]) - ts(t["started_at"]) == datetime.timedelta(hours=43, minutes=12)
    assert system.pg.scalar("SELECT policy_id FROM sla.timers WHERE order_no = %s",
                            (no,)) == "answer-provincial"


def test_suggestion_counts_working_days(system):
    """R-30: a suggestion is answered within 2 working days of the calendar."""
    no = new_order(system, kind="suggestion", title="建议增加营业厅", content="建议在小区附近增加营业厅网点。")
    t = timer(system, no)
    start = ts(t["started_at"])
    if not working(start):          # counted from the next working day's start
        start = start.replace(hour=0, minute=0, second=0, microsecond=0)
        while not working(start):
            start += datetime.timedelta(days=1)
    assert ts(t["due_at"]) == plus_working_days(start, 2), t
    assert system.pg.scalar("SELECT limit_unit FROM sla.timers WHERE order_no = %s",
                            (no,)) == "working_days"


def test_supervision_ladder_and_ledger(system):
    """R-31/R-32/R-35/R-37: warning, breach, escalation one level up at 150 %
    and the next at 200 %, each a supervision record; an order answered after
    its breach never escalates; each breach books 100 yuan for its unit."""
    open_no = new_order(system)
    closed_no = new_order(system, title="账单多扣费")
    unit = timer(system, open_no)["unit_id"]
    up1 = parent_of(system, unit)
    up2 = parent_of(system, up1)
    assert up1 and up2, (unit, up1, up2)

    system.advance(21 * H + 40 * 60)  # past 90 %: 21 h 36 min
    for no in (open_no, closed_no):
        wait_for(lambda: kinds(system, no) == ["warning"], what="warning of " + no)
    system.advance(2 * H + 21 * 60)  # past 100 % of 24 h
    for no in (open_no, closed_no):
        wait_for(lambda: kinds(system, no) == ["warning", "breach"], what="breach of " + no)
    w, b = records(system, open_no)
    assert w["minutes_late"] < 0 and b["minutes_late"] >= 0
    assert b["unit_id"] == unit
    close(system, closed_no)

    system.advance(12 * H)  # 150 %
    wait_for(lambda: kinds(system, open_no) == ["warning", "breach", "escalation"],
             what="first escalation")
    esc = records(system, open_no)[2]
    assert esc["to_unit"] == up1, esc
    system.advance(12 * H)  # 200 %
    wait_for(lambda: kinds(system, open_no) == ["warning", "breach", "escalation", "escalation"],
             what="second escalation")
    assert records(system, open_no)[3]["to_unit"] == up2
    time.sleep(1.5)
    assert kinds(system, closed_no) == ["warning", "breach"]
    assert len(records(system, open_no)) == 4
    # The events went out with the records.
    assert system.pg.scalar("SELECT count(*) FROM sla.outbox WHERE order_no = %s"
                            " AND type = 'SlaEscalated'", (open_no,)) == 2

    # Filter by unit: the holder sees its own records, the unit above sees
    # the escalation to it.
    def by_unit(u):
        return [r["kind"] for r in system.get(
            "sla", "/v1/supervision?unit=%s&order_no=%s" % (u, open_no)).json()["records"]]
    assert by_unit(unit) == ["warning", "breach", "escalation", "escalation"]
    assert by_unit(up2) == ["escalation"]

    month = ts(b["at"]).strftime("%Y-%m")
    for no in (open_no, closed_no):
        ledger = system.get("sla", "/v1/ledger?unit=%s&month=%s&order_no=%s"
                            % (unit, month, no)).json()
        assert [(e["order_no"], e["amount"], e["month"]) for e in ledger["entries"]] == \
            [(no, 100, month)]
        assert ledger["total"] == 100
    other = "2020-01"
    assert system.get("sla", "/v1/ledger?unit=%s&month=%s&order_no=%s"
                      % (unit, other, open_no)).json()["entries"] == []
    assert system.get("sla", "/v1/ledger?month=2026-13").status_code == 422
    assert system.get("sla", "/v1/supervision?month=x").status_code == 422


def test_due_lists(system):
    """R-36: per unit, the steps due on a day and those overdue before it."""
    no = new_order(system)
    t = timer(system, no)
    due_day = ts(t["due_at"]).date()
    unit = t["unit_id"]
    r = system.get("sla", "/v1/due?unit=%s&date=%s" % (unit, due_day.isoformat()))
    assert r.status_code == 200, r.text
    body = r.json()
    assert no in [x["order_no"] for x in body["due_today"]]
    assert no not in [x["order_no"] for x in body["overdue"]]
    nxt = (due_day + datetime.timedelta(days=1)).isoformat()
    body = system.get("sla", "/v1/due?unit=%s&date=%s" % (unit, nxt)).json()
    assert no in [x["order_no"] for x in body["overdue"]]
    body = system.get("sla", "/v1/due?unit=%s&date=%s" % (
        unit, (due_day - datetime.timedelta(days=2)).isoformat())).json()
    assert no not in [x["order_no"] for x in body["due_today"] + body["overdue"]]
    assert system.get("sla", "/v1/due?date=2026-02-30").status_code == 422


def test_policy_reload_on_notify(system):
    """Policies are data: a row added by hand applies to the next order
    without a restart (trigger → NOTIFY sla_reference)."""
    system.pg.query("INSERT INTO sla.policies (id, ord, kind, step, limit_value, unit)"
                    " VALUES ('e2e-praise', 1000, 'praise', 'answer', 1, 'clock_hours')")
    try:
        time.sleep(1.0)
        no = new_order(system, kind="praise", title="表扬客服", content="客服态度很好，表扬。")
        assert timer(system, no)["limit_seconds"] == H
    finally:
        system.pg.query("DELETE FROM sla.policies WHERE id = 'e2e-praise'")
    time.sleep(1.0)
    no = new_order(system, kind="praise", title="表扬装维", content="装维师傅很专业，表扬。")
    assert timer(system, no)["limit_seconds"] == 24 * H


def test_restart_fires_missed_deadlines_once(system):
    """SIGKILL the watcher, move the clock past three deadlines, restart:
    exactly three breaches, each once."""
    nos = [new_order(system, title="重启测试%d" % i) for i in range(3)]
    sla = system["sla"]
    sla.kill()
    try:
        system.advance(25 * H)
    finally:
        sla.start()

    def breaches():
        return system.pg.scalar("SELECT count(*) FROM sla.outbox WHERE type = 'SlaBreached'"
                                " AND order_no = ANY(%s)", (nos,))
    wait_for(lambda: breaches() == 3, what="three breaches")
    time.sleep(1.5)
    assert breaches() == 3
    for no in nos:
        assert kinds(system, no) == ["warning", "breach"]


def test_recommit_moves_deadline_and_keeps_original(system):
    """R-34: a re-commit moves the step's deadline (and its 90 % warning);
    the original deadline stays for the KPIs; too late once overdue."""
    no = new_order(system)
    t = timer(system, no)
    start, original = ts(t["started_at"]), ts(t["due_at"])
    promised = start + datetime.timedelta(hours=30)
    url = "/v1/timers/%s/recommit" % no
    for body, code in [({"reason": "x"}, 422),
                       ({"promised_by": promised.isoformat()}, 422),
                       ({"promised_by": "tomorrow", "reason": "x"}, 422),
                       ({"promised_by": promised.isoformat(), "reason": "x", "bogus": 1}, 422),
                       ({"promised_by": (start - datetime.timedelta(hours=1)).isoformat(),
                         "reason": "x"}, 422)]:
        r = system.post("sla", url, body)
        assert r.status_code == code, (body, r.text)
    assert system.post("sla", "/v1/timers/KS000/recommit",
                       {"promised_by": promised.isoformat(), "reason": "x"}).status_code == 404
    r = system.post("sla", url, {"promised_by": promised.isoformat(),
                                 "reason": "需要厂家配合更换设备"})
    assert r.status_code == 200, r.text
    assert ts(r.json()["due_at"]) == promised
    t = timer(system, no)
    assert ts(t["due_at"]) == promised and ts(t["original_due_at"]) == original
    assert ts(t["warn_at"]) == start + datetime.timedelta(hours=27)  # 90 % of 30 h
    assert t["limit_seconds"] == 30 * H

    system.advance(24 * H + 60)  # past the original deadline: nothing
    time.sleep(1.5)
    assert kinds(system, no) == []
    system.advance(3 * H)  # past 27 h
    wait_for(lambda: kinds(system, no) == ["warning"], what="warning at the new 90 %")
    system.advance(3 * H)  # past 30 h
    wait_for(lambda: kinds(system, no) == ["warning", "breach"], what="breach at the new time")
    b = records(system, no)[1]
    assert ts(b["due_at"]) == promised
    r = system.post("sla", url, {"promised_by": (promised + datetime.timedelta(days=2)).isoformat(),
                                 "reason": "再延期"})
    assert r.status_code == 409, r.text
    rows = system.pg.query("SELECT old_due_at, new_due_at FROM sla.recommits WHERE order_no = %s",
                           (no,))
    assert [(a.timestamp(), b_.timestamp()) for a, b_ in rows] == \
        [(original.timestamp(), promised.timestamp())]
