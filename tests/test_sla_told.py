"""R-34 "the next step and the centre are told": a deadline that moves for a
reason other than the order's own step (a re-commit 重新承诺, an appointment
agreed with the customer, a rain/snow postponement, a pause or resume) makes
the watcher append SlaDeadlineMoved (old and new due) in the same
transaction; the notifier's rules (data/notify_rules.csv) tell the province
complaint centre covering the order's region and the holder unit, and, for
an agreed time, the customer by SMS (quiet hours apply).

The system and its clock are shared and only move forward: each test moves
the clock to the local time of day it needs first."""
import contextlib
import datetime
import time

from conftest import SmsGateway, notifier_with_sinks, wait_for
from notify_hours import next_opening, working_day
from streams import Subscriber
from test_sla_repairs import at, now, report, to_local
from test_sla_policies import ts
from test_sla_steps import at_handler, hact, new_order, step_timer, timers

from kesu.v1 import events_pb2

MOVED_IM = ("【时限变更】工单{no}（{title}）{step}时限由{old}调整为{new}，原因：{reason}，"
            "责任单位{unit}。客户{phone}。")
MOVED_MAIL = ("工单{no}（{title}）{step}环节的时限由{old}调整为{new}。原因：{reason}。"
              "责任单位：{unit}。客户：{name} {phone}。")
APPOINTMENT_SMS = ("【客诉】您的报修（工单号{no}）已按与您约定的时间安排，维修人员将于{new}前上门，"
                   "请保持电话畅通。")
RAIN_SMS = "【客诉】受降雨影响，您的报修（工单号{no}）雨天顺延，维修人员将于{new}前上门，敬请谅解。"


