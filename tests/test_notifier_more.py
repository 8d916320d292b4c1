"""Issue 5, second round, on a system of its own whose clock starts on Friday
2 October 2026 (National Day holidays, R-33): staff reminders wait for the
first working day's opening unless the order is urgent (R-39); a major problem
goes at once to the province customer-service dept and the HQ complaint centre
(R-24); the customer's interim reply and final answer go by the channel chosen
at intake (R-38); a closed order becomes a callback task (R-38); who may read
deliveries and customers' numbers (R-41)."""
import datetime
import time

import pytest

from conftest import SERVICES, SmsGateway, Service, System, complaint, wait_for
from notify_hours import next_opening, staff_hours
from smtp_sink import SmtpSink

TZ = datetime.timezone(datetime.timedelta(hours=8))
START = datetime.datetime(2026, 10, 2, 12, 0, tzinfo=TZ)  # Friday, 国庆节
ADDRESS = "上海市浦东新区张杨路100号"


@pytest.fixture(scope="module")
def cal():
    s = System()
    smtp = SmtpSink()
    s.smtp = smtp
    try:
        # The 2026 national calendar comes with `kesuctl load` (load calendar fills
        # sla's and the notifier's copy, docs/internals.md).
        assert s.pg.scalar("SELECT count(*) FROM notify.calendar_days WHERE day = '2026-10-03'"
                           " AND kind = 'holiday'") == 1
        s.kesuctl("clock", "set", START.isoformat())
        for name in SERVICES:
            extra = {"KESU_SMTP_URL": smtp.url, "KESU_SMTP_FROM": "kesu@example.com"} \
                if name == "notifier" else None
            s.services[name] = Service(s, name, extra)
            s.services[name].start(wait=False)
        for name in SERVICES:
            s.services[name].wait_ready()
        yield s
    finally:
        problems = s.shutdown()
        smtp.close()
    assert not problems, problems


def now(system):
    return datetime.datetime.fromisoformat(system.get("intake", "/v1/admin/clock").json()["now"])


def submit(system, **over):
    body = complaint(**over)
    r = system.post("intake", "/v1/complaints", body)
    assert r.status_code == 201, r.text
    return r.json()


def deliveries(system, order_no, token=None):
    r = system.get("notifier", "/v1/deliveries?order_no=" + order_no, token=token)
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


def local_minute(rfc):
    return rfc[:16].replace("T", " ")


