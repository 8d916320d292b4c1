"""Issue 5, third round (SPEC R-38, R-36, R-39): who hears of a transfer or an
assist request (the receiving unit's on-duty handler: IM, + SMS for a VIP or
high-priority order — R-15 priority >= 7, data/notify_rules.csv), the
customer's answer by letter (a print task: GET /v1/letters, POST
/v1/letters/{id}/printed), the holder told of a reclassify's new deadlines,
the customer told of a rain postponement after the crew arrived, the
SLA-watcher's morning due list to the unit head (at the unit's business
opening) and the survey SMS of a closed repair.

Runs on the shared system; its notifier is restarted with an SMTP sink for
this module and restored afterwards. The clock only moves forward: each test
first moves it to the local time of day it needs."""
import datetime
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import BIN, ROOT, notifier_with_sinks, wait_for
from notify_hours import next_opening, working_day
from streams import Subscriber
from test_sla_repairs import at, report
from test_sla_steps import at_handler, hact, new_order, step_timer, timers
from test_sla_policies import ts
from test_sla_told import MOVED_IM, minute, working_morning

TZ = datetime.timezone(datetime.timedelta(hours=8))
ADDR = "上海市浦东新区世纪大道1号"

TRANSFER_IM = ("【转派工单】工单{no}（{title}）已转派至{unit}，原因：{reason}。客户{name} {phone}，"
               "承诺时限{promised}，请及时签收处理。")
TRANSFER_SMS = ("【转派】工单{no}（{title}）已转派至{unit}，原因：{reason}。客户{name} {phone}，"
                "请于{promised}前处理。")
ASSIST_IM = "【协办】工单{no}（{title}）请{unit}协助处理。客户{name} {phone}，承诺时限{promised}。"
ASSIST_SMS = "【协办】工单{no}（{title}）请{unit}协助处理，承诺时限{promised}。客户{name} {phone}。"
FIX_RAIN_SMS = ("【客诉】受降雨影响，您的报修（工单号{no}）修复时间雨天顺延，我们将于{new}前修复，"
                "敬请谅解。")
SURVEY_SMS = ("【回访】您的报修（工单号{no}）已由浦东分公司处理完毕。请回复数字评价：1 满意，"
              "2 基本满意，3 不满意。")

XH_SMS, HP_SMS = "13900000031", "13900000032"   # the receiving units' on-duty handlers
PD_SMS = "13900000001"                          # sh-pd's, data/notify_contacts.csv


@pytest.fixture(scope="module")
def env(system):
    """The shared system's notifier with an SMTP sink, and IM robots for the
    handlers of sh-pd, sh-xh, sh-hp and the Shanghai centre."""
    with notifier_with_sinks(system) as (notifier, im, smtp):
        try:
            loads = notifier.tail(1 << 20).count(" rules, ")
            system.pg.query(
                "INSERT INTO notify.contacts VALUES ('sh-pd', 'handler', 'im', %s),"
                " ('sh-xh', 'handler', 'im', %s), ('sh-hp', 'handler', 'im', %s),"
                " ('sh', 'province_cs', 'im', %s),"
                " ('sh-xh', 'handler', 'sms', %s), ('sh-hp', 'handler', 'sms', %s)",
                (im.url + "/pd", im.url + "/xh", im.url + "/hp", im.url + "/centre", XH_SMS,
                 HP_SMS))
            wait_for(lambda: notifier.tail(1 << 20).count(" rules, ") > loads,
                     what="notifier reloaded the contacts")
            yield {"im": im, "smtp": smtp}
        finally:  # the IM robots' rows go with the sinks
            system.pg.query("DELETE FROM notify.contacts WHERE address IN (%s, %s)",
                            (XH_SMS, HP_SMS))


