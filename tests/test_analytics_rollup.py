"""Issue 6, KPI speed: KPIs read whole years from analytics.yearly, whole
months from analytics.monthly and the other days from analytics.daily. Facts written straight into
analytics.orders (as the consumer's upserts and bench/analytics_kpi.py do, so
both rollup triggers run) over four months; then every kind of period — days
inside a month, ranges across month ends, whole months, a quarter, a year, a
week — must give, for the period, 环比 and 同比, exactly the sums of the daily
rollup over those days; and the monthly rollup equals the daily one summed per
month (the yearly one the monthly per year), also after updates move orders
between counters."""

REGION = "460100"   # 海口: only this test's facts
DIMS = "region, channel, business_type, tier, kind, stream, customer_level, unit"


def load(system):
    pg = system.pg
    pg.query("""
        INSERT INTO analytics.orders (order_no, region, channel, business_type, tier, kind, stream,
            customer_level, unit_id, received_at, promised_by, closed_at, breached_at, breach_due,
            moves, misroutes)
        SELECT 'RLTEST' || g, %s, (ARRAY['hotline','app','website'])[1 + g %% 3],
               (ARRAY['mobile','broadband'])[1 + (g / 3) %% 2], 'general', 'complaint',
               CASE WHEN g %% 17 = 0 THEN 'escalated' ELSE 'ordinary' END, '', 'hn-hk',
               r, r + interval '2 days',
               CASE WHEN g %% 4 <> 0 THEN r + (g %% 50) * interval '1 hour' END,
               CASE WHEN g %% 9 = 0 THEN r + interval '20 hours' END,
               CASE WHEN g %% 9 = 0 THEN r + interval '20 hours' END,
               (g %% 5 = 0)::int, (g %% 10 = 0)::int
          FROM (SELECT g, timestamptz '2025-11-14 23:30+08' + g * interval '11 hours' AS r
                  FROM generate_series(1, 260) g) s""", (REGION,))
    # updates: some open orders close, some closed ones get a breach (minus old, plus new)
    pg.query("""UPDATE analytics.orders SET closed_at = received_at + interval '5 hours'
                 WHERE order_no LIKE 'RLTEST%%' AND closed_at IS NULL
                   AND substr(order_no, 7)::int %% 8 = 0""")
    pg.query("""UPDATE analytics.orders SET breached_at = received_at + interval '1 hour',
                       breach_due = received_at + interval '1 hour'
                 WHERE order_no LIKE 'RLTEST%%' AND substr(order_no, 7)::int %% 7 = 0""")


def daily_sums(system, lo, hi):
    r = system.pg.query("""
        SELECT coalesce(sum(closed_in_limit), 0), coalesce(sum(orders), 0),
               coalesce(sum(delay_ms), 0), coalesce(sum(delayed), 0)
          FROM analytics.daily
         WHERE region = %s AND kind = 'complaint' AND day BETWEEN %s AND %s""",
                        (REGION, lo, hi))[0]
    return [int(x) for x in r]


