"""Issue 4, the last R-29 repair rules: an appointment agreed with the
customer replaces the arrival limit; rain/snow moves the job to the next day
(reason recorded); urban reports from 21:00 start at the next morning's
opening (24:00 in "special time" mode: a policy row); installation the same
day where the network is in place, else within 2 working days.

The system and its clock are shared and the clock only moves forward: each
test first moves the clock to the next local time of day it needs."""
import datetime

from conftest import complaint, wait_for
from test_sla_more import ADDR, _reference_loads, sla_sub, steps_of, supervision
from test_sla_policies import plus_working_days, ts
from test_sla_steps import hact, step_timer, timers, at_handler

from kesu.v1 import events_pb2

H = 3600
CST = datetime.timezone(datetime.timedelta(hours=8))


def now(system):
    return ts(system.advance(0)["now"])


def to_local(system, hour, minute):
    """Advances the clock to the next local hh:mm (at least one minute ahead;
    the controlled clock then runs on in real time)."""
    n = now(system)
    t = n.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if t <= n + datetime.timedelta(minutes=1):
        t += datetime.timedelta(days=1)
    system.advance((t - n).total_seconds())
    return t


def accepted(system, no):
    return ts(timers(system, no)["answer"]["started_at"])


def at(system, t):
    """Advances the clock to t (in the future)."""
    d = (t - now(system)).total_seconds()
    assert d >= 0, "the clock would go back"
    system.advance(d)


def report(system, wait_step="arrive", phone="13811114444", **over):
    body = dict(kind="repair", title="宽带报修", content="光猫红灯闪烁，无法上网，请尽快上门维修。",
                customer={"name": "周强", "phone": phone, "home_region": "310115",
                          "address": ADDR})
    body.update(over)
    r = system.post("intake", "/v1/complaints", complaint(**body))
    assert r.status_code == 201, r.text
    no = r.json()["order_no"]
    step_timer(system, no, wait_step)
    return no


def moves(system, no):
    r = system.get("sla", "/v1/timers/" + no)
    assert r.status_code == 200, r.text
    return [(m["step"], m["kind"], m["reason"], ts(m["old_due_at"]), ts(m["new_due_at"]))
            for m in r.json()["moves"]]