def caught_up(system):
    """The notifier has applied every event its producers have written (its
    deliveries are recorded in the same transaction as its offsets)."""
    for p in ("intake", "router", "sla"):
        head = system.pg.scalar("SELECT coalesce(max(seq), 0) FROM %s.outbox" % p)
        done = system.pg.scalar("SELECT coalesce(max(last_seq), 0) FROM notify.offsets"
                                " WHERE producer = %s", (p,))
        if done < head:
            return False
    return True


def deliveries(system, no, token=None):
    r = system.get("notifier", "/v1/deliveries?order_no=" + no, token=token)
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


def settled(system, no):
    """Caught up, and nothing about order no still waiting to be sent."""
    wait_for(lambda: caught_up(system), what="notifier caught up")
    wait_for(lambda: all(d["status"] not in ("pending", "sending")
                         for d in deliveries(system, no)), what="deliveries of %s sent" % no)


def promised(system, no):
    return minute(ts(system.get("router", "/v1/orders/" + no).json()["promised_by"]))


def staff_messages(system, im, no, prefixes):
    """(channel, to, text) of the staff messages about order no whose text
    starts with one of prefixes, sorted."""
    out = [("sms", m["body"]["to"], m["body"]["text"]) for m in system.sms.for_order(no)
           if m["body"]["text"].startswith(prefixes)]
    out += [("im", m["path"], m["body"]["text"]["content"]) for m in im.messages()
            if m["body"]["text"]["content"].startswith(prefixes)
            and no in m["body"]["text"]["content"]]
    return sorted(out)


def test_transfer_and_assist_reach_the_receiving_units_handler(system, env):
    """R-38: the receiving unit's on-duty handler hears of a transfer / an
    assist request by IM, and by SMS too for a VIP or high-priority order;
    the old holder is not told."""
    im = env["im"]
    working_morning(system)
    cu = dict(home_region="310115", address=ADDR)
    vip = new_order(system, title="VIP宽带中断",
                    customer=dict(cu, name="孙丽", phone="13811112222", level="vip"))
    high = new_order(system, title="全省专线中断", tier="national", urgency=True,
                     customer=dict(cu, name="周明", phone="13811113333"))
    plain_t = new_order(system, title="宽带偶尔掉线",
                        customer=dict(cu, name="吴军", phone="13811114444"))
    plain_a = new_order(system, title="宽带网速慢",
                        customer=dict(cu, name="郑洁", phone="13811115555"))
    assert [system.get("router", "/v1/orders/" + n).json()["priority"]
            for n in (vip, high, plain_t, plain_a)] == [11, 7, 1, 1]
    for no in (vip, high, plain_t, plain_a):
        at_handler(system, no)
        assert hact(system, no, {"action": "sign"}).status_code == 200
    for no in (vip, plain_t):
        r = hact(system, no, {"action": "transfer", "to_unit": "sh-xh", "reason": "属徐汇辖区"})
        assert r.status_code == 200 and r.json()["holder_unit"] == "sh-xh", r.text
    for no in (high, plain_a):
        r = hact(system, no, {"action": "assist", "to_unit": "sh-hp", "reason": "需黄浦机房配合"})
        assert r.status_code == 200 and r.json()["holder_unit"] == "sh-pd", r.text

    def want(no, title, name, phone, channels, unit, path, number):
        kw = dict(no=no, title=title, name=name, phone=phone, promised=promised(system, no),
                  unit=unit, reason="属徐汇辖区")
        im_t, sms_t = (TRANSFER_IM, TRANSFER_SMS) if unit == "徐汇分公司" else (ASSIST_IM, ASSIST_SMS)
        out = [("im", "/sms/" + path, im_t.format(**kw))]
        if "sms" in channels:
            out.append(("sms", number, sms_t.format(**kw)))
        return sorted(out)

    expected = {
        vip: want(vip, "VIP宽带中断", "孙丽", "138****2222", ("im", "sms"), "徐汇分公司", "xh",
                  XH_SMS),
        plain_t: want(plain_t, "宽带偶尔掉线", "吴军", "138****4444", ("im",), "徐汇分公司", "xh",
                      XH_SMS),
        high: want(high, "全省专线中断", "周明", "138****3333", ("im", "sms"), "黄浦分公司", "hp",
                   HP_SMS),
        plain_a: want(plain_a, "宽带网速慢", "郑洁", "138****5555", ("im",), "黄浦分公司", "hp",
                      HP_SMS),
    }
    for no, msgs in expected.items():
        settled(system, no)
        assert staff_messages(system, im, no, ("【转派", "【协办")) == msgs, no
        # one delivery per (event, recipient, channel), all of them to the receiving unit
        step = [(d["channel"], d["recipient_kind"], d["status"]) for d in deliveries(system, no)
                if d["event_type"] == "WorkOrderStepChanged"]
        assert sorted(step) == sorted((c, "handler", "sent") for c, _, _ in msgs), no
    # the old holder (sh-pd: IM robot /pd, SMS 13900000001) heard nothing of it
    for no in expected:
        assert not [m for m in staff_messages(system, im, no, ("【转派", "【协办"))
                    if m[1] in ("/sms/pd", PD_SMS)]
    # a VIP / high-priority order's first dispatch: SMS to sh-pd's handler as well
    dispatch = {no: [m["body"]["to"] for m in system.sms.for_order(no)
                     if m["body"]["text"].startswith("【工单】新工单")]
                for no in expected}
    assert dispatch == {vip: [PD_SMS], high: [PD_SMS], plain_t: [], plain_a: []}
    # the dispatch to the receiving unit that follows a transfer is not told twice
    for no in (vip, plain_t):
        assert sorted((d["channel"], d["recipient"]) for d in deliveries(system, no)
                      if d["event_type"] == "WorkOrderDispatched") == \
            [("im", im.url + "/pd")] + ([("sms", PD_SMS)] if no == vip else [])