def minute(t):
    """A time as the templates write it: local 'YYYY-MM-DD HH:MM'."""
    return t.astimezone(datetime.timezone(datetime.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")


def ms(t):
    return int(t.timestamp() * 1000)


def working_morning(system, hour=10):
    """The next local hour:00 on a working day (staff messages go out at once)."""
    t = to_local(system, hour, 0)
    while not working_day(system, t.date()):
        system.advance(86400)
        t += datetime.timedelta(days=1)
    assert next_opening(system, t) == t
    return t


def im_texts(im, path, no):
    """The 【时限变更】 messages about order no to one IM webhook."""
    return [m["body"]["text"]["content"] for m in im.messages()
            if m["path"] == path and m["body"]["text"]["content"].startswith("【时限变更】工单" + no)]


def moved_events(sub, no):
    return [e.sla_deadline_moved for e in sub.of("SlaDeadlineMoved", no)]


def with_contacts(system, im):
    system.pg.query("INSERT INTO notify.contacts VALUES ('sh', 'province_cs', 'im', %s),"
                    " ('sh-pd', 'handler', 'im', %s)", (im.url + "/centre", im.url + "/holder"))
    time.sleep(1)  # the notifier reloads on NOTIFY notify_reference


def test_recommit_tells_the_centre_and_the_holder(system):
    with notifier_with_sinks(system) as (_, im, smtp), \
            contextlib.closing(Subscriber("tcp://127.0.0.1:%d" % (7120 + system.offset))) as sub:
        with_contacts(system, im)
        working_morning(system)
        no = new_order(system, title="宽带提速未生效",
                       customer={"name": "赵敏", "phone": "13712345678", "home_region": "310115"})
        at_handler(system, no)
        assert hact(system, no, {"action": "sign"}).status_code == 200
        old_due = ts(timers(system, no)["answer"]["due_at"])
        new_due = old_due + datetime.timedelta(hours=6)
        r = hact(system, no, {"action": "recommit", "reason": "需厂家更换板卡",
                              "promised_by": new_due.isoformat(timespec="milliseconds")})
        assert r.status_code == 200, r.text
        # the watcher moved the answer step and kept the first deadline
        t = step_timer(system, no, "answer", due_at=new_due.isoformat(timespec="milliseconds"))
        assert ts(t["original_due_at"]) == old_due
        mv = wait_for(lambda: moved_events(sub, no), what="SlaDeadlineMoved")
        assert len(mv) == 1
        e = mv[0]
        assert (e.order_no, e.step, e.unit_id, e.kind, e.reason) == \
            (no, events_pb2.ANSWER, "sh-pd", "recommit", "需厂家更换板卡")
        assert (e.old_due_at, e.new_due_at) == (ms(old_due), ms(new_due))
        assert e.actor != ""
        # the centre (province customer service covering 310115) and the holder
        want = MOVED_IM.format(no=no, title="宽带提速未生效", step="答复", old=minute(old_due),
                               new=minute(new_due), reason="需厂家更换板卡", unit="浦东分公司",
                               phone="137****5678")
        wait_for(lambda: im_texts(im, "/sms/centre", no), what="centre IM")
        wait_for(lambda: im_texts(im, "/sms/holder", no), what="holder IM")
        assert im_texts(im, "/sms/centre", no) == [want]
        assert im_texts(im, "/sms/holder", no) == [want]

        def mails():
            return [m for m in smtp.parsed()
                    if str(m["Subject"]) == "【时限变更】工单%s答复时限调整为%s" % (no, minute(new_due))]
        wait_for(mails, what="centre e-mail")
        m = mails()[0]
        assert "complaints@sh.example.com" in str(m["To"])
        assert m.get_content_charset() == "utf-8"
        assert m.get_content().strip() == MOVED_MAIL.format(
            no=no, title="宽带提速未生效", step="答复", old=minute(old_due), new=minute(new_due),
            reason="需厂家更换板卡", unit="浦东分公司", name="赵敏", phone="137****5678")
        # no customer SMS for a re-commit's staff notice, and each once
        time.sleep(1)
        assert [d for d in system.sms.for_order(no) if "时限" in d["body"]["text"]] == []
        assert len(im_texts(im, "/sms/centre", no)) == 1 and len(mails()) == 1
        assert len(moved_events(sub, no)) == 1


def test_appointment_sends_the_customer_the_agreed_time(system):
    im = SmsGateway()
    sub = Subscriber("tcp://127.0.0.1:%d" % (7120 + system.offset))
    try:
        with_contacts(system, im)
        start = working_morning(system)
        no = report(system, phone="13855556666")
        arrive = ts(timers(system, no)["arrive"]["due_at"])
        appt = start.replace(hour=15, minute=0)
        r = system.post("sla", "/v1/timers/%s/appointment" % no,
                        {"at": appt.isoformat(timespec="milliseconds")})
        assert r.status_code == 200, r.text
        wait_for(lambda: [e for e in moved_events(sub, no) if e.step == events_pb2.ARRIVE],
                 what="SlaDeadlineMoved arrive")
        e = [e for e in moved_events(sub, no) if e.step == events_pb2.ARRIVE][0]
        assert (e.kind, e.old_due_at, e.new_due_at) == ("appointment", ms(arrive), ms(appt))
        want = APPOINTMENT_SMS.format(no=no, new="%s 15:00" % appt.date().isoformat())

        def sms():
            return [m for m in system.sms.for_order(no) if m["body"]["text"] == want]
        wait_for(sms, what="appointment SMS")
        assert sms()[0]["body"]["to"] == "13855556666"
        wait_for(lambda: im_texts(im, "/sms/centre", no), what="centre IM")
        assert im_texts(im, "/sms/centre", no) == [MOVED_IM.format(
            no=no, title="宽带报修", step="到达", old=minute(arrive), new=minute(appt),
            reason="与客户预约", unit="浦东分公司", phone="138****6666")]
        time.sleep(1)
        assert len(sms()) == 1  # one SMS although the fix step moved too
    finally:
        system.pg.query("DELETE FROM notify.contacts WHERE address LIKE %s", (im.url + "%",))
        sub.close()
        im.close()


def test_rain_postponement_tells_the_customer_the_new_time(system):
    sub = Subscriber("tcp://127.0.0.1:%d" % (7120 + system.offset))
    try:
        to_local(system, 11, 0)
        no = report(system, phone="13877778888")
        arrive = ts(timers(system, no)["arrive"]["due_at"])
        r = system.post("sla", "/v1/timers/%s/postpone" % no, {"reason": "rain"})
        assert r.status_code == 200, r.text
        new = arrive + datetime.timedelta(days=1)
        wait_for(lambda: [e for e in moved_events(sub, no) if e.step == events_pb2.ARRIVE],
                 what="SlaDeadlineMoved arrive")
        e = [e for e in moved_events(sub, no) if e.step == events_pb2.ARRIVE][0]
        assert (e.kind, e.reason, e.old_due_at, e.new_due_at) == \
            ("postpone", "rain", ms(arrive), ms(new))
        # answer and fix moved too: one event each, in the same transaction
        assert sorted(x.step for x in moved_events(sub, no)) == \
            [events_pb2.ANSWER, events_pb2.ARRIVE, events_pb2.FIX]
        want = RAIN_SMS.format(no=no, new=minute(new))

        def sms():
            return [m for m in system.sms.for_order(no) if "顺延" in m["body"]["text"]]
        wait_for(sms, what="postponement SMS")
        assert [m["body"]["text"] for m in sms()] == [want]
        assert sms()[0]["body"]["to"] == "13877778888"
        time.sleep(1)
        assert len(sms()) == 1
    finally:
        sub.close()


def test_pause_and_resume_are_told_with_the_time_stood_still(system):
    sub = Subscriber("tcp://127.0.0.1:%d" % (7120 + system.offset))
    try:
        to_local(system, 10, 30)
        no = new_order(system)
        at_handler(system, no)
        assert hact(system, no, {"action": "sign"}).status_code == 200
        due = ts(step_timer(system, no, "handle")["due_at"])
        paused_at = now(system)
        r = system.post("sla", "/v1/timers/%s/pause" % no, {"step": "handle", "reason": "等客户在家"})
        assert r.status_code == 200, r.text
        at(system, paused_at + datetime.timedelta(hours=3))
        r = system.post("sla", "/v1/timers/%s/resume" % no, {"step": "handle"})
        assert r.status_code == 200, r.text
        resumed = ts(r.json()["due_at"])
        wait_for(lambda: len(moved_events(sub, no)) == 2, what="pause and resume events")
        envs = sub.of("SlaDeadlineMoved", no)
        p, q = [e.sla_deadline_moved for e in envs]
        assert (p.kind, p.step, p.old_due_at, p.new_due_at, p.reason) == \
            ("pause", events_pb2.HANDLE, ms(due), 0, "等客户在家")
        assert (q.kind, q.old_due_at, q.new_due_at) == ("resume", ms(due), ms(resumed))
        # the deadline moved by exactly the time the clock stood still (the
        # events' times are the watcher's pause and resume), about 3 h
        stood_ms = envs[1].occurred_at - envs[0].occurred_at
        assert q.new_due_at - q.old_due_at == stood_ms
        assert abs(stood_ms - 3 * 3600 * 1000) < 5000
    finally:
        sub.close()
