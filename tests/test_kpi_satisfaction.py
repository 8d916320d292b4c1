"""Issue 6 (round 3): the four KPIs the router's WorkOrderStepChanged now feeds —
satisfaction_rate, escalated_satisfaction_rate, order_quality_rate and
service_complaints — through the real services, values computed by hand.

Definitions (docs/internals.md "Analytics KPIs"):
- surveyed = the order has a callback satisfaction (the latest callback counts);
  satisfied = 4 or 5 of 5.
- 合格 (order_quality_rate) = closed, never returned/transferred for misrouting, no
  callback found the handling at fault, never reopened; ÷ orders closed.
- 服务性投诉 = a close (or an appeal's conclude) with responsibility "service",
  counted per responsible unit; the value is the count.

Jiangsu value_added complaints only (filtered by region 320000 and business type
value_added, which no other test uses)."""
import csv
import datetime as dt
import io

from conftest import complaint, wait_for
from streams import envelope_pb2

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
BT = "value_added"


def ms(s):
    return (dt.datetime.fromisoformat(s) - EPOCH) // dt.timedelta(milliseconds=1)


def day_of(msv):
    return (EPOCH + dt.timedelta(milliseconds=msv + 8 * 3600 * 1000)).date()


def submit(system, i, region="320500", stream="ordinary", **over):
    over.setdefault("customer", {"name": "王五", "phone": "1377000%04d" % i,
                                 "home_region": region})
    body = complaint(region=region, stream=stream, business_type=BT, channel="hotline",
                     title="增值业务扣费 %d" % i, **over)
    r = system.post("intake", "/v1/complaints", body)
    assert r.status_code == 201, r.text
    return r.json()


def order(system, no):
    r = system.get("router", "/v1/orders/" + no)
    assert r.status_code == 200, r.text
    return r.json()


def at_handler(system, no, wf_state="dispatched"):
    wait_for(lambda: (lambda r: r.ok and r.json().get("wf_state") == wf_state)(
        system.get("router", "/v1/orders/" + no)), what=wf_state + " " + no)
    wait_for(lambda: (lambda r: r.ok and r.json()["state"] == "open")(
        system.get("handler", "/v1/orders/" + no)), what="at the handler " + no)
    return order(system, no)["holder_unit"]


def hact(system, no, body):
    r = system.post("handler", "/v1/orders/%s/actions" % no, body)
    assert r.status_code == 200, r.text
    return r.json()


def ract(system, no, body):
    r = system.post("router", "/v1/orders/%s/actions" % no, body)
    assert r.status_code == 200, r.text
    return r.json()


def step_events(system, no):
    rows = system.pg.query("SELECT envelope FROM router.outbox WHERE order_no = %s AND type = "
                           "'WorkOrderStepChanged' ORDER BY seq", (no,))
    out = []
    for (buf,) in rows:
        env = envelope_pb2.Envelope()
        env.ParseFromString(bytes(buf))
        out.append(env.work_order_step_changed)
    return out


def kpi(system, name, days, **q):
    q.update({"region": "320000", "business_type": BT, "from": days[0], "to": days[1]})
    r = system.get("analytics", "/v1/kpi/" + name, params=q)
    assert r.status_code == 200, r.text
    return r.json()


