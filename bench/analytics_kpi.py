#!/usr/bin/python3
"""KPI bench: fills analytics.orders with synthetic work orders spread over a
year (every row goes through the rollup trigger, as the consumer's upserts
do), then times GET /v1/kpi/{name}?group_by=<two dimensions> over that year.

  /usr/bin/python3 bench/analytics_kpi.py --own [--orders 10000000] [--requests 500] [--keep]
  KESU_PG_ADMIN="host=... dbname=kesu user=postgres" \\
  /usr/bin/python3 bench/analytics_kpi.py [--orders 1000000] [--requests 500]
        [--url http://127.0.0.1:8082] [--token-file var/admin.token] [--skip-load]

--own starts what it needs itself (the e2e harness of tests/conftest.py: a
throw-away Postgres, `kesuctl migrate` + `load`, an admin token, ONE
kesu-analytics); --keep leaves them running afterwards and prints how to attach
(KESU_PG_ADMIN, --url, --token-file) for more runs with --skip-load.
Otherwise it runs against a live analytics (`make run`) whose database
KESU_PG_ADMIN reaches.
The synthetic orders use order numbers BENCH… and region codes 65xxxx (新疆), so
they do not mix with real ones. Prints numbers; asserts nothing."""
import argparse
import os
import random
import time

import psycopg2
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --shape narrow: every dimension a function of g mod small numbers — few combinations
# (about 40 rollup rows per day). --shape realistic (default): the dimensions drawn
# independently from a hash of g with skewed shares, the unit the city's own in 9 of 10
# orders (else the province's) — thousands of combinations per day, as real traffic has.
LOAD_NARROW = """
INSERT INTO analytics.orders AS o (order_no, region, channel, business_type, tier, kind, stream,
    customer_level, unit_id, received_at, promised_by, closed_at, breached_at, breach_due, moves,
    misroutes)
SELECT 'BENCH' || lpad(g::text, 10, '0'),
       '65' || lpad((1 + g %% 30)::text, 2, '0') || '00',
       (ARRAY['hotline','website','app','hall','sms'])[1 + g %% 5],
       (ARRAY['mobile','broadband','fixed','iptv'])[1 + (g / 5) %% 4],
       (ARRAY['general','provincial','national'])[1 + (g / 20) %% 3],
       'complaint',
       CASE WHEN g %% 50 = 0 THEN 'escalated' ELSE 'ordinary' END,
       (ARRAY['', 'vip', 'gold'])[1 + (g / 7) %% 3],
       'xj-' || (g %% 20),
       r, r + interval '3 days',
       CASE WHEN g %% 10 < 8 THEN r + (g %% 97) * interval '1 hour' END,
       CASE WHEN g %% 10 = 7 THEN r + interval '24 hours' END,
       CASE WHEN g %% 10 = 7 THEN r + interval '24 hours' END,
       (g %% 13 = 0)::int, (g %% 26 = 0)::int
FROM (SELECT g, %s::timestamptz + (g %% 365) * interval '1 day' + (g %% 86400) * interval '1 second'
      AS r FROM generate_series(%s, %s) g) s
ON CONFLICT (order_no) DO NOTHING
"""

