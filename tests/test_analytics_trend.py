"""Issue 6: GET /v1/kpi/{name}/trend — a KPI per local day (from the rollup) or per
local hour of one day (from the facts). Every bucket has the numerator and
denominator the KPI alone has for that day; the hours of a day add up to the
day; the hotline service level per day/hour is computed here from the loaded
call records."""
import csv
import datetime as dt
import os
from collections import defaultdict

from conftest import ROOT, complaint, wait_for

REGION = "350100"   # 福州: only this test's orders
ROLLUP = ["on_time_closure_rate", "first_contact_closure_rate", "transfer_closure_rate",
          "satisfaction_rate", "timely_flow_rate", "valid_flow_rate", "avg_delay",
          "avg_handling_time", "promised_completion_rate", "escalated_resolution_rate",
          "escalated_satisfaction_rate", "order_timeliness_rate", "order_quality_rate",
          "service_complaints"]


def trend(system, name, **q):
    r = system.get("analytics", "/v1/kpi/%s/trend" % name, params=q)
    assert r.status_code == 200, r.text
    return r.json()


def test_kpi_trend_adds_up_to_the_kpi(system):
    nos = []
    for i in range(5):
        r = system.post("intake", "/v1/complaints", complaint(
            region=REGION, channel=["hotline", "app"][i % 2],
            customer={"name": "吴八", "phone": "1350000%04d" % i, "home_region": REGION},
            title="福州宽带故障 %d" % i))
        assert r.status_code == 201, r.text
        nos.append(r.json()["order_no"])
        day, hour = r.json()["accepted_at"][:10], r.json()["accepted_at"][11:13] + ":00"
    for no in nos[:2]:
        wait_for(lambda: (lambda r: r.ok and r.json()["state"] == "open")(
            system.get("handler", "/v1/orders/" + no)), what="at the handler " + no)
        r = system.post("handler", "/v1/orders/%s/actions" % no,
                        {"action": "close", "answer": "已修复。"})
        assert r.status_code == 200, r.text
    q = {"region": REGION, "date": day}

    def counted():
        t = trend(system, "timely_flow_rate", granularity="hour", **q)
        return [(x["numerator"], x["denominator"]) for x in t["rows"] if x["t"] == hour] == [(2, 5)]
    wait_for(counted, what="5 orders, 2 closed in limit")

    # timely flow: this hour 2/5, every other hour of the day nothing (value null, not 0)
    t = trend(system, "timely_flow_rate", granularity="hour", **q)
    assert t["granularity"] == "hour" and t["date"] == day and t["unit"] == "ratio"
    assert [x["t"] for x in t["rows"]] == ["%02d:00" % h for h in range(24)]
    for x in t["rows"]:
        want = (2, 5, 0.4) if x["t"] == hour else (0, 0, None)
        assert (x["numerator"], x["denominator"], x["value"]) == want, x
    # per day: 14 days ending at date, today's point is the same 2/5
    t = trend(system, "timely_flow_rate", **q)
    assert [x["t"] for x in t["rows"]] == [
        (dt.date.fromisoformat(day) - dt.timedelta(days=13 - i)).isoformat() for i in range(14)]
    assert (t["rows"][-1]["numerator"], t["rows"][-1]["denominator"]) == (2, 5)
    assert all(x["denominator"] == 0 for x in t["rows"][:-1])
    # a dimension filter narrows it: the two closures were hotline, app (i = 0, 1)
    t = trend(system, "timely_flow_rate", granularity="hour", channel="app", **q)
    assert [(x["numerator"], x["denominator"]) for x in t["rows"] if x["t"] == hour] == [(1, 2)]

    # every rollup KPI: its hours add up to its day, and the day is the KPI alone
    for name in ROLLUP:
        alone = system.get("analytics", "/v1/kpi/" + name,
                           params={"from": day, "to": day, "region": REGION}).json()["rows"][0]
        hours = trend(system, name, granularity="hour", **q)["rows"]
        days = trend(system, name, days=1, **q)["rows"]
        assert len(days) == 1 and days[0]["t"] == day
        for got in (days[0], {"numerator": sum(x["numerator"] for x in hours),
                              "denominator": sum(x["denominator"] for x in hours)}):
            assert abs(got["numerator"] - alone["numerator"]) < 1e-6, (name, got, alone)
            assert got["denominator"] == alone["denominator"], (name, got, alone)
        assert days[0]["value"] == alone["value"], name

    # CSV
    r = system.get("analytics", "/v1/kpi/timely_flow_rate/trend",
                   params=dict(q, granularity="hour", format="csv"))
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")
    lines = r.content.decode("utf-8-sig").split("\r\n")
    assert lines[0] == "t,value,numerator,denominator" and "%s,0.4,2,5" % hour in lines


def test_hotline_trend_from_the_call_records(system):
    with open(os.path.join(ROOT, "data", "analytics_calls.csv"), encoding="utf-8") as f:
        calls = list(csv.DictReader(f))
    with open(os.path.join(ROOT, "data", "analytics_config.csv"), encoding="utf-8") as f:
        thr = float({r["key"]: r["value"] for r in csv.DictReader(f)}["hotline_answer_seconds"])
    per_day, per_hour = defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0])
    for c in calls:
        at = dt.datetime.fromisoformat(c["started_at"]).astimezone(
            dt.timezone(dt.timedelta(hours=8)))
        ok = c["wants_agent"] == "1" and c["answered"] == "1" and int(c["wait_seconds"]) <= thr
        for b in (per_day[at.date().isoformat()], per_hour[(at.date().isoformat(),
                                                             "%02d:00" % at.hour)]):
            b[0] += ok
            b[1] += c["wants_agent"] == "1"
    last = max(per_day)
    t = trend(system, "hotline_service_level", date=last, days=31)
    assert len(t["rows"]) == 31 and t["reference"] == 0.8
    for x in t["rows"]:
        n, d = per_day.get(x["t"], (0, 0))
        assert (x["numerator"], x["denominator"]) == (n, d), x
        assert x["value"] == (n / d if d else None), x
    assert sum(x["denominator"] for x in t["rows"]) > 0
    busiest = max(per_day, key=lambda k: per_day[k][1])
    t = trend(system, "hotline_service_level", granularity="hour", date=busiest)
    for x in t["rows"]:
        assert [x["numerator"], x["denominator"]] == list(per_hour.get((busiest, x["t"]), (0, 0))), x


def test_trend_refuses(system):
    for name, q, status, field in (
            ("complaint_rate", {}, 422, "kpi"), ("agent_call_volume_index", {}, 422, "kpi"),
            ("nope", {}, 404, None), ("timely_flow_rate", {"granularity": "week"}, 422,
                                      "granularity"),
            ("timely_flow_rate", {"days": "93"}, 422, "days"),
            ("timely_flow_rate", {"date": "2026-1-1"}, 422, "date"),
            ("timely_flow_rate", {"region": "12"}, 422, "region")):
        r = system.get("analytics", "/v1/kpi/%s/trend" % name, params=q)
        assert r.status_code == status and r.json()["error"]["field"] == field, (name, q, r.text)
    viewer = system.token("trend-kpi-sh", "viewer", "310000")
    r = system.get("analytics", "/v1/kpi/timely_flow_rate/trend", params={"region": "350100"},
                   token=viewer)
    assert r.status_code == 403 and r.json()["error"]["field"] == "region"