def test_satisfaction_quality_and_service_complaints(system):
    nos, accepted = {}, []

    def add(key, j):
        nos[key] = j["order_no"]
        accepted.append(ms(j["accepted_at"]))
    # o1..o5 closed by the handler and called back; o6 left open; o7 answered on the spot
    for i, key in enumerate(["o1", "o2", "o3", "o4", "o5", "o6"]):
        add(key, submit(system, 100 + i, region="320500" if i % 2 == 0 else "320100"))
    add("o7", submit(system, 107, answer_on_spot="已向客户解释增值业务扣费规则，客户认可。",
                     customer={"name": "王五", "phone": "13770000107", "home_region": "320500"}))
    for key in ("e1", "e2"):                        # escalated: HQ → the province centre
        add(key, submit(system, 120 + len(nos), stream="escalated"))
    days = (min(day_of(a) for a in accepted).isoformat(),
            max(day_of(a) for a in accepted).isoformat())

    units = {k: at_handler(system, nos[k]) for k in nos if k != "o7"}

    for k in ("o1", "o2", "o3", "o4"):
        hact(system, nos[k], {"action": "close", "answer": "已核实并退还误扣费用。"})
    # o5: transferred (a misroute), then closed with the service complaint found true
    to = "js-nj" if units["o5"] == "js-sz" else "js-sz"
    hact(system, nos["o5"], {"action": "transfer", "to_unit": to, "reason": "属%s辖区" % to})
    units["o5"] = at_handler(system, nos["o5"])
    assert units["o5"] == to
    hact(system, nos["o5"], {"action": "close", "answer": "营业员未告知扣费规则，已致歉。",
                             "responsibility": "service"})

    # callbacks (回访) by the centre: 5, 4, 3; o4 dissatisfied and at fault → reopened,
    # handled again, called back with 4 (the latest survey counts)
    for k, sat in (("o1", 5), ("o2", 4), ("o3", 3), ("o5", 5)):
        ract(system, nos[k], {"action": "callback", "satisfaction": sat})
    ract(system, nos["o4"], {"action": "callback", "satisfaction": 2, "at_fault": True})
    ract(system, nos["o4"], {"action": "reopen", "reason": "客户反映仍被扣费"})
    at_handler(system, nos["o4"], wf_state="handling")
    hact(system, nos["o4"], {"action": "close", "answer": "已停止扣费并退款。"})
    ract(system, nos["o4"], {"action": "callback", "satisfaction": 4})

    # escalated: HQ reviews and calls back before the close; e1 3 (not satisfied), e2 5
    for k, sat in (("e1", 3), ("e2", 5)):
        hact(system, nos[k], {"action": "sign"})
        hact(system, nos[k], {"action": "feedback", "answer": "已处理完毕。"})
        ract(system, nos[k], {"action": "answer", "answer": "已电话告知客户处理结果。"})
        ract(system, nos[k], {"action": "hq_review"})
        ract(system, nos[k], {"action": "callback", "satisfaction": sat})
        ract(system, nos[k], {"action": "close"})

    # what the router published
    cb = [e for e in step_events(system, nos["o4"]) if e.action == "callback"]
    assert [(e.satisfaction, e.at_fault) for e in cb] == [(2, True), (4, False)]
    closes = [e for e in step_events(system, nos["o5"]) if e.action == "close"]
    assert [(e.responsibility, e.service_substantiated) for e in closes] == [("service", True)]
    assert [e.service_substantiated for e in step_events(system, nos["o1"])
            if e.action == "close"] == [False]
    spot_steps = wait_for(lambda: step_events(system, nos["o7"]), what="the on-the-spot step")
    assert [(e.action, e.from_state, e.to_state) for e in spot_steps] == \
        [("answer_on_spot", "accepted", "closed")]
    assert spot_steps[0].answer == "已向客户解释增值业务扣费规则，客户认可。"
    hist = system.get("router", "/v1/orders/%s/history" % nos["o5"]).json()["history"]
    assert [s["details"].get("responsibility") for s in hist if s["action"] == "close"] == \
        ["service"]

    # by hand: 9 complaint orders; surveyed o1..o5, e1, e2 = 7; satisfied o1(5) o2(4)
    # o4(4, latest) o5(5) e2(5) = 5; closed o1..o5, o7, e1, e2 = 8; 合格 o1 o2 o3 o7 e1 e2
    # = 6 (o4 reopened, o5 transferred); service complaints: 1, at o5's unit
    def caught_up():
        j = kpi(system, "order_quality_rate", days)
        s = kpi(system, "satisfaction_rate", days)
        return (j["rows"] and j["rows"][0]["denominator"] == 8 and
                j["rows"][0]["numerator"] == 6 and s["rows"][0]["denominator"] == 7 and
                s["rows"][0]["numerator"] == 5)
    wait_for(caught_up, timeout=30, what="analytics caught up")

    row = kpi(system, "satisfaction_rate", days)["rows"][0]
    assert (row["numerator"], row["denominator"]) == (5, 7)
    assert abs(row["value"] - 5 / 7) < 1e-12 and row["reference"] is None
    row = kpi(system, "escalated_satisfaction_rate", days)["rows"][0]
    assert (row["numerator"], row["denominator"], row["value"], row["reference"]) == \
        (1, 2, 0.5, 0.95)
    j = kpi(system, "order_quality_rate", days)
    row = j["rows"][0]
    assert (row["numerator"], row["denominator"], row["value"], row["reference"]) == \
        (6, 8, 0.75, 0.99)
    assert row["previous"]["denominator"] == 0 and row["previous"]["value"] is None
    row = kpi(system, "service_complaints", days)["rows"][0]
    assert (row["value"], row["numerator"], row["denominator"], row["reference"]) == (1, 1, 9, 1)

    # per unit: the one with the substantiated complaint has 1, every other 0
    g = kpi(system, "service_complaints", days, group_by="unit")
    per_unit = {x["unit"]: x["value"] for x in g["rows"]}
    assert per_unit[units["o5"]] == 1
    assert sum(per_unit.values()) == 1
    # satisfaction by region: 320500 holds o1 o3 o5 (5, 3, 5) + e1 e2 (3, 5), 320100 o2 o4 (4, 4)
    g = kpi(system, "satisfaction_rate", days, group_by="region")
    by_region = {x["region"]: (x["numerator"], x["denominator"]) for x in g["rows"]}
    assert by_region == {"320500": (3, 5), "320100": (2, 2)}, by_region

    # rankings: fewest service complaints first
    rk = system.get("analytics", "/v1/rankings", params={
        "kpi": "service_complaints", "by": "unit", "region": "320000", "business_type": BT,
        "from": days[0], "to": days[1]})
    assert rk.status_code == 200, rk.text
    got = rk.json()["rows"]
    assert got[-1]["unit"] == units["o5"] and got[-1]["value"] == 1
    assert all(x["value"] == 0 and x["rank"] == 1 for x in got[:-1])

    # the satisfaction distribution (9 orders: 5 satisfied, 2 not, 2 never called back)
    d = system.get("analytics", "/v1/reports/distribution", params={
        "dim": "satisfaction", "region": "320000", "business_type": BT, "from": days[0],
        "to": days[1]})
    assert d.status_code == 200, d.text
    assert [(x["satisfaction"], x["orders"]) for x in d.json()["rows"]] == \
        [("satisfied", 5), ("dissatisfied", 2), ("not_surveyed", 2)]
    assert abs(d.json()["rows"][0]["share"] - 5 / 9) < 1e-9

    # CSV like every KPI
    r = system.get("analytics", "/v1/kpi/order_quality_rate", params={
        "region": "320000", "business_type": BT, "from": days[0], "to": days[1],
        "format": "csv"})
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf"), r.text
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [(x["value"], x["numerator"], x["denominator"], x["reference"]) for x in rows] == \
        [("0.75", "6", "8", "0.99")]

    # the listing: all four computable now, with the definitions
    by = {k["name"]: k for k in system.get("analytics", "/v1/kpi").json()["kpis"]}
    for n in ("satisfaction_rate", "escalated_satisfaction_rate", "order_quality_rate",
              "service_complaints"):
        assert by[n]["computable"] and "not_yet_computable" not in by[n], by[n]
    assert "4 or 5" in by["satisfaction_rate"]["formula"]


