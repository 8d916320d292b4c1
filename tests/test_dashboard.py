"""Issue 6: the ops dashboard in headless Chromium — loads without console
errors; its counters, KPI tiles, ranking table and distribution chart show what
the API gives; the CSV links answer CSV; the hourly trend, the counters and the
feed update by themselves when a complaint is submitted; a Shanghai viewer sees
only Shanghai. Screenshots are kept in tests/artifacts/."""
import csv
import json
import os
import shutil
import subprocess

import pytest

from conftest import ARTIFACTS, ROOT, complaint, wait_for

NODE = shutil.which("node")


@pytest.mark.skipif(not NODE or not os.path.exists("/usr/bin/chromium")
                    or not os.path.isdir(os.path.join(ROOT, "node_modules", "playwright-core")),
                    reason="needs node, Debian chromium and `make web` (make test provides all three)")
def test_dashboard_views_match_the_api_and_update_live(system):
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "dashboard.png")
    vshot = os.path.join(ARTIFACTS, "dashboard_shanghai_viewer.png")
    viewer = system.token("dashboard-sh", "viewer", "310000")
    # orders in Shanghai and Beijing, so scoping shows
    start = system.get("analytics", "/v1/kpi/summary").json()["received"]
    for region, bt in (("310101", "broadband"), ("310104", "mobile"), ("110101", "broadband")):
        r = system.post("intake", "/v1/complaints", complaint(
            region=region, business_type=bt,
            customer={"name": "看板", "phone": "13900001111", "home_region": region}))
        assert r.status_code == 201, r.text
        no = r.json()["order_no"]
    # the Beijing one closed at the handler, so today's KPIs have a closure (the KPI trend)
    wait_for(lambda: (lambda r: r.ok and r.json()["state"] == "open")(
        system.get("handler", "/v1/orders/" + no)), what="at the handler " + no)
    r = system.post("handler", "/v1/orders/%s/actions" % no, {"action": "close", "answer": "已处理。"})
    assert r.status_code == 200, r.text
    wait_for(lambda: system.get("analytics", "/v1/kpi/summary").json()["received"] >= start + 3,
             what="analytics has the three complaints")
    wait_for(lambda: system.get("analytics", "/v1/kpi/timely_flow_rate",
                                params={"period": "day"}).json()["rows"][0]["numerator"] >= 1,
             what="analytics has the closure")

    r = subprocess.run([NODE, os.path.join(ROOT, "tests", "browser", "dashboard.js"),
                        system["analytics"].url(""), system["intake"].url(""), system.admin,
                        viewer, shot, vshot],
                       capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    with open(os.path.join(ARTIFACTS, "dashboard.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    assert "failure" not in out, out
    assert out["consoleErrors"] == [] and out["pageErrors"] == [], out
    assert out["title"].startswith("客诉运营看板")
    assert out["tiles"] == {k: out["api"][k] for k in out["tiles"]}

    # KPI tiles: every KPI; the value is the API's; green/red against the reference
    defs = {k["name"]: k for k in system.get("analytics", "/v1/kpi").json()["kpis"]}
    tiles = {t["kpi"]: t for t in out["kpiTiles"]}
    assert len(out["kpiTiles"]) == out["kpiCount"] == len(defs)
    assert sorted(tiles) == sorted(defs)
    v = out["apiOnTime"]["value"]
    assert (float(tiles["on_time_closure_rate"]["value"]) if v is not None else None) == v
    for name, t in tiles.items():
        k = defs[name]
        assert "环比" in t["text"] and "同比" in t["text"] or not k["computable"], t
        if k["reference"] is None or not t["value"]:
            assert not t["good"] and not t["bad"], t
            continue
        value = float(t["value"])
        lower = k["unit"] in ("seconds", "count") or name == "complaint_rate"
        bad = value > k["reference"] if lower else value < k["reference"]
        assert (t["good"], t["bad"]) == (not bad, bad), t

    # ranking: first row equals GET /v1/rankings' first row
    assert out["rankApi"] and out["rankPage"] == out["rankApi"], out
    # distribution chart: the API's numbers
    assert out["distApi"] and out["distPage"] == out["distApi"], out
    assert out["dayApi"] and len(out["dayPage"]) == 14 and out["dayPage"] == out["dayApi"], out
    # the KPI tiles are one GET /v1/kpis; the only single-KPI request is the breakdown's
    assert out["tileRequests"] >= 1, out["requests"]
    assert set(out["singleKpiRequests"]) == {"/v1/kpi/on_time_closure_rate"}, out["requests"]
    # the trend of a chosen KPI (工单流转及时率), per day and per hour: the chart's series
    # is GET /v1/kpi/timely_flow_rate/trend's values in per cent
    trend_kpis = [k["name"] for k in defs.values() if k["computable"] and k["trend"]]
    assert out["trendKpiOptions"] == [""] + trend_kpis
    assert "complaint_rate" not in trend_kpis and "timely_flow_rate" in trend_kpis
    day, hour = out["trendKpi_day"], out["trendKpi_hour"]
    assert day["page"] == day["api"] and len(day["page"]["data"]) == 14, day
    assert hour["page"] == hour["api"] and len(hour["page"]["x"]) == 24, hour
    # today has this test's complaints and a closure: a value above 0 in today's point
    assert day["page"]["data"][-1] > 0, day
    assert out["breakdownApi"] and out["breakdownPage"] == out["breakdownApi"], out
    la = out["ledgerApi"]
    assert out["ledgerRow"][:4] == ["黄浦分公司", str(la["orders"]), str(la["closed"]),
                                    str(la["closed_in_limit"])], out
    # CSV links
    heads = {"supervision": "工单号,督办类型,环节", "rank": "rank,unit,value", "dist": "业务类型,工单数,占比",
             "ledger": "责任单位,投诉工单", "breakdown": "region,value"}
    for name, c in out["csv"].items():
        assert c["status"] == 200 and c["type"].startswith("text/csv"), c
        assert c["header"].startswith(heads[name]), c
        assert "format=csv" in c["href"]
    assert out["csv"]["dist"]["lines"] == 1 + len(out["distApi"])

    # live: counters, feed and the hourly trend show the new complaint
    assert out["receivedAfter"] >= out["api"]["received"] + 1
    assert out["feedHasOrder"] and out["chartDrawn"]
    assert out["trendHour"] == out["acceptedAt"][11:13] + ":00"
    assert out["trendAfter"] == out["trendBefore"] + 1 == out["trendApi"], out
    assert out["trendChart"] == {"categories": 24, "series": ["受理", "已结办", "按时办结"]}
    # no request storm: the event burst of one complaint refreshes each view once or so
    ev = out["requestsForEvent"]
    assert 1 <= ev.count("/v1/kpi/summary") <= 6 and 1 <= ev.count("/v1/dashboard/trend") <= 6, ev
    assert ev.count("/v1/rankings") <= 1, ev

    # the Shanghai viewer: regional ranking = the API's, only Shanghai, counts scoped
    assert out["viewerRankApi"] and out["viewerRankPage"] == out["viewerRankApi"], out
    assert all(x.startswith("31") for x in out["viewerRankPage"]), out
    with open(os.path.join(ROOT, "data", "regions.csv"), encoding="utf-8") as f:
        regions = {row["code"]: row["name"] for row in csv.DictReader(f)}
    assert out["viewerRankNames"] == [regions[c] for c in out["viewerRankPage"]], out
    assert {"黄浦区", "徐汇区"} <= set(out["viewerRankNames"]), out
    assert out["viewerReceived"] == out["viewerApi"]["received"] < out["receivedAfter"]
    assert os.path.getsize(shot) > 10000 and os.path.getsize(vshot) > 10000


def test_trend_api_scopes_and_validates(system):
    viewer = system.token("trend-sh", "viewer", "310000")
    r = system.get("analytics", "/v1/dashboard/trend?granularity=day&days=3", token=viewer)
    assert r.status_code == 200, r.text
    t = r.json()
    assert t["region"] == "310000" and t["granularity"] == "day" and len(t["rows"]) == 3
    assert t["rows"][-1]["t"] == t["date"]
    r = system.get("analytics", "/v1/dashboard/trend?region=110000", token=viewer)
    assert r.status_code == 403 and r.json()["error"]["field"] == "region"
    for q, field in (("granularity=minute", "granularity"), ("date=2026-13", "date"),
                     ("days=0", "days"), ("days=93", "days")):
        r = system.get("analytics", "/v1/dashboard/trend?" + q)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, (q, r.text)
    r = system.get("analytics", "/v1/dashboard/trend?granularity=hour&date=2026-11-23")
    assert r.status_code == 200 and [x["t"] for x in r.json()["rows"]][:2] == ["00:00", "01:00"]
    assert len(r.json()["rows"]) == 24
