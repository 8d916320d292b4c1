-- The daily rollup per statement instead of per row (issue 6, ingest speed):
-- the consumer writes each batch's facts with ONE multi-row upsert, and these
-- statement-level triggers add the batch's aggregated deltas to
-- analytics.daily with ONE upsert (new rows' contributions minus the old
-- rows'), in the same transaction. Same numbers as 002's row trigger.
CREATE OR REPLACE FUNCTION analytics.daily_merge(plus analytics.orders[], minus analytics.orders[])
RETURNS void LANGUAGE sql AS $$
  INSERT INTO analytics.daily AS d (day, region, channel, business_type, tier, kind, stream,
      customer_level, unit, orders, closed, closed_in_limit, first_contact, transferred,
      valid_flow, delayed, delay_ms, handling_ms, promised_ok)
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
                    AND x.closed_at <= x.promised_by)::int) AS promised_ok
    FROM (SELECT p.*, 1 AS sign FROM unnest(plus) p
          UNION ALL SELECT m.*, -1 FROM unnest(minus) m) x
    WHERE x.received_at IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9) g
  -- an order whose contribution did not change adds nothing
  WHERE (g.orders, g.closed, g.closed_in_limit, g.first_contact, g.transferred, g.valid_flow,
         g.delayed, g.delay_ms, g.handling_ms, g.promised_ok) <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
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
      promised_ok = d.promised_ok + EXCLUDED.promised_ok
$$;

CREATE OR REPLACE FUNCTION analytics.orders_rollup_ins() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM analytics.daily_merge(ARRAY(SELECT n::analytics.orders FROM new_rows n), '{}'::analytics.orders[]);
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION analytics.orders_rollup_upd() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM analytics.daily_merge(ARRAY(SELECT n::analytics.orders FROM new_rows n),
                                ARRAY(SELECT o::analytics.orders FROM old_rows o));
  RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS orders_rollup ON analytics.orders;
DROP TRIGGER IF EXISTS orders_rollup_ins ON analytics.orders;
DROP TRIGGER IF EXISTS orders_rollup_upd ON analytics.orders;
CREATE TRIGGER orders_rollup_ins AFTER INSERT ON analytics.orders
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
  EXECUTE FUNCTION analytics.orders_rollup_ins();
CREATE TRIGGER orders_rollup_upd AFTER UPDATE ON analytics.orders
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
  EXECUTE FUNCTION analytics.orders_rollup_upd();