def test_major_problem_reaches_province_and_hq_at_once_on_a_holiday(cal):
    im = SmsGateway()  # WeCom/DingTalk-style robots of the two departments
    try:
        loads = cal["notifier"].tail(1 << 20).count(" rules, ")
        cal.pg.query("INSERT INTO notify.contacts VALUES ('sh', 'province_cs', 'im', %s),"
                     " ('hq', 'hq', 'im', %s)", (im.url + "/sh", im.url + "/hq"))
        wait_for(lambda: cal["notifier"].tail(1 << 20).count(" rules, ") > loads,
                 what="notifier reloaded the contacts")
        major = submit(cal, gravity=True, title="媒体曝光：小区宽带全部中断",
                       customer={"name": "张三", "phone": "13800138000", "home_region": "310115",
                                 "address": ADDRESS})
        plain = submit(cal, title="宽带偶尔掉线",
                       customer={"name": "李四", "phone": "13800138001", "home_region": "310115",
                                 "address": ADDRESS})
        no = major["order_no"]
        text = "【重大问题】工单%s（媒体曝光：小区宽带全部中断），地区310115，客户张三 138****8000，请立即关注。" % no

        def sms_to(number):
            return [m for m in cal.sms.for_order(no) if m["body"]["to"] == number]
        # SMS to the Shanghai customer-service dept and to the HQ centre (data/notify_contacts.csv)
        wait_for(lambda: sms_to("13900000010") and sms_to("13900000020"), what="major SMS")
        assert [m["body"]["text"] for m in sms_to("13900000010")] == [text]
        assert [m["body"]["text"] for m in sms_to("13900000020")] == [text]

        def ims():
            return sorted((m["path"], m["body"]["text"]["content"]) for m in im.messages()
                          if no in m["body"]["text"]["content"])
        wait_for(lambda: len(ims()) == 2, what="major IM")
        assert ims() == [("/sms/hq", text), ("/sms/sh", text)]
        # the unit head's e-mail is immediate too (R-38 "immediate for major problems")
        def head_mail(order_no, title):
            return [m for m in cal.smtp.parsed()
                    if str(m["Subject"]) == "【新投诉】%s %s" % (order_no, title)]
        wait_for(lambda: head_mail(no, "媒体曝光：小区宽带全部中断"), what="head e-mail")
        # an ordinary complaint on the same holiday: no major messages; it
        # waits for the head's digest of the first working day (below)
        wait_for(lambda: cal.pg.query("SELECT unit_id, digest_day FROM notify.digest_items"
                                      " WHERE order_no = %s", (plain["order_no"],)),
                 what="plain recorded for the digest")
        assert cal.pg.query("SELECT unit_id, digest_day FROM notify.digest_items"
                            " WHERE order_no = %s", (plain["order_no"],)) == [("sh-pd", None)]
        ds = deliveries(cal, plain["order_no"])
        assert not [d for d in ds if d["recipient_kind"] in ("province_cs", "hq", "head")]
        assert head_mail(plain["order_no"], "宽带偶尔掉线") == []
        assert cal.pg.query("SELECT count(*) FROM notify.digest_items WHERE order_no = %s",
                            (no,)) == [(0,)]
        cal.digest_orders = [(plain["order_no"], "宽带偶尔掉线")]
    finally:
        cal.pg.query("DELETE FROM notify.contacts WHERE address LIKE %s", (im.url + "%",))
        im.close()


def test_warning_on_national_day_waits_for_thursday_unless_urgent(cal):
    common = dict(customer={"name": "王五", "phone": "13600001111", "home_region": "310115",
                            "address": ADDRESS})
    plain = submit(cal, title="国庆期间网络慢", **common)["order_no"]
    urgent = submit(cal, title="国庆期间完全无法上网", urgency=True, **common)["order_no"]
    cal.digest_orders += [(plain, "国庆期间网络慢"), (urgent, "国庆期间完全无法上网")]
    for no in (plain, urgent):
        wait_for(lambda: cal.get("sla", "/v1/timers/" + no).status_code == 200,
                 what="sla timer")
    # 90 % of the 24 h answer limit: Saturday 3 October (国庆节) ~10:00
    t = now(cal)
    sat = datetime.datetime(2026, 10, 3, 11, 0, tzinfo=TZ)
    cal.advance((sat - t).total_seconds())

    def warnings(no):  # of the final answer's timer
        return [d for d in deliveries(cal, no)
                if d["event_type"] == "SlaWarning" and "答复环节" in d["body"]]

    def warn_sms(no):
        return [m for m in cal.sms.for_order(no)
                if m["body"]["text"].startswith("【预警】工单" + no) and "答复环节" in m["body"]["text"]]
    # the urgent order's warning goes to the holder (sh-pd handler, SMS) at once
    wait_for(lambda: warn_sms(urgent), what="urgent warning SMS")
    assert [m["body"]["to"] for m in warn_sms(urgent)] == ["13900000001"]
    assert "136****1111" in warn_sms(urgent)[0]["body"]["text"]
    # the ordinary one is held until the opening of Thursday 8 October
    wait_for(lambda: warnings(plain), what="warning recorded")
    w = warnings(plain)
    assert [(d["channel"], d["status"]) for d in w] == [("sms", "pending")]
    open_, _, _ = staff_hours(cal, "310115")
    thursday = datetime.datetime.combine(datetime.date(2026, 10, 8), open_, TZ)
    assert datetime.datetime.fromisoformat(w[0]["next_attempt_at"]) == thursday
    assert warn_sms(plain) == []
    # Wednesday 7 October, the last holiday, at the opening hour: still held
    cal.advance((thursday - datetime.timedelta(days=1) - now(cal)).total_seconds())
    cal.advance(1)
    time.sleep(1.5)  # the sender picks due rows every 500 ms
    assert warnings(plain)[0]["status"] == "pending" and warn_sms(plain) == []
    cal.advance((thursday - now(cal)).total_seconds())
    wait_for(lambda: warn_sms(plain), what="warning SMS on Thursday")
    assert len(warn_sms(plain)) == 1
    sent = wait_for(lambda: warnings(plain)[0]["sent_at"], what="sent_at")
    assert datetime.datetime.fromisoformat(sent).date() == datetime.date(2026, 10, 8)


