"""Issue 6: the KPIs that need loaded data (R-42 complaint rate, R-43 hotline
service level, R-44 call-centre agent indicators), every value computed here
from data/analytics_*.csv with SPEC's formulas — exact numerators and
denominators, group-bys, 环比/同比 — plus rankings, distributions, hot issues
and CSV with a BOM."""
import csv
import datetime as dt
import io
import os
from collections import defaultdict
from decimal import Decimal

from conftest import ROOT, complaint, wait_for

DATA = os.path.join(ROOT, "data")
REGION = "440100"          # 广州: only this test's orders
BT = "iptv"


def rows(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return list(csv.DictReader(f))


def config():
    return {r["key"]: Decimal(r["value"]) for r in rows("analytics_config.csv")}


def local_day(s):
    return dt.datetime.fromisoformat(s).astimezone(dt.timezone(dt.timedelta(hours=8))).date()


def kpi(system, name, **q):
    r = system.get("analytics", "/v1/kpi/" + name, params=q)
    assert r.status_code == 200, r.text
    return r.json()


def close_to(got, want):
    return abs(got - float(want)) <= 1e-9 * max(1.0, abs(float(want)))


def check(row, num, den):
    assert close_to(row["numerator"], num) and close_to(row["denominator"], den), (row, num, den)
    if den == 0:
        assert row["value"] is None, row
    else:
        assert close_to(row["value"], Decimal(num) / Decimal(den)), (row, num, den)


def months(m):
    """calls per month: (hotline n, hotline d) by unit, and per agent non-complaint calls."""
    thr = config()["hotline_answer_seconds"]
    hot = defaultdict(lambda: [0, 0])
    per_agent = defaultdict(int)
    for c in rows("analytics_calls.csv"):
        d = local_day(c["started_at"])
        if (d.year, d.month) != m:
            continue
        wants, answered = c["wants_agent"] == "1", c["answered"] == "1"
        for key in (c["unit"], "*"):
            hot[key][1] += wants
            hot[key][0] += wants and answered and int(c["wait_seconds"]) <= thr
        if c["agent"] and c["complaint"] == "0":
            per_agent[c["agent"]] += 1
    return hot, per_agent


def test_listing_has_all_18_with_formulas(system):
    j = system.get("analytics", "/v1/kpi").json()
    names = [k["name"] for k in j["kpis"]]
    assert names == [
        "complaint_rate", "on_time_closure_rate", "first_contact_closure_rate",
        "transfer_closure_rate", "satisfaction_rate", "timely_flow_rate", "valid_flow_rate",
        "avg_delay", "avg_handling_time", "promised_completion_rate",
        "escalated_resolution_rate", "escalated_satisfaction_rate", "order_timeliness_rate",
        "order_quality_rate", "service_complaints", "hotline_service_level",
        "agent_call_volume_index", "agent_service_quality_index"]
    for k in j["kpis"]:
        assert k["formula"] and k["numerator"] and k["denominator"] and k["title"], k
    by = {k["name"]: k for k in j["kpis"]}
    assert by["hotline_service_level"]["reference"] == 0.8
    for n in ("complaint_rate", "hotline_service_level", "agent_call_volume_index",
              "agent_service_quality_index"):
        assert by[n]["computable"], n


def test_hotline_service_level_month_unit_and_previous(system):
    nov_hot, _ = months((2026, 11))
    oct_hot, _ = months((2026, 10))
    j = kpi(system, "hotline_service_level", period="month", date="2026-11-15")
    assert j["period"] == {"from": "2026-11-01", "to": "2026-11-30"}
    row = j["rows"][0]
    assert row["reference"] == 0.8
    check(row, *nov_hot["*"])
    check(row["previous"], *oct_hot["*"])            # 环比
    check(row["last_year"], 0, 0)                     # 同比: no calls in 2025
    g = kpi(system, "hotline_service_level", period="month", date="2026-11-15", group_by="unit")
    units = sorted(u for u in set(nov_hot) | set(oct_hot) if u != "*")
    assert [x["unit"] for x in g["rows"]] == units
    for x in g["rows"]:
        check(x, *nov_hot.get(x["unit"], (0, 0)))
        check(x["previous"], *oct_hot.get(x["unit"], (0, 0)))
    # a region's subtree only: 江苏 (js-nj, js-sz)
    js = kpi(system, "hotline_service_level", period="month", date="2026-11-15", region="320000")
    n = sum(nov_hot[u][0] for u in nov_hot if u.startswith("js"))
    d = sum(nov_hot[u][1] for u in nov_hot if u.startswith("js"))
    check(js["rows"][0], n, d)


def test_agent_indicators(system):
    agents = rows("analytics_agents.csv")
    coef = config()["complaint_coefficient"]
    _, nov_calls = months((2026, 11))
    _, oct_calls = months((2026, 10))
    calls = {"2026-11": nov_calls, "2026-10": oct_calls}
    vol = kpi(system, "agent_call_volume_index", period="month", date="2026-11-03",
              group_by="agent")
    qual = kpi(system, "agent_service_quality_index", period="month", date="2026-11-03",
               group_by="agent")
    want_agents = sorted({a["agent"] for a in agents})
    assert [x["agent"] for x in vol["rows"]] == want_agents
    assert [x["agent"] for x in qual["rows"]] == want_agents
    tot = {"2026-11": [0, 0, Decimal(0), 0], "2026-10": [0, 0, Decimal(0), 0]}
    for a in agents:
        q = (Decimal(a["monitoring_score"]) + Decimal(a["test_call_score"])) / 2 \
            - int(a["complaints"]) * coef
        n = calls[a["month"]].get(a["agent"], 0)
        t = tot[a["month"]]
        t[0] += n
        t[1] += int(a["call_target"])
        t[2] += q
        t[3] += 1
        v = next(x for x in vol["rows"] if x["agent"] == a["agent"])
        w = next(x for x in qual["rows"] if x["agent"] == a["agent"])
        if a["month"] == "2026-11":
            check(v, n, int(a["call_target"]))
            check(w, q, 1)
        else:
            check(v["previous"], n, int(a["call_target"]))
            check(w["previous"], q, 1)
    allv = kpi(system, "agent_call_volume_index", **{"from": "2026-10-01", "to": "2026-11-30"})
    check(allv["rows"][0], tot["2026-11"][0] + tot["2026-10"][0],
          tot["2026-11"][1] + tot["2026-10"][1])
    allq = kpi(system, "agent_service_quality_index", period="month", date="2026-10-10")
    check(allq["rows"][0], tot["2026-10"][2], tot["2026-10"][3])
    check(allq["rows"][0]["previous"], 0, 0)


def test_complaint_rate_by_level(system):
    cust = defaultdict(int)
    for c in rows("analytics_customers.csv"):
        if c["region"] == REGION and c["business_type"] == BT:
            cust[c["customer_level"]] += int(c["customers"])
    levels = {"": 3, "gold": 2, "diamond": 1}
    for lvl, n in levels.items():
        for i in range(n):
            cu = {"name": "赵六", "phone": "1370000%04d" % i, "home_region": REGION}
            if lvl:
                cu["level"] = lvl
            r = system.post("intake", "/v1/complaints",
                            complaint(region=REGION, business_type=BT, customer=cu,
                                      title="IPTV卡顿 %s%d" % (lvl, i)))
            assert r.status_code == 201, r.text
            day = r.json()["accepted_at"][:10]
    q = {"from": day, "to": day, "region": REGION, "business_type": BT}
    wait_for(lambda: kpi(system, "complaint_rate", **q)["rows"][0]["numerator"] == 6,
             what="complaints counted")
    j = kpi(system, "complaint_rate", **q)
    check(j["rows"][0], 6, sum(cust.values()))
    check(j["rows"][0]["previous"], 0, sum(cust.values()))
    g = kpi(system, "complaint_rate", group_by="customer_level", **q)
    assert [x["customer_level"] for x in g["rows"]] == sorted(cust)
    for x in g["rows"]:
        check(x, levels[x["customer_level"]], cust[x["customer_level"]])
    # CSV: BOM, the same rows
    r = system.get("analytics", "/v1/kpi/complaint_rate",
                   params=dict(q, group_by="customer_level", format="csv"))
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf"), r.content[:20]
    got = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [(x["customer_level"], int(x["numerator"]), int(x["denominator"])) for x in got] == \
        [(x["customer_level"], x["numerator"], x["denominator"]) for x in g["rows"]]
    # unknown dimension for this KPI
    r = system.get("analytics", "/v1/kpi/complaint_rate", params={"group_by": "channel"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "group_by"


def test_kesuctl_demo_feeds_and_closes(system):
    before = system.get("analytics", "/v1/kpi/summary").json()
    r = system.kesuctl("demo", "--count", "4", "--rate", "10", "--close-ratio", "1",
                       "--close-after", "0", "--seed", "7", "--region", REGION,
                       "--intake", system["intake"].url(""), "--handler",
                       system["handler"].url(""), "--token", system.admin)
    lines = r.stdout.splitlines()
    subs = [ln.split()[2] for ln in lines if ln.startswith("demo: #")]
    closes = [ln.split()[2] for ln in lines if ln.startswith("demo: closed ")]
    assert len(subs) == 4 and sorted(closes) == sorted(subs), r.stdout + r.stderr
    assert "4 submitted, 4 closed, 0 failed, 0 left open" in lines[-1], lines[-1]
    for no in subs:
        o = system.get("router", "/v1/orders/" + no).json()
        assert o["state"] == "closed", o
    wait_for(lambda: (lambda j: j["received"] >= before["received"] + 4 and
                      j["closed"] >= before["closed"] + 4)(
        system.get("analytics", "/v1/kpi/summary").json()), what="demo orders counted")