def test_periods_equal_the_daily_rollup(system):
    load(system)
    # the monthly rollup is the daily one per month
    got = system.pg.query("""
        SELECT month, %s, orders, closed, closed_in_limit, first_contact, transferred, valid_flow,
               delayed, delay_ms, handling_ms, promised_ok, surveyed, satisfied, quality_ok, service
          FROM analytics.monthly WHERE region = %%s AND orders <> 0 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    """ % DIMS, (REGION,))
    want = system.pg.query("""
        SELECT date_trunc('month', day)::date AS m, %s, sum(orders), sum(closed),
               sum(closed_in_limit), sum(first_contact), sum(transferred), sum(valid_flow),
               sum(delayed), sum(delay_ms), sum(handling_ms), sum(promised_ok), sum(surveyed),
               sum(satisfied), sum(quality_ok), sum(service)
          FROM analytics.daily WHERE region = %%s GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
        HAVING sum(orders) <> 0 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9""" % DIMS, (REGION,))
    assert got == want and len({r[0] for r in got}) == 5, got[:3]
    # and the yearly one is the monthly one per year
    got = system.pg.query("""
        SELECT year, %s, orders, closed, closed_in_limit, delayed, delay_ms, handling_ms
          FROM analytics.yearly WHERE region = %%s AND orders <> 0 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    """ % DIMS, (REGION,))
    want = system.pg.query("""
        SELECT date_trunc('year', month)::date, %s, sum(orders), sum(closed),
               sum(closed_in_limit), sum(delayed), sum(delay_ms), sum(handling_ms)
          FROM analytics.monthly WHERE region = %%s GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
        HAVING sum(orders) <> 0 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9""" % DIMS, (REGION,))
    assert got == want and len({r[0] for r in got}) == 2, got[:3]

    asks = [{"from": "2025-11-20", "to": "2025-11-25"},      # days inside one month
            {"from": "2025-11-20", "to": "2026-01-10"},      # partial, whole, partial
            {"from": "2025-12-01", "to": "2026-02-28"},      # whole months
            {"from": "2025-12-01", "to": "2026-01-17"},      # whole month + days
            {"from": "2025-11-15", "to": "2026-03-31"},
            {"period": "quarter", "date": "2026-01-15"},
            {"period": "year", "date": "2026-02-01"},
            {"period": "year", "date": "2025-06-01"},        # a whole year (and 同比 a year)
            {"from": "2025-01-01", "to": "2026-02-15"},      # a year, a month, days
            {"from": "2024-12-20", "to": "2026-03-03"},      # days, a year, months, days
            {"from": "2025-01-01", "to": "2025-11-30"},      # months up to the year's end
            {"period": "month", "date": "2026-02-10"},
            {"period": "week", "date": "2025-12-31"},
            {"period": "day", "date": "2026-01-01"}]
    for ask in asks:
        for name, cols in (("on_time_closure_rate", (0, 1)), ("avg_delay", (2, 3))):
            r = system.get("analytics", "/v1/kpi/" + name, params=dict(ask, region=REGION))
            assert r.status_code == 200, r.text
            j = r.json()
            row = j["rows"][0]
            for key, per in (("period", row), ("previous", row["previous"]),
                             ("last_year", row["last_year"])):
                s = daily_sums(system, j[key]["from"], j[key]["to"])
                want = (s[cols[0]] / 1000.0 if name == "avg_delay" else s[cols[0]], s[cols[1]])
                assert (per["numerator"], per["denominator"]) == want, (ask, name, key, j[key])
        if ask.get("from") == "2025-11-20" and ask["to"] == "2026-01-10":
            assert row["previous"]["denominator"] > 0  # 环比 reaches back into the data
    # grouped by two dimensions: each group is the daily sums of that group
    r = system.get("analytics", "/v1/kpi/on_time_closure_rate",
                   params={"from": "2025-11-20", "to": "2026-01-10", "region": REGION,
                           "group_by": "channel,stream"}).json()
    want = system.pg.query("""
        SELECT channel, stream, sum(closed_in_limit), sum(orders) FROM analytics.daily
         WHERE region = %s AND kind = 'complaint' AND day BETWEEN '2025-11-20' AND '2026-01-10'
         GROUP BY 1, 2 HAVING sum(orders) > 0 ORDER BY 1, 2""", (REGION,))
    assert [(x["channel"], x["stream"], x["numerator"], x["denominator"]) for x in r["rows"]] == \
        [(a, b, int(c), int(d)) for a, b, c, d in want]
    assert len(want) == 6


def test_service_complaints_reference_follows_the_period(system):
    # SPEC R-43: at most 1 a month, fewer than 4 a year (the count per unit)
    for ask, ref in (({"period": "month", "date": "2026-01-15"}, 1.0),
                     ({"period": "week", "date": "2026-01-15"}, 1.0),
                     ({"from": "2026-01-01", "to": "2026-01-31"}, 1.0),
                     ({"period": "quarter", "date": "2026-01-15"}, None),
                     ({"period": "year", "date": "2026-01-15"}, 3.0),
                     ({"from": "2025-03-01", "to": "2026-02-28"}, 3.0)):
        j = system.get("analytics", "/v1/kpi/service_complaints",
                       params=dict(ask, region=REGION, group_by="unit")).json()
        assert j["reference"] == ref and all(r["reference"] == ref for r in j["rows"]), (ask, j)
