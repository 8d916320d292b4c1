"""Issue 6: KPIs (SPEC §8, R-42 … R-45) from a fixed scenario through the real
services, every value computed here from the test's own records with the
formulas /v1/kpi lists — exact numerators and denominators, a group-by on two
dimensions, the previous period (环比) and the same period last year (同比),
CSV, and the same answers after analytics is SIGKILLed mid-stream.

Jiangsu IPTV only (苏州 320500 → js-sz, 南京 320100 → js-nj), filtered by region
320000 and business type iptv, so other tests' orders do not count."""
import csv
import datetime as dt
import glob
import io
import os

from conftest import complaint, wait_for

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
REGIONS = ("320500", "320100")
CHANNELS = ("hotline", "website", "app")


def ms(s):
    return (dt.datetime.fromisoformat(s) - EPOCH) // dt.timedelta(milliseconds=1)


def day_of(msv):
    t = EPOCH + dt.timedelta(milliseconds=msv)
    return (t + dt.timedelta(hours=8)).date()


def next_working_day(d):
    """The next working day after d by data/calendar_*.csv (later tests expect
    one: their orders are accepted on the day the clock shows)."""
    special = {}
    data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
    for f in glob.glob(os.path.join(data, "calendar_*.csv")):
        with open(f, encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                special[row["date"]] = row["kind"]
    d += dt.timedelta(days=1)
    while special.get(d.isoformat(), "workday" if d.weekday() < 5 else "holiday") != "workday":
        d += dt.timedelta(days=1)
    return d


def submit(system, i, region, channel, stream="ordinary"):
    body = complaint(region=region, channel=channel, stream=stream, business_type="iptv",
                     customer={"name": "李四", "phone": "1390000%04d" % (i % 10000),
                               "home_region": region},
                     title="宽带断网 %d" % i)
    r = system.post("intake", "/v1/complaints", body)
    assert r.status_code == 201, r.text
    j = r.json()
    return {"no": j["order_no"], "region": region, "channel": channel, "stream": stream,
            "accepted": ms(j["accepted_at"]), "promised": ms(j["promised_by"]),
            "closed": None, "breach_due": None, "moves": 0, "misroutes": 0, "sat": None}


def at_handler(system, rec):
    def ok():
        r = system.get("router", "/v1/orders/" + rec["no"])
        return r.ok and r.json().get("wf_state") == "dispatched" and r.json()
    o = wait_for(ok, what="dispatched " + rec["no"])
    rec["unit"] = o["holder_unit"]
    wait_for(lambda: (lambda r: r.ok and r.json()["state"] == "open")(
        system.get("handler", "/v1/orders/" + rec["no"])), what="at the handler " + rec["no"])


def hact(system, rec, body):
    r = system.post("handler", "/v1/orders/%s/actions" % rec["no"], body)
    assert r.status_code == 200, r.text
    return r.json()


def ract(system, rec, body):
    r = system.post("router", "/v1/orders/%s/actions" % rec["no"], body)
    assert r.status_code == 200, r.text


def close(system, rec):
    if rec["stream"] == "escalated":        # HQ review and callback before closing
        hact(system, rec, {"action": "sign"})
        hact(system, rec, {"action": "feedback", "answer": "已处理完毕。"})
        ract(system, rec, {"action": "answer", "answer": "已电话告知客户。"})
        ract(system, rec, {"action": "hq_review"})
        ract(system, rec, {"action": "callback", "satisfaction": 5})
        rec["sat"] = 5
        ract(system, rec, {"action": "close"})
    else:
        hact(system, rec, {"action": "close", "answer": "已处理完毕。"})
    o = system.get("router", "/v1/orders/" + rec["no"]).json()
    assert o["state"] == "closed", o
    rec["closed"] = ms(o["closed_at"])


def transfer(system, rec):
    to = "js-nj" if rec["unit"] == "js-sz" else "js-sz"
    hact(system, rec, {"action": "transfer", "to_unit": to, "reason": "属%s辖区" % to})
    rec["unit"] = to
    rec["moves"] += 1
    rec["misroutes"] += 1
    at_handler(system, rec)


def timers(system, no):
    r = system.get("sla", "/v1/timers/" + no)
    return r.json()["timers"] if r.status_code == 200 else []


# --- the formulas, from the test's own records -------------------------------
def counters(recs):
    c = dict(orders=0, closed=0, in_limit=0, first=0, transferred=0, valid=0, delayed=0,
             delay_ms=0, handling_ms=0, promised_ok=0, surveyed=0, satisfied=0, quality_ok=0,
             service=0)
    for r in recs:
        closed = r["closed"] is not None
        in_limit = closed and r["breach_due"] is None
        c["orders"] += 1
        c["closed"] += closed
        c["in_limit"] += in_limit
        c["first"] += in_limit and r["moves"] == 0
        c["transferred"] += in_limit and r["moves"] > 0
        c["valid"] += r["misroutes"] == 0 and r["breach_due"] is None
        if closed and r["breach_due"] is not None and r["closed"] > r["breach_due"]:
            c["delayed"] += 1
            c["delay_ms"] += r["closed"] - r["breach_due"]
        c["surveyed"] += r["sat"] is not None
        c["satisfied"] += (r["sat"] or 0) >= 4           # satisfied = 4 or 5 of 5
        c["quality_ok"] += closed and r["misroutes"] == 0  # no fault, no reopen here
        if closed:
            c["handling_ms"] += r["closed"] - r["accepted"]
            c["promised_ok"] += r["closed"] <= r["promised"]
    return c


FORMULAS = {
    "on_time_closure_rate": ("in_limit", "orders", None),
    "first_contact_closure_rate": ("first", "orders", None),
    "transfer_closure_rate": ("transferred", "orders", None),
    "timely_flow_rate": ("in_limit", "orders", None),
    "valid_flow_rate": ("valid", "orders", None),
    "avg_delay": ("delay_ms", "delayed", None),
    "avg_handling_time": ("handling_ms", "closed", None),
    "promised_completion_rate": ("promised_ok", "orders", 0.95),
    "order_timeliness_rate": ("in_limit", "closed", 0.99),
    "escalated_resolution_rate": ("closed", "orders", 0.95),
    "satisfaction_rate": ("satisfied", "surveyed", None),
    "escalated_satisfaction_rate": ("satisfied", "surveyed", 0.95),
    "order_quality_rate": ("quality_ok", "closed", 0.99),
    "service_complaints": ("service", "orders", 1),        # a count: value = numerator
}
ESCALATED_ONLY = {"escalated_resolution_rate", "escalated_satisfaction_rate"}
# every KPI is computable now (the loaded-data ones: test_kpi_more.py; the satisfaction,
# quality and service-complaint details: test_kpi_satisfaction.py)
NOT_COMPUTABLE = set()


def expect(name, recs, got):
    num, den, ref = FORMULAS[name]
    if name in ESCALATED_ONLY:
        recs = [r for r in recs if r["stream"] == "escalated"]
    c = counters(recs)
    seconds = name in ("avg_delay", "avg_handling_time")
    assert got["denominator"] == c[den], (name, got, c)
    if seconds:
        assert round(got["numerator"] * 1000) == c[num], (name, got, c)
    else:
        assert got["numerator"] == c[num], (name, got, c)
    if name == "service_complaints":
        assert got["value"] == c[num], (name, got)
    elif c[den] == 0:
        assert got["value"] is None, (name, got)
    else:
        want = c[num] / (1000.0 if seconds else 1.0) / c[den]
        assert abs(got["value"] - want) <= 1e-9 * max(1.0, abs(want)), (name, got, want)


def kpi(system, name, **q):
    q.setdefault("region", "320000")
    q.setdefault("business_type", "iptv")     # the dashboard test submits broadband in 320102
    r = system.get("analytics", "/v1/kpi/" + name, params=q)
    assert r.status_code == 200, r.text
    return r.json()


def check_all(system, recs, lo, hi, prev_lo, prev_hi):
    cur = [r for r in recs if lo <= day_of(r["accepted"]) <= hi]
    prev = [r for r in recs if prev_lo <= day_of(r["accepted"]) <= prev_hi]
    c = counters(prev)                  # the scenario exercises every counter
    assert all(c[k] for k in c if k != "service") and c["valid"] < c["orders"] and c["in_limit"] < c["closed"]
    answers = {}
    for name in FORMULAS:
        j = kpi(system, name, **{"from": lo.isoformat(), "to": hi.isoformat()})
        assert j["period"] == {"from": lo.isoformat(), "to": hi.isoformat()}
        assert j["previous"] == {"from": prev_lo.isoformat(), "to": prev_hi.isoformat()}
        assert len(j["rows"]) == 1, j
        row = j["rows"][0]
        assert row["reference"] == FORMULAS[name][2]
        expect(name, cur, row)
        expect(name, prev, row["previous"])                      # 环比
        assert row["last_year"]["denominator"] == 0             # 同比: nothing a year ago
        assert row["last_year"]["value"] == (0 if name == "service_complaints" else None)
        answers[name] = j
        # group by two dimensions
        g = kpi(system, name, **{"from": lo.isoformat(), "to": hi.isoformat(),
                                 "group_by": "channel,region"})
        assert g["group_by"] == ["region", "channel"]
        keys = sorted({(r["region"], r["channel"]) for r in cur + prev
                       if name not in ESCALATED_ONLY or r["stream"] == "escalated"})
        assert [(x["region"], x["channel"]) for x in g["rows"]] == keys, (name, g["rows"])
        for x in g["rows"]:
            sel = lambda rs: [r for r in rs if (r["region"], r["channel"]) ==
                              (x["region"], x["channel"])]
            expect(name, sel(cur), x)
            expect(name, sel(prev), x["previous"])
        answers[name + "/g"] = g
    # by unit (the responsible unit, after transfers)
    g = kpi(system, "on_time_closure_rate", **{"from": lo.isoformat(), "to": hi.isoformat(),
                                               "group_by": "unit"})
    units = sorted({r["unit"] for r in cur + prev})
    assert [x["unit"] for x in g["rows"]] == units
    for x in g["rows"]:
        expect("on_time_closure_rate", [r for r in cur if r["unit"] == x["unit"]], x)
    answers["unit"] = g
    return answers


def test_kpi_scenario_exact_and_after_kill(system):
    listing = system.get("analytics", "/v1/kpi")
    assert listing.status_code == 200, listing.text
    by_name = {k["name"]: k for k in listing.json()["kpis"]}
    assert set(FORMULAS) | NOT_COMPUTABLE <= set(by_name)
    assert all(k["computable"] for k in by_name.values())
    for n in NOT_COMPUTABLE:
        assert not by_name[n]["computable"] and by_name[n]["not_yet_computable"]
        r = system.get("analytics", "/v1/kpi/" + n)
        assert r.status_code == 409, r.text
    assert by_name["promised_completion_rate"]["reference"] == 0.95
    assert all(by_name[n]["formula"] for n in by_name)

    recs = []
    # --- batch 1: 126 orders on day D1 --------------------------------------
    i = 0
    for k in range(120):
        recs.append(submit(system, i, REGIONS[k % 2], CHANNELS[(k // 2) % 3]))
        i += 1
    for k in range(6):
        recs.append(submit(system, i, REGIONS[k % 2], CHANNELS[k % 3], stream="escalated"))
        i += 1
    for r in recs:
        at_handler(system, r)
    b1 = list(recs)
    for r in b1[0:40]:                      # first contact: closed by the first unit
        close(system, r)
    for r in b1[40:60]:                     # transferred, then closed in time
        transfer(system, r)
        close(system, r)
    for r in b1[120:123]:                   # escalated, closed in time
        close(system, r)
    late = b1[60:120] + b1[123:126]         # left open past every deadline

    # every open step overdue: advance past the latest due, wait for the breaches
    dues = [ms(t["due_at"]) for r in late for t in timers(system, r["no"])]
    assert len(dues) >= len(late)
    now = system.get("intake", "/v1/admin/clock").json()["now_ms"]
    system.advance((max(dues) - now) / 1000.0 + 120)
    for r in late:
        bt = wait_for(lambda: [t for t in timers(system, r["no"]) if t["state"] == "breached"],
                      what="breach of " + r["no"])
        r["breach_due"] = max(ms(t["due_at"]) for t in bt)
        r["breached"] = bt
    for r in late[0:30] + late[60:62]:      # closed late → delayed
        close(system, r)
    d1 = min(day_of(r["accepted"]) for r in b1)
    # batch 2 on a later local day, in business hours (later tests expect SMS
    # to go out, and 21:00–08:00 is quiet): the next local day at 09:30
    now = system.get("intake", "/v1/admin/clock").json()["now_ms"]
    local = EPOCH + dt.timedelta(milliseconds=now + 8 * 3600 * 1000)
    nxt = dt.datetime.combine(next_working_day(local.date()), dt.time(9, 30),
                              tzinfo=dt.timezone.utc)
    system.advance((nxt - local).total_seconds())

    # --- batch 2 on day D2, analytics SIGKILLed in the middle ------------------
    b2 = []
    for k in range(40):
        r = submit(system, i, REGIONS[k % 2], CHANNELS[k % 3])
        i += 1
        b2.append(r)
        if k == 15:
            system["analytics"].kill()
        if k == 30:
            system["analytics"].start()
    for r in b2:
        at_handler(system, r)
    for r in b2[0:15]:
        close(system, r)
    for r in b2[15:22]:
        transfer(system, r)
        close(system, r)
    recs += b2

    d2 = min(day_of(r["accepted"]) for r in b2)
    assert d2 > d1 and max(day_of(r["accepted"]) for r in b1) < d2
    span = (d2 - d1).days
    lo, hi = d2, d2 + dt.timedelta(days=max(span, 2) - 1)
    assert max(day_of(r["accepted"]) for r in b2) <= hi
    length = (hi - lo).days + 1
    prev_lo, prev_hi = lo - dt.timedelta(days=length), lo - dt.timedelta(days=1)
    assert prev_lo <= d1 <= prev_hi

    # analytics has caught up when every close of ours is counted
    n_closed = len([r for r in recs if r["closed"] is not None])

    def caught_up():
        j = kpi(system, "avg_handling_time", **{"from": prev_lo.isoformat(),
                                                "to": hi.isoformat()})
        return j["rows"][0]["denominator"] == n_closed
    wait_for(caught_up, timeout=60, what="analytics caught up")
    before = check_all(system, recs, lo, hi, prev_lo, prev_hi)

    # CSV: the same rows
    r = system.get("analytics", "/v1/kpi/on_time_closure_rate",
                   params={"region": "320000", "business_type": "iptv", "from": lo.isoformat(), "to": hi.isoformat(),
                           "group_by": "region,channel", "format": "csv"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv"), r.text
    assert r.content.startswith(b"\xef\xbb\xbf")          # BOM: Excel reads UTF-8
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    g = before["on_time_closure_rate/g"]["rows"]
    assert [(x["region"], x["channel"], int(x["numerator"]), int(x["denominator"]),
             int(x["previous_denominator"])) for x in rows] == \
        [(x["region"], x["channel"], x["numerator"], x["denominator"],
          x["previous"]["denominator"]) for x in g]

    # named periods: the month of D2 against the month before
    m = kpi(system, "on_time_closure_rate", period="month", date=d2.isoformat())
    first = d2.replace(day=1)
    assert m["period"]["from"] == first.isoformat()
    pm = (first - dt.timedelta(days=1)).replace(day=1)
    assert m["previous"]["from"] == pm.isoformat()
    assert m["last_year"]["from"] == first.replace(year=first.year - 1).isoformat()
    expect("on_time_closure_rate",
           [r for r in recs if first <= day_of(r["accepted"]) and
            day_of(r["accepted"]).month == first.month and
            day_of(r["accepted"]).year == first.year], m["rows"][0])

    # a second kill with nothing in flight: the same answers
    system["analytics"].kill()
    system["analytics"].start()
    after = check_all(system, recs, lo, hi, prev_lo, prev_hi)
    assert after == before

    reports(system, recs, lo, hi, prev_lo, d1, before)

    # bad input
    assert system.get("analytics", "/v1/kpi/nope").status_code == 404
    assert system.get("analytics", "/v1/kpi/avg_delay",
                      params={"group_by": "colour"}).status_code == 422
    assert system.get("analytics", "/v1/kpi/avg_delay",
                      params={"from": "2026-13-40", "to": "2026-01-01"}).status_code == 422
    assert system.get("analytics", "/v1/kpi/avg_delay",
                      params={"period": "fortnight"}).status_code == 422


def reports(system, recs, lo, hi, prev_lo, d1, answers):
    """R-43 per step, R-46 rankings/distributions/hot issues/ledger, R-47 CSV."""
    base = {"region": "320000", "business_type": "iptv"}
    span = {"from": prev_lo.isoformat(), "to": hi.isoformat()}
    allp = [r for r in recs if prev_lo <= day_of(r["accepted"]) <= hi]
    # avg_delay per step (ordinary orders: a breached step ends at the close)
    want = {}
    for r in allp:
        if r["stream"] != "ordinary" or r["closed"] is None:
            continue
        for t in r.get("breached", []):
            w = want.setdefault(t["step"], [0, 0])
            w[0] += r["closed"] - ms(t["due_at"])
            w[1] += 1
    g = kpi(system, "avg_delay", group_by="step", stream="ordinary", **span)
    assert g["group_by"] == ["step"]
    assert [x["step"] for x in g["rows"]] == sorted(want), (g["rows"], want)
    for x in g["rows"]:
        n, d = want[x["step"]]
        assert x["denominator"] == d and round(x["numerator"] * 1000) == n, (x, n, d)
        assert abs(x["value"] - n / 1000.0 / d) < 1e-6
    # rankings: the by-unit KPI, best first, with ranks
    rk = system.get("analytics", "/v1/rankings", params=dict(
        base, kpi="on_time_closure_rate", by="unit", **{"from": lo.isoformat(),
                                                        "to": hi.isoformat()}))
    assert rk.status_code == 200, rk.text
    byunit = {x["unit"]: x for x in answers["unit"]["rows"]}
    got = rk.json()["rows"]
    assert sorted(x["unit"] for x in got) == sorted(byunit)
    vals = [x["value"] for x in got if x["value"] is not None]
    assert [x["value"] for x in got] == sorted(vals, reverse=True) + \
        [None] * (len(got) - len(vals))                 # no value (no orders) last
    assert got[0]["rank"] == 1 and all(x["rank"] >= got[i]["rank"] for i, x in
                                       enumerate(got[1:]))
    for x in got:
        assert (x["numerator"], x["denominator"]) == (byunit[x["unit"]]["numerator"],
                                                      byunit[x["unit"]]["denominator"])
    # distribution by channel and by result status
    d = system.get("analytics", "/v1/reports/distribution", params=dict(base, dim="channel",
                                                                        **span)).json()
    cnt = {}
    for r in allp:
        cnt[r["channel"]] = cnt.get(r["channel"], 0) + 1
    assert {x["channel"]: x["orders"] for x in d["rows"]} == cnt
    assert abs(sum(x["share"] for x in d["rows"]) - 1) < 1e-9
    assert [x["orders"] for x in d["rows"]] == sorted(cnt.values(), reverse=True)
    d = system.get("analytics", "/v1/reports/distribution", params=dict(base, dim="result",
                                                                        **span)).json()
    c = counters(allp)
    assert [(x["result"], x["orders"]) for x in d["rows"]] == [
        ("first_contact", c["first"]), ("transferred", c["transferred"]),
        ("other", c["orders"] - c["first"] - c["transferred"])]
    # hot issues: the problem type and the title's words
    h = system.get("analytics", "/v1/reports/hot_issues", params=dict(base, **span)).json()
    assert [(x["type"], x["issue"], x["orders"]) for x in h["rows"]
            if x["type"] == "problem_type"] == [("problem_type", "network", len(allp))]
    assert {x["issue"]: x["orders"] for x in h["rows"] if x["type"] == "keyword"} == \
        {"宽带": len(allp), "带断": len(allp), "断网": len(allp)}
    # the ledger of D1's month: per unit orders, closures and breaches
    month = d1.strftime("%Y-%m")
    led = system.get("analytics", "/v1/reports/ledger", params=dict(base, month=month)).json()
    mine = [r for r in recs if day_of(r["accepted"]).strftime("%Y-%m") == month]
    units = {}
    for r in mine:
        u = units.setdefault(r["unit"], dict(orders=0, closed=0, closed_in_limit=0, breaches=0))
        u["orders"] += 1
        u["closed"] += r["closed"] is not None
        u["closed_in_limit"] += r["closed"] is not None and r["breach_due"] is None
    for r in recs:
        for t in r.get("breached", []):
            if day_of(ms(t["breached_at"])).strftime("%Y-%m") == month:
                u = units.setdefault(t["unit_id"], dict(orders=0, closed=0, closed_in_limit=0,
                                                        breaches=0))
                u["breaches"] += 1
    assert {x["unit"]: {k: x[k] for k in ("orders", "closed", "closed_in_limit", "breaches")}
            for x in led["rows"]} == units
    # supervision records of that month = the breached timers; CSV with Chinese headers
    sv = system.get("analytics", "/v1/reports/supervision",
                    params=dict(base, month=month, event="breached"))
    want_sv = sorted((r["no"], t["step"]) for r in recs for t in r.get("breached", [])
                     if day_of(ms(t["breached_at"])).strftime("%Y-%m") == month)
    assert sorted((x["order_no"], x["step"]) for x in sv.json()["rows"]) == want_sv
    cs = system.get("analytics", "/v1/reports/supervision",
                    params=dict(base, month=month, event="breached", format="csv"))
    assert cs.content.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(cs.content.decode("utf-8-sig"))))
    assert lines[0][:3] == ["工单号", "督办类型", "环节"] and len(lines) == len(want_sv) + 1