def test_answers_by_letter_are_print_tasks(system, env):
    """R-38 "interim reply, final answer … letter as chosen at intake": each
    becomes a letter to print, listed until marked printed (once)."""
    working_morning(system)
    no = new_order(system, title="话费争议",
                   customer={"name": "钱芳", "phone": "13822223333", "home_region": "310115",
                             "address": ADDR, "reply_channel": "letter"})
    at_handler(system, no)
    assert hact(system, no, {"action": "sign"}).status_code == 200
    r = hact(system, no, {"action": "interim_reply", "answer": "已核查话费明细，正在办理退费。"})
    assert r.status_code == 200, r.text
    r = hact(system, no, {"action": "close", "answer": "已退还多收话费20元。"})
    assert r.status_code == 200 and r.json()["state"] == "closed", r.text
    settled(system, no)
    p = promised(system, no)
    interim = ("%s\n钱芳 收\n\n钱芳您好：\n您的投诉（工单号%s，话费争议）正在由浦东分公司处理，"
               "我们将在%s前给您最终答复。\n已核查话费明细，正在办理退费。" % (ADDR, no, p))
    final = ("%s\n钱芳 收\n\n钱芳您好：\n您的投诉（工单号%s，话费争议）已处理完毕。答复如下：\n"
             "已退还多收话费20元。\n感谢您的耐心与支持。\n浦东分公司" % (ADDR, no))

    def letters(status="pending", token=None):
        r = system.get("notifier", "/v1/letters?status=%s&order_no=%s" % (status, no),
                       token=token)
        assert r.status_code == 200, r.text
        return r.json()["letters"]
    got = letters()
    assert [(x["event_type"], x["address"], x["body"], x["status"], x["printed_at"])
            for x in got] == [("WorkOrderStepChanged", ADDR, interim, "pending", None),
                              ("WorkOrderClosed", ADDR, final, "pending", None)]
    # the customer chose letters: no SMS / e-mail answer, only the receipt SMS
    texts = [m["body"]["text"] for m in system.sms.for_order(no)]
    assert len(texts) == 1 and texts[0].startswith("【客诉】您的投诉已受理"), texts
    assert sorted((d["event_type"], d["channel"]) for d in deliveries(system, no)
                  if d["recipient_kind"] == "customer") == [
        ("ComplaintReceived", "sms"), ("WorkOrderClosed", "letter"),
        ("WorkOrderStepChanged", "letter")]

    # printed: once — a second call answers the same, the list no longer shows it
    lid = got[1]["id"]
    r1 = system.post("notifier", "/v1/letters/%d/printed" % lid, {})
    assert r1.status_code == 200, r1.text
    assert (r1.json()["id"], r1.json()["status"], r1.json()["order_no"]) == (lid, "printed", no)
    system.advance(60)
    r2 = system.post("notifier", "/v1/letters/%d/printed" % lid, {})
    assert r2.status_code == 200 and r2.json() == r1.json(), r2.text
    assert [x["id"] for x in letters()] == [got[0]["id"]]
    printed = letters("printed")
    assert [(x["id"], x["body"], x["printed_at"]) for x in printed] == \
        [(lid, final, r1.json()["printed_at"])]
    assert [(d["status"], d["attempts"]) for d in deliveries(system, no)
            if d["id"] == lid] == [("printed", 1)]
    # not a letter, unknown, malformed: 404; a bad status filter: 422
    sms_id = [d["id"] for d in deliveries(system, no) if d["channel"] == "sms"][0]
    for path in ("/v1/letters/%d/printed" % sms_id, "/v1/letters/999999999/printed",
                 "/v1/letters/abc/printed"):
        r = system.post("notifier", path, {})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (path, r.text)
    r = system.get("notifier", "/v1/letters?status=lost")
    assert r.status_code == 422 and r.json()["error"]["field"] == "status", r.text
    # staff of another province neither see nor print Shanghai's letters
    bj = system.token("letters-bj", "centre", "110000")
    assert letters(token=bj) == []
    r = system.post("notifier", "/v1/letters/%d/printed" % got[0]["id"], {}, token=bj)
    assert r.status_code == 404, r.text
    assert [x["id"] for x in letters()] == [got[0]["id"]]