def test_unit_head_digest_at_the_first_opening(cal):
    # Thursday 8 October, the opening: one e-mail to the head of 浦东分公司
    # with the three ordinary complaints recorded over the holidays
    subject = "【投诉日报】浦东分公司 2026-10-08"

    def digests():
        return [m for m in cal.smtp.parsed() if str(m["Subject"]) == subject]
    wait_for(digests, what="digest e-mail")
    m = digests()[0]
    assert "head@sh-pd.example.com" in str(m["To"])
    lines = "\n".join("%d. %s %s（310115）" % (i + 1, no, title)
                      for i, (no, title) in enumerate(cal.digest_orders))
    assert m.get_content().strip() == (
        "浦东分公司负责人您好：2026-10-08上班前新记录的投诉共3件（重大问题已即时通报）：\n" + lines)
    assert cal.pg.query("SELECT DISTINCT digest_day::text FROM notify.digest_items") == \
        [("2026-10-08",)]
    time.sleep(2.5)  # the next digest passes find nothing new
    assert len(digests()) == 1


def test_interim_reply_and_answer_by_the_channel_chosen(cal):
    t = now(cal)
    opening = next_opening(cal, t)
    if opening != t:
        cal.advance((opening - t).total_seconds() + 60)
    by_mail = submit(cal, title="账单多扣费",
                     customer={"name": "赵六", "phone": "13700001234", "home_region": "310115",
                               "address": ADDRESS, "email": "zhaoliu@example.com",
                               "reply_channel": "email"})
    by_sms = submit(cal, title="套餐变更未生效",
                    customer={"name": "钱七", "phone": "13700005678", "home_region": "310115",
                              "address": ADDRESS})
    for ans in (by_mail, by_sms):
        no = ans["order_no"]
        wait_for(lambda: any(o["order_no"] == no for o in
                             cal.get("handler", "/v1/queue").json()["orders"]),
                 what="order at the handler")
        r = cal.post("handler", "/v1/orders/%s/actions" % no, {"action": "sign"})
        assert r.status_code == 200, r.text
        r = cal.post("handler", "/v1/orders/%s/actions" % no,
                     {"action": "interim_reply", "answer": "已安排专人核查，请耐心等待。"})
        assert r.status_code == 200, r.text
    no = by_mail["order_no"]

    def mails(subject):
        return [m for m in cal.smtp.parsed() if str(m["Subject"]) == subject]
    wait_for(lambda: mails("【客诉】工单%s处理进展" % no), what="interim e-mail")
    m = mails("【客诉】工单%s处理进展" % no)[0]
    assert "zhaoliu@example.com" in str(m["To"])
    body = m.get_content().strip()
    prefix = ("赵六您好：您的投诉（工单号%s，账单多扣费）正在由浦东分公司处理，我们将在%s前给您最终答复。"
              % (no, local_minute(by_mail["promised_by"])))
    # the interim text itself comes with WorkOrderStepChanged.answer (field 16) once the
    # router fills it
    assert body in (prefix, prefix + "已安排专人核查，请耐心等待。"), body
    # the SMS customer gets the interim reply by SMS, the e-mail customer none
    sms_no = by_sms["order_no"]
    wait_for(lambda: [x for x in cal.sms.for_order(sms_no) if "正在处理中" in x["body"]["text"]],
             what="interim SMS")
    interim = [x for x in cal.sms.for_order(sms_no) if "正在处理中" in x["body"]["text"]]
    assert interim[0]["body"]["to"] == "13700005678"
    assert interim[0]["body"]["text"].startswith(
        "【客诉】您的投诉（工单号%s）正在处理中，我们将在%s前给您最终答复。"
        % (sms_no, local_minute(by_sms["promised_by"])))
    assert [x for x in cal.sms.for_order(no) if "正在处理中" in x["body"]["text"]] == []
    # the final answer (close with the answer) by e-mail
    r = cal.post("handler", "/v1/orders/%s/actions" % no,
                 {"action": "close", "answer": "多扣的30元已退回您的账户。"})
    assert r.status_code == 200, r.text
    wait_for(lambda: mails("【客诉】工单%s答复" % no), what="answer e-mail")
    body = mails("【客诉】工单%s答复" % no)[0].get_content().strip()
    assert body == ("赵六您好：您的投诉（工单号%s，账单多扣费）已处理完毕。答复：多扣的30元已退回您的账户。"
                    "　感谢您的耐心与支持。" % no)
    closed = [d for d in deliveries(cal, no) if d["event_type"] == "WorkOrderClosed"]
    assert [(d["recipient_kind"], d["channel"]) for d in closed] == [("customer", "email")]
    assert len(mails("【客诉】工单%s答复" % no)) == 1
    cal.by_mail = no


