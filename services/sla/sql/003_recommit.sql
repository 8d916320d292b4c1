-- Re-commit 重新承诺 (R-34): a handler that cannot meet a limit records the
-- reason and a new promised time; the step's deadline moves (warning at 90 %
-- and the escalation rungs of the new limit follow it), the original
-- deadline stays in sla.timers.original_due_at and every move in
-- sla.recommits, for the KPIs.
CREATE TABLE IF NOT EXISTS sla.recommits (
  id         bigserial PRIMARY KEY,
  order_no   text NOT NULL,
  step       text NOT NULL,
  old_due_at timestamptz NOT NULL,
  new_due_at timestamptz NOT NULL,
  reason     text NOT NULL,
  actor      text NOT NULL DEFAULT '',
  at         timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS recommits_order ON sla.recommits (order_no, step);

-- status: 'ok', 'not_found', 'conflict' (closed or already overdue: too late
-- to re-commit), 'invalid' (the new time is not in the future).
CREATE OR REPLACE FUNCTION sla.recommit(p_order_no text, p_step text, p_new_due_ms bigint,
                                        p_reason text, p_actor text, p_at_ms bigint)
RETURNS TABLE (status text, warn_ms bigint, due_ms bigint, esc1_ms bigint, esc2_ms bigint,
               limit_s bigint)
LANGUAGE plpgsql AS $$
DECLARE
  t sla.timers%ROWTYPE;
  at timestamptz := to_timestamp(p_at_ms / 1000.0);
  nd timestamptz := to_timestamp(p_new_due_ms / 1000.0);
  lim interval;
BEGIN
  SELECT * INTO t FROM sla.timers WHERE order_no = p_order_no AND step = p_step FOR UPDATE;
  IF t.order_no IS NULL THEN
    RETURN QUERY SELECT 'not_found'::text, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint;
    RETURN;
  END IF;
  IF t.closed_at IS NOT NULL OR t.breached_at IS NOT NULL THEN
    RETURN QUERY SELECT 'conflict'::text, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint;
    RETURN;
  END IF;
  IF nd <= at THEN
    RETURN QUERY SELECT 'invalid'::text, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint;
    RETURN;
  END IF;
  lim := nd - t.started_at;
  INSERT INTO sla.recommits (order_no, step, old_due_at, new_due_at, reason, actor, at)
  VALUES (p_order_no, p_step, t.due_at, nd, p_reason, p_actor, at);
  -- Whole milliseconds: the watcher holds times in ms and fires at >=.
  UPDATE sla.timers SET due_at = nd,
         warn_at = date_trunc('milliseconds', t.started_at + lim * 0.9),
         escalate1_at = date_trunc('milliseconds', t.started_at + lim * 1.5),
         escalate2_at = date_trunc('milliseconds', t.started_at + lim * 2),
         limit_seconds = extract(epoch from lim)::bigint,
         original_due_at = coalesce(t.original_due_at, t.due_at)
   WHERE order_no = p_order_no AND step = p_step
  RETURNING * INTO t;
  RETURN QUERY SELECT 'ok'::text, (extract(epoch from t.warn_at) * 1000)::bigint,
                      (extract(epoch from t.due_at) * 1000)::bigint,
                      (extract(epoch from t.escalate1_at) * 1000)::bigint,
                      (extract(epoch from t.escalate2_at) * 1000)::bigint, t.limit_seconds;
END $$;