def test_a_survey_at_the_answer_counts_and_a_later_callback_replaces_it(system):
    """SPEC: customers are surveyed when answered or at the callback; the latest counts.
    Anhui value_added orders only (region 340000)."""
    nos, accepted = [], []
    for i in range(3):
        j = submit(system, 300 + i, region="340100",
                   customer={"name": "李雷", "phone": "1377000%04d" % (300 + i),
                             "home_region": "340100"})
        nos.append(j["order_no"])
        accepted.append(ms(j["accepted_at"]))
    days = (min(day_of(a) for a in accepted).isoformat(),
            max(day_of(a) for a in accepted).isoformat())
    for no in nos:
        at_handler(system, no)
        hact(system, no, {"action": "sign"})
        hact(system, no, {"action": "feedback", "answer": "已退还扣费。"})
        wait_for(lambda no=no: order(system, no)["wf_state"] == "feedback", what="feedback")
    r = system.post("router", "/v1/orders/%s/actions" % nos[0],
                    {"action": "answer", "answer": "已告知客户。", "satisfaction": 6})
    assert r.status_code == 422 and r.json()["error"]["field"] == "satisfaction", r.text
    assert order(system, nos[0])["wf_state"] == "feedback"      # nothing changed
    ract(system, nos[0], {"action": "answer", "answer": "已告知客户。", "satisfaction": 5})
    ract(system, nos[1], {"action": "answer", "answer": "已告知客户。", "satisfaction": 4})
    ract(system, nos[2], {"action": "answer", "answer": "已告知客户。"})   # not surveyed
    ract(system, nos[1], {"action": "close"})
    ract(system, nos[1], {"action": "callback", "satisfaction": 2})
    assert [(e.action, e.satisfaction) for e in step_events(system, nos[0])
            if e.action == "answer"] == [("answer", 5)]
    assert [e.satisfaction for e in step_events(system, nos[2]) if e.action == "answer"] == [0]

    # by hand: surveyed nos[0] (5) and nos[1] (4, then 2 at the callback) = 2; satisfied 1
    def anhui():
        r = system.get("analytics", "/v1/kpi/satisfaction_rate", params={
            "region": "340000", "business_type": BT, "from": days[0], "to": days[1]})
        assert r.status_code == 200, r.text
        return r.json()["rows"][0]
    wait_for(lambda: (anhui()["numerator"], anhui()["denominator"]) == (1, 2), timeout=30,
             what="satisfaction 1/2 in Anhui")
    assert anhui()["value"] == 0.5