def test_reclassify_tells_the_holder_the_new_deadlines(system, env):
    """R-34/R-35: a reclassify that moves the order's deadlines is told to the
    holder unit's handler (IM), one message per moved step."""
    im = env["im"]
    working_morning(system)
    no = new_order(system, title="集团专线故障",
                   customer={"name": "冯刚", "phone": "13833334444", "home_region": "310115",
                             "address": ADDR})
    at_handler(system, no)
    assert hact(system, no, {"action": "sign"}).status_code == 200
    step_timer(system, no, "handle")
    centre = system.token("r38-sh-centre", "centre", "310000")
    r = system.post("router", "/v1/orders/%s/actions" % no,
                    {"action": "reclassify", "tier": "provincial", "reason": "集团重要客户"},
                    token=centre)
    assert r.status_code == 200, r.text

    def moved():
        body = system.get("sla", "/v1/timers/" + no).json()
        return [m for m in body["moves"] if m["kind"] == "reclassify"]
    wait_for(moved, what="deadlines moved by the reclassify")
    zh = {"answer": "答复", "handle": "处理"}
    want = sorted(MOVED_IM.format(no=no, title="集团专线故障", step=zh[m["step"]],
                                  old=minute(ts(m["old_due_at"])), new=minute(ts(m["new_due_at"])),
                                  reason="集团重要客户", unit="浦东分公司", phone="138****4444")
                  for m in moved())
    settled(system, no)
    texts = sorted(t for ch, path, t in staff_messages(system, im, no, ("【时限变更】",))
                   if path == "/sms/pd")
    assert texts == want
    # the customer is not told of a re-tier
    assert [m for m in system.sms.for_order(no) if "时限" in m["body"]["text"]] == []


