-- Issue 4, second part: timers per workflow step (R-26, R-35), the clock
-- paused while waiting for the customer (R-34), deductions skipped for
-- delays the customer caused (R-37) and the morning due list (R-36).

-- What the policies need to know of an order (from WorkOrderCreated), for
-- the timers of its later steps. done: no step timer can open any more.
CREATE TABLE IF NOT EXISTS sla.orders (
  order_no text PRIMARY KEY,
  kind     text NOT NULL DEFAULT '',
  stream   text NOT NULL DEFAULT '',
  tier     text NOT NULL DEFAULT '',
  level    text NOT NULL DEFAULT '',
  region   text NOT NULL DEFAULT '',
  done     boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS orders_live ON sla.orders (order_no) WHERE NOT done;

-- paused_at: the clock stands still since then (an appointment with the
-- customer); paused_ms: how long it stood in all. customer_caused: a delay
-- the customer caused (flag on re-commit or pause) — no deduction (R-37).
ALTER TABLE sla.timers ADD COLUMN IF NOT EXISTS paused_at timestamptz;
ALTER TABLE sla.timers ADD COLUMN IF NOT EXISTS paused_ms bigint NOT NULL DEFAULT 0;
ALTER TABLE sla.timers ADD COLUMN IF NOT EXISTS customer_caused boolean NOT NULL DEFAULT false;
ALTER TABLE sla.recommits ADD COLUMN IF NOT EXISTS customer_caused boolean NOT NULL DEFAULT false;

-- One row per local day whose DailyDueList went out (at most once).
CREATE TABLE IF NOT EXISTS sla.daily_lists (
  day      date PRIMARY KEY,
  event_id uuid NOT NULL,
  at       timestamptz NOT NULL
);

CREATE OR REPLACE FUNCTION sla.emit_daily(p_day date, p_event_id uuid, p_occurred_ms bigint,
                                          p_envelope bytea)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  hit date;
BEGIN
  INSERT INTO sla.daily_lists (day, event_id, at)
  VALUES (p_day, p_event_id, to_timestamp(p_occurred_ms / 1000.0))
  ON CONFLICT DO NOTHING RETURNING day INTO hit;
  IF hit IS NULL THEN
    RETURN false;
  END IF;
  PERFORM sla.outbox_append(p_event_id, 'DailyDueList', p_occurred_ms, '', p_envelope);
  RETURN true;
END $$;

-- Pause (p_pause) or resume a step's clock. Resuming moves every deadline of
-- the step by the time it stood still. status: 'ok', 'not_found',
-- 'conflict' (closed, already overdue, or already paused / not paused).
CREATE OR REPLACE FUNCTION sla.pause(p_order_no text, p_step text, p_pause boolean, p_at_ms bigint,
                                     p_customer boolean)
RETURNS TABLE (status text, warn_ms bigint, due_ms bigint, esc1_ms bigint, esc2_ms bigint,
               paused boolean)
LANGUAGE plpgsql AS $$
DECLARE
  t sla.timers%ROWTYPE;
  at timestamptz := to_timestamp(p_at_ms / 1000.0);
  d interval;
BEGIN
  SELECT * INTO t FROM sla.timers WHERE order_no = p_order_no AND step = p_step FOR UPDATE;
  IF t.order_no IS NULL THEN
    RETURN QUERY SELECT 'not_found'::text, 0::bigint, 0::bigint, 0::bigint, 0::bigint, false;
    RETURN;
  END IF;
  IF t.closed_at IS NOT NULL OR t.breached_at IS NOT NULL
     OR (p_pause AND t.paused_at IS NOT NULL) OR (NOT p_pause AND t.paused_at IS NULL) THEN
    RETURN QUERY SELECT 'conflict'::text, 0::bigint, 0::bigint, 0::bigint, 0::bigint,
                        t.paused_at IS NOT NULL;
    RETURN;
  END IF;
  IF p_pause THEN
    UPDATE sla.timers SET paused_at = at, customer_caused = customer_caused OR p_customer
     WHERE order_no = p_order_no AND step = p_step RETURNING * INTO t;
  ELSE
    d := greatest(at - t.paused_at, interval '0');
    UPDATE sla.timers SET paused_at = NULL,
           paused_ms = paused_ms + (extract(epoch from d) * 1000)::bigint,
           warn_at = warn_at + d, due_at = due_at + d,
           escalate1_at = escalate1_at + d, escalate2_at = escalate2_at + d
     WHERE order_no = p_order_no AND step = p_step RETURNING * INTO t;
  END IF;
  RETURN QUERY SELECT 'ok'::text, (extract(epoch from t.warn_at) * 1000)::bigint,
                      (extract(epoch from t.due_at) * 1000)::bigint,
                      (extract(epoch from t.escalate1_at) * 1000)::bigint,
                      (extract(epoch from t.escalate2_at) * 1000)::bigint, t.paused_at IS NOT NULL;
END $$;

-- The ledger skips a step whose delay the customer caused (R-37): the
-- breach is recorded and supervised, no deduction is booked.
CREATE OR REPLACE FUNCTION sla.skip_customer_deduction() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM sla.timers t WHERE t.order_no = NEW.order_no AND t.step = NEW.step
                AND t.customer_caused) THEN
    RETURN NULL;
  END IF;
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS ledger_customer_caused ON sla.ledger;
CREATE TRIGGER ledger_customer_caused BEFORE INSERT ON sla.ledger
  FOR EACH ROW EXECUTE FUNCTION sla.skip_customer_deduction();

