-- A monthly rollup beside the daily one (issue 6, KPI speed): KPI periods are
-- read as whole months from analytics.monthly plus the days of partial months
-- from analytics.daily, so a year is 12 monthly row sets instead of 365 daily
-- ones. Kept by the same statement-level triggers (daily_merge writes both, in
-- the consumer's transaction, one statement): same counters, same numbers.
-- A running consumer's batch waits until this commits: the backfill below and the
-- new daily_merge see the same rows (nothing merged between the two by the old one).
LOCK TABLE analytics.orders, analytics.daily IN SHARE ROW EXCLUSIVE MODE;
CREATE TABLE IF NOT EXISTS analytics.monthly (LIKE analytics.daily INCLUDING DEFAULTS);
ALTER TABLE analytics.monthly RENAME COLUMN day TO month;  -- the first day of the local month
ALTER TABLE analytics.monthly
  ADD PRIMARY KEY (month, region, channel, business_type, tier, kind, stream, customer_level, unit);

INSERT INTO analytics.monthly
SELECT date_trunc('month', d.day)::date, d.region, d.channel, d.business_type, d.tier, d.kind,
       d.stream, d.customer_level, d.unit, sum(d.orders), sum(d.closed), sum(d.closed_in_limit),
       sum(d.first_contact), sum(d.transferred), sum(d.valid_flow), sum(d.delayed),
       sum(d.delay_ms), sum(d.handling_ms), sum(d.promised_ok), sum(d.surveyed), sum(d.satisfied),
       sum(d.quality_ok), sum(d.service)
  FROM analytics.daily d
 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION analytics.daily_merge(plus analytics.orders[], minus analytics.orders[])
RETURNS void LANGUAGE sql AS $$
  WITH delta AS MATERIALIZED (
  SELECT * FROM (
    SELECT (x.received_at AT TIME ZONE INTERVAL '+08:00')::date AS day,
      coalesce(x.region, '') AS region, coalesce(x.channel, '') AS channel,
      coalesce(x.business_type, '') AS business_type, coalesce(x.tier, '') AS tier,
      coalesce(x.kind, '') AS kind, coalesce(x.stream, '') AS stream,
      coalesce(x.customer_level, '') AS customer_level, coalesce(x.unit_id, '') AS unit,
      sum(x.sign) AS orders,
      sum(x.sign * (x.closed_at IS NOT NULL)::int) AS closed,
      sum(x.sign * (x.closed_at IS NOT NULL AND x.breached_at IS NULL)::int) AS closed_in_limit,
      sum(x.sign * (x.closed_at IS NOT NULL AND x.breached_at IS NULL AND x.moves = 0)::int)
        AS first_contact,
      sum(x.sign * (x.closed_at IS NOT NULL AND x.breached_at IS NULL AND x.moves > 0)::int)
        AS transferred,
      sum(x.sign * (x.misroutes = 0 AND x.breached_at IS NULL)::int) AS valid_flow,
      sum(x.sign * coalesce(x.closed_at > x.breach_due, false)::int) AS delayed,
      sum(CASE WHEN x.closed_at > x.breach_due
          THEN x.sign * (extract(epoch FROM x.closed_at - x.breach_due) * 1000)::bigint ELSE 0 END)
        AS delay_ms,
      sum(CASE WHEN x.closed_at IS NOT NULL
          THEN x.sign * (extract(epoch FROM x.closed_at - x.received_at) * 1000)::bigint ELSE 0 END)
        AS handling_ms,
      sum(x.sign * (x.closed_at IS NOT NULL AND x.promised_by IS NOT NULL
                    AND x.closed_at <= x.promised_by)::int) AS promised_ok,
      sum(x.sign * (x.satisfaction IS NOT NULL)::int) AS surveyed,
      sum(x.sign * coalesce(x.satisfaction >= 4, false)::int) AS satisfied,
      sum(x.sign * (x.closed_at IS NOT NULL AND x.misroutes = 0 AND x.faults = 0)::int)
        AS quality_ok,
      sum(x.sign * x.service_substantiated::int) AS service
    FROM (SELECT p.*, 1 AS sign FROM unnest(plus) p
          UNION ALL SELECT m.*, -1 FROM unnest(minus) m) x
    WHERE x.received_at IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9) g
  -- an order whose contribution did not change adds nothing
  WHERE (g.orders, g.closed, g.closed_in_limit, g.first_contact, g.transferred, g.valid_flow,
         g.delayed, g.delay_ms, g.handling_ms, g.promised_ok, g.surveyed, g.satisfied,
         g.quality_ok, g.service) <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
  to_daily AS (
  INSERT INTO analytics.daily AS d SELECT * FROM delta
  ON CONFLICT (day, region, channel, business_type, tier, kind, stream, customer_level, unit)
  DO UPDATE SET orders = d.orders + EXCLUDED.orders,
      closed = d.closed + EXCLUDED.closed,
      closed_in_limit = d.closed_in_limit + EXCLUDED.closed_in_limit,
      first_contact = d.first_contact + EXCLUDED.first_contact,
      transferred = d.transferred + EXCLUDED.transferred,
      valid_flow = d.valid_flow + EXCLUDED.valid_flow,
      delayed = d.delayed + EXCLUDED.delayed,
      delay_ms = d.delay_ms + EXCLUDED.delay_ms,
      handling_ms = d.handling_ms + EXCLUDED.handling_ms,
      promised_ok = d.promised_ok + EXCLUDED.promised_ok,
      surveyed = d.surveyed + EXCLUDED.surveyed,
      satisfied = d.satisfied + EXCLUDED.satisfied,
      quality_ok = d.quality_ok + EXCLUDED.quality_ok,
      service = d.service + EXCLUDED.service)
  INSERT INTO analytics.monthly AS m
  SELECT date_trunc('month', r.day)::date, r.region, r.channel, r.business_type, r.tier, r.kind,
         r.stream, r.customer_level, r.unit, sum(r.orders), sum(r.closed), sum(r.closed_in_limit),
         sum(r.first_contact), sum(r.transferred), sum(r.valid_flow), sum(r.delayed),
         sum(r.delay_ms), sum(r.handling_ms), sum(r.promised_ok), sum(r.surveyed),
         sum(r.satisfied), sum(r.quality_ok), sum(r.service)
    FROM delta r
   GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
  ON CONFLICT (month, region, channel, business_type, tier, kind, stream, customer_level, unit)
  DO UPDATE SET orders = m.orders + EXCLUDED.orders,
      closed = m.closed + EXCLUDED.closed,
      closed_in_limit = m.closed_in_limit + EXCLUDED.closed_in_limit,
      first_contact = m.first_contact + EXCLUDED.first_contact,
      transferred = m.transferred + EXCLUDED.transferred,
      valid_flow = m.valid_flow + EXCLUDED.valid_flow,
      delayed = m.delayed + EXCLUDED.delayed,
      delay_ms = m.delay_ms + EXCLUDED.delay_ms,
      handling_ms = m.handling_ms + EXCLUDED.handling_ms,
      promised_ok = m.promised_ok + EXCLUDED.promised_ok,
      surveyed = m.surveyed + EXCLUDED.surveyed,
      satisfied = m.satisfied + EXCLUDED.satisfied,
      quality_ok = m.quality_ok + EXCLUDED.quality_ok,
      service = m.service + EXCLUDED.service
$$;