def test_rain_after_arrival_postpones_the_fix_and_tells_the_customer(system, env):
    """R-29/R-38: a rain postponement once the crew has arrived moves the fix
    step; the customer gets one SMS with the new time, the holder and the
    centre an IM."""
    im = env["im"]
    working_morning(system)
    no = report(system, phone="13844445555")
    at_handler(system, no)
    assert hact(system, no, {"action": "sign"}).status_code == 200
    assert hact(system, no, {"action": "arrive"}).status_code == 200
    step_timer(system, no, "arrive", state="closed")
    wait_for(lambda: caught_up(system), what="notifier saw the arrival")
    fix = ts(timers(system, no)["fix"]["due_at"])
    r = system.post("sla", "/v1/timers/%s/postpone" % no, {"reason": "rain"})
    assert r.status_code == 200, r.text
    new = fix + datetime.timedelta(days=1)
    step_timer(system, no, "fix", due_at=new.isoformat(timespec="milliseconds"))
    settled(system, no)
    sms = [m for m in system.sms.for_order(no) if "顺延" in m["body"]["text"]]
    assert [(m["body"]["to"], m["body"]["text"]) for m in sms] == \
        [("13844445555", FIX_RAIN_SMS.format(no=no, new=minute(new)))]
    staff = MOVED_IM.format(no=no, title="宽带报修", step="修复", old=minute(fix), new=minute(new),
                            reason="雨天", unit="浦东分公司", phone="138****5555")
    assert [(p, t) for ch, p, t in staff_messages(system, im, no, ("【时限变更】",))] == \
        [("/sms/centre", staff), ("/sms/pd", staff)]


def test_closed_repair_sends_the_survey_sms(system, env):
    """R-38 "callback due … SMS survey where configured": the rule
    WorkOrderClosed,kind=repair → the customer's survey SMS, exact text."""
    working_morning(system)
    no = report(system, phone="13855556666")
    at_handler(system, no)
    assert hact(system, no, {"action": "sign"}).status_code == 200
    assert hact(system, no, {"action": "arrive"}).status_code == 200
    r = hact(system, no, {"action": "close", "answer": "已更换光猫，网络恢复。",
                          "receipt_signed": True})
    assert r.status_code == 200 and r.json()["state"] == "closed", r.text
    settled(system, no)
    survey = [m for m in system.sms.for_order(no) if m["body"]["text"].startswith("【回访】")]
    assert [(m["body"]["to"], m["body"]["text"]) for m in survey] == \
        [("13855556666", SURVEY_SMS.format(no=no))]
    assert [d["status"] for d in deliveries(system, no) if d["body"].startswith("【回访】")] == \
        ["sent"]


