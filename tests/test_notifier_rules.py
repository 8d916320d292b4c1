"""Issue 5: rules and templates as data (kesuctl load notify), masking in staff
copies (R-41), quiet hours (R-39), SLA warnings and breaches to the holder
unit and the supervisor over SMS, IM webhook and SMTP e-mail (R-38)."""
import datetime
import os
import shutil
import subprocess
import tempfile
import time

from conftest import BIN, ROOT, SmsGateway, complaint, notifier_with_sinks, wait_for
from notify_hours import next_opening, working_day

RECEIPT = "【客诉】您的投诉已受理，工单号{order_no}，我们将在{promised}前答复您。"


def now(system):
    r = system.get("intake", "/v1/admin/clock")
    return datetime.datetime.fromisoformat(r.json()["now"])


def advance_to(system, hh, mm):
    """Moves the clock forward to the next local hh:mm (+08:00)."""
    t = now(system)
    target = t.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if target <= t:
        target += datetime.timedelta(days=1)
    system.advance((target - t).total_seconds())
    return target


def deliveries(system, order_no):
    r = system.get("notifier", "/v1/deliveries?order_no=" + order_no)
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


def submit(system, **over):
    r = system.post("intake", "/v1/complaints", complaint(**over))
    assert r.status_code == 201, r.text
    return r.json()