def test_callback_task_and_who_reads_customer_numbers(cal):
    no = cal.by_mail
    handler = cal.token("h-sh", "handler", "310000")
    handler_bj = cal.token("h-bj", "handler", "110000")
    centre = cal.token("c-sh", "centre", "310000")
    viewer = cal.token("v-sh", "viewer", "310000")
    wait_for(lambda: [c for c in cal.get("notifier", "/v1/callbacks?unit=sh-pd&due=2027-01-01")
                      .json()["callbacks"] if c["order_no"] == no], what="callback task")
    task = [c for c in cal.get("notifier", "/v1/callbacks?unit=sh-pd&due=2027-01-01")
            .json()["callbacks"] if c["order_no"] == no][0]
    closed = datetime.datetime.fromisoformat(task["closed_at"])
    assert datetime.datetime.fromisoformat(task["due_at"]) == closed + datetime.timedelta(days=7)
    assert task["unit"] == "sh-pd" and task["unit_name"] == "浦东分公司"
    assert task["title"] == "账单多扣费" and task["customer_name"] == "赵六"
    assert task["customer_phone"] == "13700001234"
    due = (closed + datetime.timedelta(days=7)).date()
    def listed(day, token=None, unit="sh-pd"):
        r = cal.get("notifier", "/v1/callbacks?unit=%s&due=%s" % (unit, day), token=token)
        assert r.status_code == 200, r.text
        return [c for c in r.json()["callbacks"] if c["order_no"] == no]
    assert listed(due) and not listed(due - datetime.timedelta(days=1))
    assert listed(due, unit="sh-xh") == []
    assert listed(due, token=handler)[0]["customer_phone"] == "137****1234"
    assert listed(due, token=centre)[0]["customer_phone"] == "13700001234"
    assert listed(due, token=handler_bj) == []
    r = cal.get("notifier", "/v1/callbacks?due=2026-13-01")
    assert r.status_code == 422 and r.json()["error"]["field"] == "due"
    # deliveries: admin and centre see the customer's number, a handler masked, a viewer nothing
    def customer_rows(token):
        return sorted(d["recipient"] for d in deliveries(cal, no, token)
                      if d["recipient_kind"] == "customer" and d["channel"] == "sms")
    assert customer_rows(None) == ["13700001234"]
    assert customer_rows(centre) == ["13700001234"]
    assert customer_rows(handler) == ["137****1234"]
    assert deliveries(cal, no, handler_bj) == []
    r = cal.get("notifier", "/v1/deliveries?order_no=" + no, token=viewer)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = cal.get("notifier", "/v1/callbacks", token=viewer)
    assert r.status_code == 403
