-- KPI facts (issue 6): every dimension the events carry, the counters the
-- router's steps and the SLA's breaches give, and a daily rollup kept by a
-- trigger in the same transaction as the fact upsert (subtract the row's old
-- contribution, add the new one), so KPI requests read only the rollup.
ALTER TABLE analytics.orders
  ADD COLUMN IF NOT EXISTS kind           text,
  ADD COLUMN IF NOT EXISTS stream         text,
  ADD COLUMN IF NOT EXISTS customer_level text,
  ADD COLUMN IF NOT EXISTS promised_by    timestamptz,
  ADD COLUMN IF NOT EXISTS first_unit     text,
  ADD COLUMN IF NOT EXISTS moves          int NOT NULL DEFAULT 0, -- dispatch/transfer/return/escalate after creation
  ADD COLUMN IF NOT EXISTS misroutes      int NOT NULL DEFAULT 0, -- return/transfer
  ADD COLUMN IF NOT EXISTS steps          int NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS last_step_at   timestamptz,
  ADD COLUMN IF NOT EXISTS breach_due     timestamptz;            -- latest due_at among SlaBreached

CREATE TABLE IF NOT EXISTS analytics.daily (
  day            date NOT NULL,  -- local (UTC+8) day of acceptance
  region         text NOT NULL,
  channel        text NOT NULL,
  business_type  text NOT NULL,
  tier           text NOT NULL,
  kind           text NOT NULL,
  stream         text NOT NULL,
  customer_level text NOT NULL,
  unit           text NOT NULL,
  orders         int NOT NULL DEFAULT 0,
  closed         int NOT NULL DEFAULT 0,
  closed_in_limit int NOT NULL DEFAULT 0,  -- closed, no step breached
  first_contact  int NOT NULL DEFAULT 0,   -- closed in limit, no move after creation
  transferred    int NOT NULL DEFAULT 0,   -- closed in limit after at least one move
  valid_flow     int NOT NULL DEFAULT 0,   -- no return/transfer, no breach
  delayed        int NOT NULL DEFAULT 0,   -- closed after a breached deadline
  delay_ms       bigint NOT NULL DEFAULT 0,   -- Σ closed_at − breach_due over delayed
  handling_ms    bigint NOT NULL DEFAULT 0,   -- Σ closed_at − received_at over closed
  promised_ok    int NOT NULL DEFAULT 0,   -- closed_at ≤ promised_by
  PRIMARY KEY (day, region, channel, business_type, tier, kind, stream, customer_level, unit)
);
CREATE INDEX IF NOT EXISTS daily_region ON analytics.daily (region text_pattern_ops, day);

CREATE OR REPLACE FUNCTION analytics.daily_add(o analytics.orders, sign int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  is_closed boolean := o.closed_at IS NOT NULL;
  in_limit boolean := o.closed_at IS NOT NULL AND o.breached_at IS NULL;
  is_delayed boolean := o.closed_at IS NOT NULL AND o.breach_due IS NOT NULL
                        AND o.closed_at > o.breach_due;
BEGIN
  IF o.received_at IS NULL THEN
    RETURN;
  END IF;
  INSERT INTO analytics.daily AS d (day, region, channel, business_type, tier, kind, stream,
      customer_level, unit, orders, closed, closed_in_limit, first_contact, transferred,
      valid_flow, delayed, delay_ms, handling_ms, promised_ok)
  VALUES ((o.received_at AT TIME ZONE INTERVAL '+08:00')::date, coalesce(o.region, ''),
      coalesce(o.channel, ''), coalesce(o.business_type, ''), coalesce(o.tier, ''),
      coalesce(o.kind, ''), coalesce(o.stream, ''), coalesce(o.customer_level, ''),
      coalesce(o.unit_id, ''),
      sign,
      sign * is_closed::int,
      sign * in_limit::int,
      sign * (in_limit AND o.moves = 0)::int,
      sign * (in_limit AND o.moves > 0)::int,
      sign * (o.misroutes = 0 AND o.breached_at IS NULL)::int,
      sign * is_delayed::int,
      CASE WHEN is_delayed THEN sign * (extract(epoch FROM o.closed_at - o.breach_due) * 1000)::bigint ELSE 0 END,
      CASE WHEN is_closed THEN sign * (extract(epoch FROM o.closed_at - o.received_at) * 1000)::bigint ELSE 0 END,
      sign * (is_closed AND o.promised_by IS NOT NULL AND o.closed_at <= o.promised_by)::int)
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
      promised_ok = d.promised_ok + EXCLUDED.promised_ok;
END $$;

CREATE OR REPLACE FUNCTION analytics.orders_rollup() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF OLD IS NOT DISTINCT FROM NEW THEN
      RETURN NULL;
    END IF;
    PERFORM analytics.daily_add(OLD, -1);
  END IF;
  PERFORM analytics.daily_add(NEW, 1);
  RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS orders_rollup ON analytics.orders;
CREATE TRIGGER orders_rollup AFTER INSERT OR UPDATE ON analytics.orders
  FOR EACH ROW EXECUTE FUNCTION analytics.orders_rollup();

-- Facts that existed before the rollup: count them once.
DO $$
DECLARE r analytics.orders;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM analytics.daily) THEN
    FOR r IN SELECT * FROM analytics.orders LOOP
      PERFORM analytics.daily_add(r, 1);
    END LOOP;
  END IF;
END $$;
