-- Satisfaction, order quality and service complaints (issue 6 round 3, R-42/R-43), from the
-- router's WorkOrderStepChanged fields 17–20:
--   satisfaction           the latest callback's 1..5 (NULL = never surveyed)
--   faults                 callbacks that found the handling at fault + reopens (回访再处理)
--   service_substantiated  a close/conclude with responsibility "service" (服务性投诉属实)
ALTER TABLE analytics.orders
  ADD COLUMN IF NOT EXISTS satisfaction          int,
  ADD COLUMN IF NOT EXISTS faults                int NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS service_substantiated boolean NOT NULL DEFAULT false;

ALTER TABLE analytics.daily
  ADD COLUMN IF NOT EXISTS surveyed   int NOT NULL DEFAULT 0,  -- orders with a callback satisfaction
  ADD COLUMN IF NOT EXISTS satisfied  int NOT NULL DEFAULT 0,  -- … of 4 or 5 (满意)
  ADD COLUMN IF NOT EXISTS quality_ok int NOT NULL DEFAULT 0,  -- closed, no return/transfer, no fault, not reopened (合格)
  ADD COLUMN IF NOT EXISTS service    int NOT NULL DEFAULT 0;  -- substantiated service complaints

CREATE OR REPLACE FUNCTION analytics.daily_merge(plus analytics.orders[], minus analytics.orders[])
RETURNS void LANGUAGE sql AS $$
  INSERT INTO analytics.daily AS d (day, region, channel, business_type, tier, kind, stream,
      customer_level, unit, orders, closed, closed_in_limit, first_contact, transferred,
      valid_flow, delayed, delay_ms, handling_ms, promised_ok, surveyed, satisfied, quality_ok,
      service)
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
         g.quality_ok, g.service) <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
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
      service = d.service + EXCLUDED.service
$$;

-- Orders closed before this migration were never judged: count them as 合格 where
-- nothing known says otherwise (no return/transfer), like the new ones.
UPDATE analytics.daily d SET quality_ok = q.n
  FROM (SELECT (o.received_at AT TIME ZONE INTERVAL '+08:00')::date AS day,
               coalesce(o.region, '') AS region, coalesce(o.channel, '') AS channel,
               coalesce(o.business_type, '') AS business_type, coalesce(o.tier, '') AS tier,
               coalesce(o.kind, '') AS kind, coalesce(o.stream, '') AS stream,
               coalesce(o.customer_level, '') AS customer_level, coalesce(o.unit_id, '') AS unit,
               count(*) AS n
          FROM analytics.orders o
         WHERE o.received_at IS NOT NULL AND o.closed_at IS NOT NULL AND o.misroutes = 0
         GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9) q
 WHERE (d.day, d.region, d.channel, d.business_type, d.tier, d.kind, d.stream, d.customer_level,
        d.unit) = (q.day, q.region, q.channel, q.business_type, q.tier, q.kind, q.stream,
                   q.customer_level, q.unit);