def test_loader_refuses_a_template_with_an_unknown_variable(system):
    home = tempfile.mkdtemp(prefix="kesu-notify-home-")
    try:
        shutil.copytree(os.path.join(ROOT, "data"), os.path.join(home, "data"))
        path = os.path.join(home, "data", "notify_templates.csv")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace("工单号{order_no}，我们将在", "工单号{order_numbr}，我们将在", 1))
        env = dict(system.env, KESU_HOME=home)
        r = subprocess.run([os.path.join(BIN, "kesuctl"), "load", "notify"], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 1, r
        assert "data/notify_templates.csv:2:" in r.stderr, r.stderr
        assert "unknown variable {order_numbr}" in r.stderr, r.stderr
        assert system.pg.scalar("SELECT body FROM notify.templates WHERE code = 'receipt_sms'") \
            == "【客诉】您的投诉已受理，工单号{order_no}，我们将在{promised_by}前答复您。"
        # The shipped data loads (and is idempotent).
        r = system.kesuctl("load", "notify")
        assert "notify" in r.stdout
        assert system.pg.scalar("SELECT count(*) FROM notify.rules WHERE event_type = "
                                "'ComplaintReceived' AND recipient = 'customer'") == 1
    finally:
        shutil.rmtree(home)


def test_receipt_text_and_masked_staff_copy(system):
    im = SmsGateway()  # a WeCom/DingTalk-style robot endpoint
    try:
        system.pg.query("INSERT INTO notify.contacts VALUES ('sh-pd', 'handler', 'im', %s)",
                        (im.url,))
        time.sleep(1)  # the notifier reloads on NOTIFY notify_reference
        # business hours (a working day: R-33 calendar), so the (not urgent)
        # dispatch message goes out at once
        t = now(system) + datetime.timedelta(minutes=10)
        opening = next_opening(system, t)
        if opening != t:
            system.advance((opening - t).total_seconds() + 60)
        ans = submit(system, region="310115",
                     customer={"name": "李雷", "phone": "13812341234", "home_region": "310115",
                               "address": "上海市浦东新区张杨路100号"},
                     title="宽带频繁掉线")
        no = ans["order_no"]
        promised = ans["promised_by"][:16].replace("T", " ")
        wait_for(lambda: system.sms.for_order(no), what="receipt")
        sms = system.sms.for_order(no)
        assert len(sms) == 1
        assert sms[0]["body"]["to"] == "13812341234"
        assert sms[0]["body"]["text"] == RECEIPT.format(order_no=no, promised=promised)

        def im_for_order():
            return [m for m in im.messages() if no in m["body"]["text"]["content"]]
        wait_for(im_for_order, what="dispatch IM to the holder unit")
        msg = im_for_order()[0]
        assert msg["body"]["msgtype"] == "text"
        content = msg["body"]["text"]["content"]
        assert "138****1234" in content and "13812341234" not in content
        assert "李雷" in content and "宽带频繁掉线" in content
        assert msg["path"] == "/sms"
        key = msg["headers"]["Idempotency-Key"]
        assert ":handler:im:" in key and im.url not in key  # the address only as a hash
        wait_for(lambda: {(x["channel"], x["status"]) for x in deliveries(system, no)} >=
                 {("sms", "sent"), ("im", "sent")}, what="outcomes recorded")
        assert len(im_for_order()) == 1
    finally:
        system.pg.query("DELETE FROM notify.contacts WHERE address = %s", (im.url,))
        im.close()


def test_quiet_hours_hold_customer_sms_until_eight(system):
    at = advance_to(system, 22, 30)
    ans = submit(system, region="310115",
                 customer={"name": "韩梅梅", "phone": "13987654321", "home_region": "310115",
                               "address": "上海市浦东新区张杨路100号"},
                 title="夜间投诉")
    no = ans["order_no"]
    wait_for(lambda: [d for d in deliveries(system, no) if d["channel"] == "sms"],
             what="delivery recorded")
    d = [d for d in deliveries(system, no) if d["channel"] == "sms"][0]
    assert d["status"] == "pending"
    release = datetime.datetime.fromisoformat(d["next_attempt_at"])
    assert release == (at + datetime.timedelta(days=1)).replace(hour=8, minute=0)
    time.sleep(2)
    assert system.sms.for_order(no) == []  # held
    advance_to(system, 8, 0)
    wait_for(lambda: system.sms.for_order(no), what="SMS at 08:00")
    sms = system.sms.for_order(no)
    assert len(sms) == 1 and sms[0]["body"]["to"] == "13987654321"
    assert sms[0]["body"]["text"] == RECEIPT.format(
        order_no=no, promised=ans["promised_by"][:16].replace("T", " "))
    def sent_at():  # the gateway answers before the outcome is written
        return [d for d in deliveries(system, no) if d["channel"] == "sms"][0]["sent_at"]
    sent = datetime.datetime.fromisoformat(wait_for(sent_at, what="sent_at recorded"))
    assert sent.hour == 8 and sent.date() == (at + datetime.timedelta(days=1)).date()


def test_sla_warning_and_breach_reach_holder_and_supervisor(system):
    with notifier_with_sinks(system, {"KESU_SMS_TOKEN": "gw-secret"}) as (_, im, smtp):
        system.pg.query("INSERT INTO notify.contacts VALUES ('sh-pd', 'handler', 'im', %s),"
                        " ('sh-pd', 'supervisor', 'im', %s)", (im.url + "/holder",
                                                                  im.url + "/supervisor"))
        time.sleep(1)
        start = advance_to(system, 8, 0)
        while not working_day(system, (start + datetime.timedelta(days=1)).date()):
            system.advance(86400)  # the warning falls on a working day's early morning
            start += datetime.timedelta(days=1)
        ans = submit(system, region="310115",
                     customer={"name": "王五", "phone": "13600001111", "home_region": "310115",
                               "address": "上海市浦东新区张杨路100号"},
                     title="光猫故障无人处理")
        no = ans["order_no"]
        wait_for(lambda: system.get("sla", "/v1/timers/" + no).status_code == 200,
                 what="sla timer")

        def im_to(who, prefix):
            return [m for m in im.messages()
                    if m["body"]["text"]["content"].startswith(prefix + no) and
                    m["path"] == "/sms/" + who]

        # 90 % of 24 h = 05:36 the next morning: the warning is recorded, the
        # holder's (not urgent) messages wait for business hours.
        system.advance(21 * 3600 + 40 * 60)
        wait_for(lambda: [d for d in deliveries(system, no) if d["event_type"] == "SlaWarning"],
                 what="warning deliveries")
        warn = [d for d in deliveries(system, no) if d["event_type"] == "SlaWarning"]
        assert {d["channel"] for d in warn} == {"sms", "im"}
        assert all(d["status"] == "pending" for d in warn), warn
        at = start + datetime.timedelta(hours=21, minutes=40)
        opening = next_opening(system, at)
        assert opening > at and opening.date() == at.date()
        assert {datetime.datetime.fromisoformat(d["next_attempt_at"]) for d in warn} == {opening}
        time.sleep(1.5)
        assert im_to("holder", "【预警工单】") == []
        # the opening (warning goes out), past 100 % at 08:00 (breach).
        system.advance(max((opening - at).total_seconds(), 2 * 3600 + 20 * 60) + 60)
        wait_for(lambda: im_to("holder", "【预警工单】"), what="warning IM to the holder")
        holder = im_to("holder", "【预警工单】")[0]["body"]["text"]["content"]
        assert "136****1111" in holder and "13600001111" not in holder
        wait_for(lambda: im_to("supervisor", "【督办工单】"), what="breach IM to the supervisor")
        assert "136****1111" in im_to("supervisor", "【督办工单】")[0]["body"]["text"]["content"]
        # supervisor's SMS (contacts from data/notify_contacts.csv) and e-mail
        wait_for(lambda: [m for m in system.sms.for_order(no) if m["body"]["to"] == "13900000002"],
                 what="breach SMS to the supervisor")
        sup_sms = [m for m in system.sms.for_order(no) if m["body"]["to"] == "13900000002"][0]
        assert "136****1111" in sup_sms["body"]["text"]
        assert sup_sms["headers"]["Authorization"] == "Bearer gw-secret"
        assert "Authorization" not in im_to("holder", "【预警工单】")[0]["headers"]

        def mails():
            return [m for m in smtp.parsed() if str(m["Subject"]).startswith("【督办】工单" + no)]
        wait_for(mails, what="breach e-mail")
        m = mails()[0]
        assert str(m["Subject"]) == "【督办】工单%s已超时" % no
        assert m["To"] == "<supervisor@sh-pd.example.com>" or \
            "supervisor@sh-pd.example.com" in str(m["To"])
        assert m.get_content_type() == "text/plain"
        assert m.get_content_charset() == "utf-8"
        body = m.get_content()
        assert no in body and "136****1111" in body and "13600001111" not in body
        assert "光猫故障无人处理" in body
        assert any("<supervisor@sh-pd.example.com>" in r for x in smtp.messages for r in x["to"])
        # the new complaint is in the unit head's digest of the next opening
        digest = "【投诉日报】浦东分公司 %s" % opening.date().isoformat()

        def digests():
            return [m for m in smtp.parsed() if str(m["Subject"]) == digest]
        wait_for(digests, what="the head's digest e-mail")
        assert "head@sh-pd.example.com" in str(digests()[0]["To"])
        assert ". %s 光猫故障无人处理（310115）\n" % no in digests()[0].get_content() + "\n"
        # each once
        time.sleep(1)
        assert len(im_to("holder", "【预警工单】")) == 1
        assert len(im_to("supervisor", "【督办工单】")) == 1
        assert len(mails()) == 1
        assert len(digests()) == 1