def test_appointment_replaces_the_arrival_limit(system):
    sub = sla_sub(system)
    try:
        to_local(system, 10, 0)
        no = report(system)
        start = accepted(system, no)
        t = timers(system, no)
        assert ts(t["arrive"]["due_at"]) == start + datetime.timedelta(minutes=30)
        assert ts(t["fix"]["due_at"]) == start + datetime.timedelta(hours=1)
        system.advance(5 * 60)
        appt = start + datetime.timedelta(hours=4)  # about 14:00
        # not in the past, and only the documented fields
        r = system.post("sla", "/v1/timers/%s/appointment" % no, {"at": "2020-01-01T10:00:00+08:00"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "at", r.text
        r = system.post("sla", "/v1/timers/%s/appointment" % no, {"at": appt.isoformat(timespec="milliseconds"), "x": 1})
        assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_field", r.text
        r = system.post("sla", "/v1/timers/KS000/appointment", {"at": appt.isoformat(timespec="milliseconds")})
        assert r.status_code == 404, r.text

        # the customer wants the repairer at 14:00
        r = system.post("sla", "/v1/timers/%s/appointment" % no, {"at": appt.isoformat(timespec="milliseconds")})
        assert r.status_code == 200, r.text
        assert [m["step"] for m in r.json()["moved"]] == ["arrive", "fix"]
        arrive = step_timer(system, no, "arrive", state="open")
        assert ts(arrive["due_at"]) == appt
        # warning at 90 % of the span from acceptance to the appointment
        assert ts(arrive["warn_at"]) == start + datetime.timedelta(hours=3, minutes=36)
        assert ts(arrive["original_due_at"]) == start + datetime.timedelta(minutes=30)
        # the fix is counted from the agreed arrival: 14:00 + 1 h
        fix = timers(system, no)["fix"]
        assert ts(fix["due_at"]) == appt + datetime.timedelta(hours=1)
        assert moves(system, no) == [
            ("arrive", "appointment", "appointment", start + datetime.timedelta(minutes=30), appt),
            ("fix", "appointment", "appointment", start + datetime.timedelta(hours=1),
             appt + datetime.timedelta(hours=1))]

        # 10:31 and 11:01 pass: the original limits are not breached
        at(system, start + datetime.timedelta(hours=1, minutes=1))
        wait_for(lambda: timers(system, no)["arrive"]["state"] == "open", what="arrive open")
        at(system, start + datetime.timedelta(hours=3, minutes=35))
        assert sub.of("SlaWarning", no) == [] and sub.of("SlaBreached", no) == []
        assert supervision(system, no) == []
        system.advance(60)                          # 13:36: 90 % of the way to 14:00
        wait_for(lambda: steps_of(sub, "SlaWarning", no) == [events_pb2.ARRIVE],
                 what="arrival warning before the appointment")
        # the repairer is there at 13:55 and finds a large fault: nothing
        # overdue, and the fix gets its day from the agreed arrival
        at(system, start + datetime.timedelta(hours=3, minutes=55))
        at_handler(system, no)
        assert hact(system, no, {"action": "sign"}).status_code == 200
        r = hact(system, no, {"action": "arrive", "reason": "large_fault"})
        assert r.status_code == 200, r.text
        step_timer(system, no, "arrive", state="closed")
        fix = step_timer(system, no, "fix", policy="repair-large")
        assert ts(fix["due_at"]) == appt + datetime.timedelta(hours=24)
        r = system.post("sla", "/v1/timers/%s/appointment" % no, {"at": appt.isoformat(timespec="milliseconds")})
        assert r.status_code == 409, r.text
        assert sub.of("SlaBreached", no) == []
        assert supervision(system, no) == [("arrive", "warning")]
        r = system.get("sla", "/v1/ledger?order_no=" + no)
        assert r.status_code == 200 and r.json()["entries"] == [], r.text
    finally:
        sub.close()


def test_rain_moves_the_repair_to_the_next_day(system):
    sub = sla_sub(system)
    try:
        to_local(system, 10, 0)
        no = report(system, phone="13811115555")
        start = accepted(system, no)
        system.advance(10 * 60)
        r = system.post("sla", "/v1/timers/%s/postpone" % no, {"reason": "wind"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "reason", r.text
        r = system.post("sla", "/v1/timers/%s/postpone" % no, {"reason": "rain"})
        assert r.status_code == 200 and r.json()["moved"] == 3, r.text
        day = datetime.timedelta(days=1)
        t = step_timer(system, no, "arrive", due_at=(start + day + datetime.timedelta(minutes=30))
                       .isoformat(timespec="milliseconds"))
        assert ts(t["warn_at"]) == start + day + datetime.timedelta(minutes=27)
        t = timers(system, no)
        assert ts(t["fix"]["due_at"]) == start + day + datetime.timedelta(hours=1)
        assert ts(t["answer"]["due_at"]) == start + 2 * day
        assert ts(t["arrive"]["original_due_at"]) == start + datetime.timedelta(minutes=30)
        # the reason stays visible with every moved deadline
        assert sorted(moves(system, no)) == sorted([
            ("answer", "postpone", "rain", start + day, start + 2 * day),
            ("arrive", "postpone", "rain", start + datetime.timedelta(minutes=30),
             start + day + datetime.timedelta(minutes=30)),
            ("fix", "postpone", "rain", start + datetime.timedelta(hours=1),
             start + day + datetime.timedelta(hours=1))])

        # today passes without warnings, breaches or deductions
        at(system, start + datetime.timedelta(hours=23))
        assert sub.of("SlaWarning", no) == [] and sub.of("SlaBreached", no) == []
        assert supervision(system, no) == []
        at(system, start + day + datetime.timedelta(minutes=30))   # tomorrow 10:30
        wait_for(lambda: steps_of(sub, "SlaBreached", no) == [events_pb2.ARRIVE],
                 what="arrival breach the next day")
        assert steps_of(sub, "SlaWarning", no) == [events_pb2.ARRIVE]
        # a large fault found then: 1 day from the report, plus the day of rain
        at_handler(system, no)
        assert hact(system, no, {"action": "sign"}).status_code == 200
        r = hact(system, no, {"action": "arrive", "reason": "large_fault"})
        assert r.status_code == 200, r.text
        fix = step_timer(system, no, "fix", policy="repair-large")
        assert ts(fix["due_at"]) == start + 2 * day

        # a complaint is not postponed for weather
        other = report(system, wait_step="answer", kind="complaint", phone="13811116666")
        r = system.post("sla", "/v1/timers/%s/postpone" % other, {"reason": "snow"})
        assert r.status_code == 422, r.text
    finally:
        sub.close()


def _set_cutoff(system, hours):
    before = _reference_loads(system)
    system.pg.query("UPDATE sla.policies SET limit_value = %s WHERE id = 'repair-cutoff-urban'",
                    (hours,))
    wait_for(lambda: _reference_loads(system) > before, what="sla reloads its policies")


def test_urban_reports_after_21_start_next_morning(system):
    to_local(system, 20, 58)
    early = report(system, phone="13811117001")
    before21 = accepted(system, early)
    t = timers(system, early)
    assert ts(t["arrive"]["started_at"]) == before21        # handled the same day
    assert ts(t["arrive"]["due_at"]) == before21 + datetime.timedelta(minutes=30)

    to_local(system, 21, 30)
    late = report(system, phone="13811117002")
    late_at = accepted(system, late)
    rural = report(system, phone="13811117003", area="rural")
    opening = (late_at + datetime.timedelta(days=1)).replace(hour=8, minute=30, second=0, microsecond=0)
    t = timers(system, late)
    assert ts(t["answer"]["started_at"]) == late_at         # R-25 counts from acceptance
    assert ts(t["arrive"]["started_at"]) == opening
    assert ts(t["arrive"]["warn_at"]) == opening + datetime.timedelta(minutes=27)
    assert ts(t["arrive"]["due_at"]) == opening + datetime.timedelta(minutes=30)
    assert ts(t["fix"]["due_at"]) == opening + datetime.timedelta(hours=1)
    # the cutoff is an urban rule: a rural report keeps its 2 h from acceptance
    t = timers(system, rural)
    rural_at = accepted(system, rural)
    assert ts(t["arrive"]["started_at"]) == rural_at
    assert ts(t["arrive"]["due_at"]) == rural_at + datetime.timedelta(hours=2)

    # "special time" mode: the cutoff row says 24:00
    _set_cutoff(system, 24)
    try:
        special = report(system, phone="13811117004")
        special_at = accepted(system, special)
        assert special_at.hour == 21
        t = timers(system, special)
        assert ts(t["arrive"]["started_at"]) == special_at
        assert ts(t["arrive"]["due_at"]) == special_at + datetime.timedelta(minutes=30)
    finally:
        _set_cutoff(system, 21)

    # nothing of the late report fires in the night
    sub = sla_sub(system)
    try:
        at(system, opening + datetime.timedelta(minutes=26))
        assert sub.of("SlaWarning", late) == [] and sub.of("SlaBreached", late) == []
        system.advance(60)
        wait_for(lambda: steps_of(sub, "SlaWarning", late) == [events_pb2.ARRIVE],
                 what="arrival warning at 08:57")
    finally:
        sub.close()


def test_installation_same_day_or_two_working_days(system):
    to_local(system, 10, 0)
    inst = report(system, wait_step="fix", phone="13811118001", problem_type="installation",
                  title="宽带新装", content="新装宽带，小区已通光纤，请安排今天上门安装。")
    start = accepted(system, inst)
    t = timers(system, inst)
    assert "arrive" not in t                                 # no arrival limit for an installation
    assert t["fix"]["policy"] == "install-same-day" and t["fix"]["limit_unit"] == "day_end"
    midnight = (start + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                            microsecond=0)
    assert ts(t["fix"]["due_at"]) == midnight                # the same day, until 24:00
    warn = start + (midnight - start) * 0.9                  # 90 % of the time given
    assert abs(ts(t["fix"]["warn_at"]) - warn) <= datetime.timedelta(milliseconds=1)

    nonet = report(system, wait_step="fix", phone="13811118002",
                   problem_type="installation_no_network",
                   title="宽带新装", content="新装宽带，小区尚未覆盖光纤，需要新建线路。")
    t = timers(system, nonet)
    assert "arrive" not in t
    assert t["fix"]["policy"] == "install-no-network" and t["fix"]["limit_unit"] == "working_days"
    s = ts(t["fix"]["started_at"])
    assert s == accepted(system, nonet)
    assert ts(t["fix"]["due_at"]) == plus_working_days(s, 2)

    # an urban installation reported at 22:00 is the next day's job
    late_at = to_local(system, 22, 0)
    late = report(system, wait_step="fix", phone="13811118003", problem_type="installation",
                  title="宽带新装", content="新装宽带，晚上报装，明天安装即可。")
    t = timers(system, late)
    nxt = (late_at + datetime.timedelta(days=1)).replace(hour=8, minute=30, second=0, microsecond=0)
    assert ts(t["fix"]["started_at"]) == nxt
    assert ts(t["fix"]["due_at"]) == (nxt + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
