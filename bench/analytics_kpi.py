#!/usr/bin/python3
"""KPI bench: fills analytics.orders with synthetic work orders spread over a
year (every row goes through the rollup trigger, as the consumer's upserts
do), then times GET /v1/kpi/{name}?group_by=<two dimensions> over that year.

  KESU_PG_ADMIN="host=... dbname=kesu user=postgres" \\
  /usr/bin/python3 bench/analytics_kpi.py [--orders 1000000] [--requests 500]
        [--url http://127.0.0.1:8082] [--token-file var/admin.token] [--skip-load]

Run against a live analytics (`make run`) whose database KESU_PG_ADMIN reaches.
The synthetic orders use order numbers BENCH… and region codes 65xxxx (新疆), so
they do not mix with real ones. Prints numbers; asserts nothing."""
import argparse
import os
import random
import time

import psycopg2
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LOAD = """
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
    a = ap.parse_args()

    if not a.skip_load:
        db = psycopg2.connect(os.environ["KESU_PG_ADMIN"])
        db.autocommit = True
        cur = db.cursor()
        t0 = time.time()
        for lo in range(1, a.orders + 1, a.batch):
            hi = min(a.orders, lo + a.batch - 1)
            cur.execute(LOAD, (a.year_start + "T00:00:00+08:00", lo, hi))
        dt = time.time() - t0
        cur.execute("SELECT count(*) FROM analytics.daily")
        print("loaded %d orders through the rollup trigger in %.1f s: %.0f rows/s; "
              "analytics.daily has %d rows" % (a.orders, dt, a.orders / dt, cur.fetchone()[0]))
        cur.execute("VACUUM ANALYZE analytics.daily")

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