LOAD_REALISTIC = """
INSERT INTO analytics.orders AS o (order_no, region, channel, business_type, tier, kind, stream,
    customer_level, unit_id, received_at, promised_by, closed_at, breached_at, breach_due, moves,
    misroutes, satisfaction, faults, service_substantiated)
SELECT 'BENCH' || lpad(g::text, 10, '0'),
       '65' || lpad((1 + c)::text, 2, '0') || '00',
       (ARRAY['hotline','hotline','hotline','website','app','app','hall','sms'])[1 + h1 %% 8],
       (ARRAY['mobile','mobile','broadband','broadband','fixed','iptv'])[1 + h2 %% 6],
       CASE WHEN h3 %% 100 < 85 THEN 'general' WHEN h3 %% 100 < 97 THEN 'provincial'
            ELSE 'national' END,
       'complaint',
       CASE WHEN h4 %% 50 = 0 THEN 'escalated' ELSE 'ordinary' END,
       CASE WHEN h5 %% 100 < 80 THEN '' WHEN h5 %% 100 < 95 THEN 'gold' ELSE 'vip' END,
       CASE WHEN h6 %% 10 = 0 THEN 'xj' ELSE 'xj-' || c END,
       r, r + interval '3 days',
       CASE WHEN h7 %% 10 < 8 THEN r + (h7 %% 97) * interval '1 hour' END,
       CASE WHEN h7 %% 10 = 7 THEN r + interval '24 hours' END,
       CASE WHEN h7 %% 10 = 7 THEN r + interval '24 hours' END,
       (h8 %% 13 = 0)::int, (h8 %% 26 = 0)::int,
       CASE WHEN h7 %% 10 < 5 THEN 1 + h8 %% 5 END, (h8 %% 40 = 0)::int, h4 %% 200 = 1
FROM (SELECT g, %s::timestamptz + (g %% 365) * interval '1 day' + (g %% 86400) * interval '1 second'
      AS r, (hashint8(g) & 2147483647) %% 30 AS c,
      (hashint8(g + 1000000000) & 2147483647) AS h1, (hashint8(g + 2000000000) & 2147483647) AS h2,
      (hashint8(g + 3000000000) & 2147483647) AS h3, (hashint8(g + 4000000000) & 2147483647) AS h4,
      (hashint8(g + 5000000000) & 2147483647) AS h5, (hashint8(g + 6000000000) & 2147483647) AS h6,
      (hashint8(g + 7000000000) & 2147483647) AS h7, (hashint8(g + 8000000000) & 2147483647) AS h8
      FROM generate_series(%s, %s) g) s
ON CONFLICT (order_no) DO NOTHING
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1000000)
    ap.add_argument("--batch", type=int, default=100000)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--url", default="http://127.0.0.1:%d" %
                    (8082 + int(os.environ.get("KESU_PORT_OFFSET", "0"))))
    ap.add_argument("--token-file", default=os.path.join(ROOT, "var", "admin.token"))
    ap.add_argument("--year-start", default="2025-01-01")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--shape", choices=["realistic", "narrow"], default="realistic")
    ap.add_argument("--own", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if not a.own:
        run(a)
        return
    import sys
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import conftest
    s = conftest.System()
    svc = None
    try:
        os.environ["KESU_PG_ADMIN"] = s.env["KESU_PG_ADMIN"]
        tf = os.path.join(s.base, "admin.token")
        with open(tf, "w") as f:
            f.write(s.admin)
        svc = conftest.Service(s, "analytics")
        svc.start()
        a.url, a.token_file = svc.url(""), tf
        print("own system under %s: analytics %s (pid %d)" % (s.base, a.url, svc.proc.pid),
              flush=True)
        run(a)
    finally:
        if a.keep:
            print("kept: KESU_PG_ADMIN=%r --url %s --token-file %s (analytics pid %d; Postgres"
                  " data %s/pg/data)" % (s.env["KESU_PG_ADMIN"], a.url, a.token_file,
                                         svc.proc.pid if svc else 0, s.base), flush=True)
        else:
            if svc:
                svc.stop()
            s.pg.stop()
            s.sms.close()


def run(a):

    if not a.skip_load:
        db = psycopg2.connect(os.environ["KESU_PG_ADMIN"])
        db.autocommit = True
        cur = db.cursor()
        t0 = time.time()
        for lo in range(1, a.orders + 1, a.batch):
            hi = min(a.orders, lo + a.batch - 1)
            cur.execute(LOAD_REALISTIC if a.shape == "realistic" else LOAD_NARROW, (a.year_start + "T00:00:00+08:00", lo, hi))
            if (hi // a.batch) % 10 == 0 or hi == a.orders:
                print("  %d orders loaded, %.0f s" % (hi, time.time() - t0), flush=True)
        dt = time.time() - t0
        cur.execute("SELECT (SELECT count(*) FROM analytics.daily),"
                    " (SELECT count(*) FROM analytics.monthly)")
        nd, nm = cur.fetchone()
        print("loaded %d orders (%s) through the rollup trigger in %.1f s: %.0f rows/s; "
              "analytics.daily has %d rows, analytics.monthly %d" % (
                  a.orders, a.shape, dt, a.orders / dt, nd, nm), flush=True)
        cur.execute("VACUUM ANALYZE analytics.daily")
        cur.execute("VACUUM ANALYZE analytics.monthly")

    token = open(a.token_file).read().strip()
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + token
    kpis = ["on_time_closure_rate", "avg_handling_time", "avg_delay", "valid_flow_rate"]
    dims = ["region", "channel", "business_type", "tier", "unit", "customer_level"]
    end = str(int(a.year_start[:4])) + "-12-31"
    lat = []
    for i in range(a.requests):
        g = random.sample(dims, 2)
        t = time.perf_counter()
        r = s.get(a.url + "/v1/kpi/" + random.choice(kpis),
                  params={"from": a.year_start, "to": end, "group_by": ",".join(g),
                          "region": "650000"})
        lat.append(time.perf_counter() - t)
        if r.status_code != 200:
            print("HTTP", r.status_code, r.text[:200])
            return
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    print("%d KPI requests, a year grouped by two dimensions: p50 %.1f ms, p99 %.1f ms, "
          "max %.1f ms" % (len(lat), pct(0.5), pct(0.99), lat[-1] * 1000))


if __name__ == "__main__":
    main()
