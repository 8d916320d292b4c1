"""Issue 6: GET /v1/kpis — several KPIs in one answer, each exactly the JSON it
has alone (numerator, denominator, value, reference, 环比/同比), for the same
query; a KPI that cannot answer that query carries the error it has alone."""
import csv
import io

from conftest import complaint, wait_for

REGION = "430100"   # 长沙: only this test's orders
ALL = ["complaint_rate", "on_time_closure_rate", "first_contact_closure_rate",
       "transfer_closure_rate", "satisfaction_rate", "timely_flow_rate", "valid_flow_rate",
       "avg_delay", "avg_handling_time", "promised_completion_rate",
       "escalated_resolution_rate", "escalated_satisfaction_rate", "order_timeliness_rate",
       "order_quality_rate", "service_complaints", "hotline_service_level",
       "agent_call_volume_index", "agent_service_quality_index"]


def orders(system):
    """6 complaints in 长沙 over two channels and two business types; 3 closed at the
    handler. Returns the local acceptance day."""
    nos = []
    for i in range(6):
        cu = {"name": "周七", "phone": "1360000%04d" % i, "home_region": REGION}
        if i % 3 == 0:
            cu["level"] = "gold"
        r = system.post("intake", "/v1/complaints", complaint(
            region=REGION, channel=["hotline", "app"][i % 2],
            business_type=["broadband", "mobile"][i // 3], customer=cu,
            title="长沙宽带故障 %d" % i))
        assert r.status_code == 201, r.text
        nos.append(r.json()["order_no"])
        day = r.json()["accepted_at"][:10]
    for no in nos[:3]:
        wait_for(lambda: (lambda r: r.ok and r.json()["state"] == "open")(
            system.get("handler", "/v1/orders/" + no)), what="at the handler " + no)
        r = system.post("handler", "/v1/orders/%s/actions" % no,
                        {"action": "close", "answer": "已修复。"})
        assert r.status_code == 200, r.text
    q = {"from": day, "to": day, "region": REGION}
    def counted():
        row = system.get("analytics", "/v1/kpi/timely_flow_rate", params=q).json()["rows"][0]
        return (row["numerator"], row["denominator"]) == (3, 6)
    wait_for(counted, what="the 6 orders and 3 closures counted")
    return day


def singles(system, names, q):
    out = []
    for n in names:
        r = system.get("analytics", "/v1/kpi/" + n, params=q)
        out.append((r.status_code, r.json()))
    return out


def same_as_alone(system, names, q):
    """The batch answer vs each KPI alone, asked before and after (equal: nothing moved
    in between)."""
    for _ in range(3):
        before = singles(system, names, q)
        r = system.get("analytics", "/v1/kpis", params=dict(q, names=",".join(names)))
        after = singles(system, names, q)
        if before == after:
            break
    assert before == after
    assert r.status_code == 200, r.text
    got = r.json()["kpis"]
    assert len(got) == len(names)
    for n, (status, alone), item in zip(names, before, got):
        if status == 200:
            assert item == alone, n
        else:
            assert item == {"name": n, "error": alone["error"]}, (n, status)
    return before, got


def test_batch_equals_single_answers(system):
    day = orders(system)
    q = {"from": day, "to": day, "region": REGION}
    before, got = same_as_alone(system, ALL, q)
    assert all(s == 200 for s, _ in before)
    # the answer is not empty: the closures are in it
    t = got[ALL.index("timely_flow_rate")]
    assert (t["rows"][0]["numerator"], t["rows"][0]["denominator"], t["rows"][0]["value"]) == \
        (3, 6, 0.5)

    # two dimensions and a period with 环比/同比; the KPIs grouped by them alone answer 422
    # (complaint_rate has no channel, the agent KPIs neither) and do in the batch too
    q2 = {"period": "month", "date": day, "region": REGION, "group_by": "channel,business_type"}
    before, got = same_as_alone(system, ALL, q2)
    errs = [n for n, (s, _) in zip(ALL, before) if s != 200]
    assert errs == ["complaint_rate", "hotline_service_level", "agent_call_volume_index",
                    "agent_service_quality_index"]
    t = got[ALL.index("timely_flow_rate")]
    assert [(x["channel"], x["business_type"], x["numerator"], x["denominator"])
            for x in t["rows"]] == [("app", "broadband", 1, 1), ("app", "mobile", 0, 2),
                                    ("hotline", "broadband", 2, 2), ("hotline", "mobile", 0, 1)]
    assert t["period"]["from"] == day[:8] + "01" and "previous" in t["rows"][0] \
        and "last_year" in t["rows"][0]

    # a subset, in the order asked, a name twice
    names = ["avg_handling_time", "satisfaction_rate", "avg_handling_time", "complaint_rate"]
    same_as_alone(system, names, dict(q, group_by="business_type"))


def test_batch_csv_and_errors(system):
    r = system.get("analytics", "/v1/kpis", params={"names": "timely_flow_rate,nope"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "names", r.text
    # every KPI failing: the first one's error, as alone
    r = system.get("analytics", "/v1/kpis", params={"names": "timely_flow_rate,avg_delay",
                                                    "from": "2026-13-01", "to": "2026-12-01"})
    alone = system.get("analytics", "/v1/kpi/timely_flow_rate",
                       params={"from": "2026-13-01", "to": "2026-12-01"})
    assert (r.status_code, r.json()) == (alone.status_code, alone.json())
    assert r.status_code == 422
    # CSV: one file, a kpi column, each KPI's rows as its own CSV has them
    q = {"period": "month", "region": REGION, "group_by": "channel"}
    r = system.get("analytics", "/v1/kpis",
                   params=dict(q, names="timely_flow_rate,avg_handling_time", format="csv"))
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")
    got = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    want = []
    for n in ("timely_flow_rate", "avg_handling_time"):
        one = system.get("analytics", "/v1/kpi/" + n, params=dict(q, format="csv"))
        want += [dict(x, kpi=n) for x in
                 csv.DictReader(io.StringIO(one.content.decode("utf-8-sig")))]
    assert got == want and got
    # a role that may not read KPIs
    tok = system.token("batch-agent", "agent")
    r = system.get("analytics", "/v1/kpis", token=tok)
    assert r.status_code == 403