def test_morning_due_list_reaches_the_unit_head_at_opening(system, env):
    """R-36 + R-38: the SLA-watcher's 08:00 list of steps due today and
    overdue goes to each unit head by e-mail — one per unit and day, held to
    the unit's business opening (R-39)."""
    smtp = env["smtp"]
    sub = Subscriber("tcp://127.0.0.1:%d" % (7120 + system.offset), types=("DailyDueList",))
    try:
        # a working day followed by a working day: today's order is due tomorrow
        t = working_morning(system)
        while not working_day(system, (t + datetime.timedelta(days=1)).date()):
            system.advance(86400)
            t = working_morning(system)
        no = new_order(system, title="宽带无法拨号",
                       customer={"name": "陈静", "phone": "13866667777", "home_region": "310115",
                                 "address": ADDR})
        due = ts(timers(system, no)["answer"]["due_at"])
        day = (t + datetime.timedelta(days=1)).date()
        assert due.astimezone(TZ).date() == day
        at(system, datetime.datetime.combine(day, datetime.time(8, 0, 5), TZ))
        lists = wait_for(lambda: [e.daily_due_list for e in sub.of("DailyDueList")
                                  if e.daily_due_list.date == day.isoformat()],
                         what="DailyDueList of %s" % day)
        unit = [u for u in lists[0].units if u.unit_id == "sh-pd"][0]
        assert no + "/answer" in unit.due_today_orders
        wait_for(lambda: caught_up(system), what="notifier caught up")
        opening = next_opening(system, datetime.datetime.combine(day, datetime.time(8, 0), TZ))

        def rows():
            return system.pg.query(
                "SELECT delivery_key, status, next_attempt_at FROM notify.deliveries"
                " WHERE event_type = 'DailyDueList' AND delivery_key LIKE %s",
                ("due:sh-pd:%s:%%" % day.isoformat(),))
        r = rows()
        assert [(k.split(":")[3:5], s, n) for k, s, n in r] == \
            [(["head", "email"], "pending", opening)]
        subject = "【今日到期】浦东分公司 %s" % day.isoformat()

        def mails():
            return [m for m in smtp.parsed() if str(m["Subject"]) == subject]
        assert mails() == []
        at(system, opening + datetime.timedelta(seconds=5))
        wait_for(mails, what="due-list e-mail")
        m = mails()[0]
        assert "head@sh-pd.example.com" in str(m["To"])
        assert m.get_content_charset() == "utf-8"

        def lines(keys):
            out = []
            for i, k in enumerate(keys):
                o, step = k.rsplit("/", 1)
                title = system.get("intake", "/v1/complaints/" + o).json()["title"]
                out.append("\n%d. %s %s环节 %s" % (i + 1, o, {"answer": "答复", "handle": "处理",
                                                             "review": "复核", "feedback": "反馈",
                                                             "arrive": "到达", "fix": "修复",
                                                             "callback": "回访"}[step], title))
            return "".join(out) or "无"
        body = ("浦东分公司负责人您好：%s当天到期的流程环节%d个：%s\n已超期的流程环节%d个：%s"
                % (day.isoformat(), unit.due_today, lines(unit.due_today_orders), unit.overdue,
                   lines(unit.overdue_orders)))
        assert m.get_content().strip() == body.strip()
        # once per unit and day
        wait_for(lambda: [s for _, s, _ in rows()] == ["sent"], what="due list marked sent")
        assert len(mails()) == 1
    finally:
        sub.close()


def test_loader_checks_priority_conditions_and_letters(system):
    """kesuctl load notify: `priority>=N` takes a whole number and only
    priority compares with >=; a letter goes to the customer only. A refused
    file changes nothing."""
    home = tempfile.mkdtemp(prefix="kesu-notify-r38-")
    try:
        shutil.copytree(os.path.join(ROOT, "data"), os.path.join(home, "data"))
        path = os.path.join(home, "data", "notify_rules.csv")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        line = text.splitlines().index(
            "WorkOrderDispatched,priority>=7,handler,sms,dispatch_sms,true") + 1
        for bad, why in (
                ("WorkOrderDispatched,priority>=high,handler,sms,dispatch_sms,true",
                 "priority needs a whole number, not 'high'"),
                ("WorkOrderDispatched,tier>=2,handler,sms,dispatch_sms,true",
                 "only priority compares with >= ('tier>=')"),
                ("WorkOrderDispatched,,handler,letter,answer_letter,true",
                 "a letter goes to the customer only")):
            with open(path, "w", encoding="utf-8") as f:
                f.write(text.replace(
                    "WorkOrderDispatched,priority>=7,handler,sms,dispatch_sms,true", bad, 1))
            r = subprocess.run([os.path.join(BIN, "kesuctl"), "load", "notify"],
                               env=dict(system.env, KESU_HOME=home), capture_output=True,
                               text=True)
            assert r.returncode == 1, r
            assert "data/notify_rules.csv:%d: %s" % (line, why) in r.stderr, r.stderr
        assert system.pg.query("SELECT conditions FROM notify.rules WHERE event_type ="
                               " 'WorkOrderDispatched' AND channel = 'sms'") == [("priority>=7",)]
        assert system.pg.query("SELECT channel FROM notify.templates WHERE code ="
                               " 'answer_letter'") == [("letter",)]
    finally:
        shutil.rmtree(home)