-- sla.fire as in 002, and nothing fires for a paused step.
CREATE OR REPLACE FUNCTION sla.fire(p_order_no text, p_step text, p_kind text, p_event_id uuid,
                                    p_occurred_ms bigint, p_envelope bytea,
                                    p_to_unit text DEFAULT '', p_level int DEFAULT 0)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  at timestamptz := to_timestamp(p_occurred_ms / 1000.0);
  t sla.timers%ROWTYPE;
  late int;
  amount numeric;
BEGIN
  IF p_kind = 'warning' THEN
    UPDATE sla.timers SET warned_at = at
     WHERE order_no = p_order_no AND step = p_step AND warned_at IS NULL AND closed_at IS NULL AND paused_at IS NULL
       AND warn_at <= at  -- a re-commit may have moved it
    RETURNING * INTO t;
  ELSIF p_kind = 'breach' THEN
    UPDATE sla.timers SET breached_at = at
     WHERE order_no = p_order_no AND step = p_step AND breached_at IS NULL AND closed_at IS NULL AND paused_at IS NULL
       AND due_at <= at
    RETURNING * INTO t;
  ELSIF p_kind = 'escalation' THEN
    UPDATE sla.timers SET escalated = p_level
     WHERE order_no = p_order_no AND step = p_step AND escalated = p_level - 1
       AND breached_at IS NOT NULL AND closed_at IS NULL AND paused_at IS NULL
    RETURNING * INTO t;
    IF t.order_no IS NOT NULL AND coalesce(p_to_unit, '') = '' THEN
      RETURN false;
    END IF;
  ELSE
    RAISE EXCEPTION 'sla.fire: unknown kind %', p_kind;
  END IF;
  IF t.order_no IS NULL THEN
    RETURN false;
  END IF;
  late := floor(extract(epoch from (at - t.due_at)) / 60)::int;
  INSERT INTO sla.supervision (event_id, order_no, step, unit_id, kind, to_unit, due_at, at,
                               minutes_late)
  VALUES (p_event_id, p_order_no, p_step, t.unit_id, p_kind, NULLIF(p_to_unit, ''), t.due_at, at,
          late);
  IF p_kind = 'breach' THEN
    SELECT r.amount INTO amount FROM sla.ledger_rules r
     WHERE (r.step = '*' OR r.step = p_step)
     ORDER BY (r.step <> '*') DESC, r.id LIMIT 1;
    IF amount IS NOT NULL THEN
      INSERT INTO sla.ledger (order_no, step, unit_id, month, amount, reason, at)
      VALUES (p_order_no, p_step, t.unit_id,
              date_trunc('month', at AT TIME ZONE 'Asia/Shanghai')::date, amount, 'overdue', at)
      ON CONFLICT DO NOTHING;
    END IF;
  END IF;
  PERFORM sla.outbox_append(p_event_id,
                            CASE p_kind WHEN 'warning' THEN 'SlaWarning'
                                        WHEN 'breach' THEN 'SlaBreached'
                                        ELSE 'SlaEscalated' END,
                            p_occurred_ms, p_order_no, p_envelope);
  RETURN true;
END $$;
