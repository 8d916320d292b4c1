-- Issue 4, last R-29 rules: installation (problem type installation /
-- installation_no_network), the urban 21:00 cutoff (policy step 'cutoff'),
-- appointments and rain/snow postponements (kept in sla.recommits).

-- A new limit unit 'day_end': until the end of the N-th local day (1 = the
-- same day), for "installation the same day where the network is in place".
ALTER TABLE sla.policies DROP CONSTRAINT IF EXISTS policies_unit_check;
ALTER TABLE sla.policies ADD CONSTRAINT policies_unit_check
  CHECK (unit IN ('clock_hours', 'business_hours', 'working_days', 'day_end'));

-- What kind of work a repair is: '' (a fault), 'install' (the network is in
-- place) or 'install_no_network' (from WorkOrderCreated.problem_type).
ALTER TABLE sla.orders ADD COLUMN IF NOT EXISTS work text NOT NULL DEFAULT '';

-- Why a deadline moved: kind 'recommit', 'reclassify', 'appointment' (R-29:
-- the time agreed with the customer replaces the arrival limit) or
-- 'postpone' (R-29: rain/snow moves the job to the next day; reason rain|snow).
-- customer_caused exists since 004.

-- R-29 appointment: the time agreed with the customer replaces the arrival
-- limit. The arrive step's deadline becomes the appointment (warning at 90 %
-- of the span from acceptance to it, escalations at 150 % / 200 %, like a
-- re-commit); the fix step, when it would end before appointment + its own
-- limit, moves there too (the fix is counted from the agreed arrival: a
-- shift kept in paused_ms, which a later reclassify adds again). The
-- old dues stay in sla.recommits (kind 'appointment') and original_due_at.
-- Returns one row per moved step; status as sla.recommit ('not_found' when
-- the order has no arrive timer, 'conflict' when it is closed or overdue).
CREATE OR REPLACE FUNCTION sla.appointment(p_order_no text, p_appt_ms bigint, p_actor text,
                                           p_at_ms bigint)
RETURNS TABLE (step text, status text, warn_ms bigint, due_ms bigint, esc1_ms bigint,
               esc2_ms bigint, limit_s bigint)
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  f sla.timers%ROWTYPE;
  fix_due bigint;
  d interval;
BEGIN
  SELECT * INTO r FROM sla.recommit(p_order_no, 'arrive', p_appt_ms, 'appointment', p_actor,
                                    p_at_ms);
  IF r.status = 'ok' THEN
    UPDATE sla.recommits SET kind = 'appointment'
     WHERE id = (SELECT max(id) FROM sla.recommits WHERE order_no = p_order_no
                    AND sla.recommits.step = 'arrive');
  END IF;
  RETURN QUERY SELECT 'arrive'::text, r.status, r.warn_ms, r.due_ms, r.esc1_ms, r.esc2_ms,
                      r.limit_s;
  IF r.status <> 'ok' THEN
    RETURN;
  END IF;
  SELECT * INTO f FROM sla.timers t WHERE t.order_no = p_order_no AND t.step = 'fix'
     AND t.closed_at IS NULL AND t.breached_at IS NULL;
  IF f.order_no IS NULL THEN
    RETURN;
  END IF;
  -- the fix step's own limit (the policy's, not one a re-commit stretched)
  fix_due := p_appt_ms + (extract(epoch from coalesce(f.original_due_at, f.due_at) - f.started_at)
                          * 1000)::bigint;
  IF fix_due <= (extract(epoch from f.due_at) * 1000)::bigint THEN
    RETURN;
  END IF;
  -- a shift like a pause (paused_ms), so a large fault found later is
  -- counted from the agreed arrival too
  d := (fix_due - (extract(epoch from f.due_at) * 1000)::bigint) * interval '1 ms';
  INSERT INTO sla.recommits (order_no, step, old_due_at, new_due_at, reason, actor, at, kind)
  VALUES (p_order_no, 'fix', f.due_at, f.due_at + d, 'appointment', p_actor,
          to_timestamp(p_at_ms / 1000.0), 'appointment');
  UPDATE sla.timers t SET original_due_at = coalesce(t.original_due_at, t.due_at),
         paused_ms = t.paused_ms + (extract(epoch from d) * 1000)::bigint,
         warn_at = t.warn_at + d, due_at = t.due_at + d,
         escalate1_at = t.escalate1_at + d, escalate2_at = t.escalate2_at + d
   WHERE t.order_no = p_order_no AND t.step = 'fix' RETURNING * INTO f;
  RETURN QUERY SELECT 'fix'::text, 'ok'::text, (extract(epoch from f.warn_at) * 1000)::bigint,
                      (extract(epoch from f.due_at) * 1000)::bigint,
                      (extract(epoch from f.escalate1_at) * 1000)::bigint,
                      (extract(epoch from f.escalate2_at) * 1000)::bigint, f.limit_seconds;
END $$;

-- R-29 weather: rain or snow moves the job to the next day. Every open step
-- of the repair not yet overdue (answer, arrive, fix) keeps its time of day
-- one day later: warn, due and escalations + 24 h (and paused_ms). Each move is a row in
-- sla.recommits (kind 'postpone', reason rain|snow). Status 'not_found' (no
-- such order), 'invalid' (not a repair), 'conflict' (nothing left to move).
CREATE OR REPLACE FUNCTION sla.postpone(p_order_no text, p_reason text, p_actor text,
                                        p_at_ms bigint)
RETURNS TABLE (status text, moved int)
LANGUAGE plpgsql AS $$
DECLARE
  o sla.orders%ROWTYPE;
  at timestamptz := to_timestamp(p_at_ms / 1000.0);
  n int;
BEGIN
  SELECT * INTO o FROM sla.orders WHERE order_no = p_order_no;
  IF o.order_no IS NULL THEN
    RETURN QUERY SELECT 'not_found'::text, 0;
    RETURN;
  END IF;
  IF o.kind <> 'repair' THEN
    RETURN QUERY SELECT 'invalid'::text, 0;
    RETURN;
  END IF;
  INSERT INTO sla.recommits (order_no, step, old_due_at, new_due_at, reason, actor, at, kind)
  SELECT t.order_no, t.step, t.due_at, t.due_at + interval '1 day', p_reason, p_actor, at,
         'postpone'
    FROM sla.timers t
   WHERE t.order_no = p_order_no AND t.closed_at IS NULL AND t.breached_at IS NULL
     AND t.step IN ('answer', 'arrive', 'fix');
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n = 0 THEN
    RETURN QUERY SELECT 'conflict'::text, 0;
    RETURN;
  END IF;
  -- counted like a pause of one day, so a later reclassify (large fault,
  -- re-tier) recomputes from the start under the new limit plus this day
  UPDATE sla.timers t SET original_due_at = coalesce(t.original_due_at, t.due_at),
         paused_ms = t.paused_ms + 86400000,
         warn_at = t.warn_at + interval '1 day', due_at = t.due_at + interval '1 day',
         escalate1_at = t.escalate1_at + interval '1 day',
         escalate2_at = t.escalate2_at + interval '1 day'
   WHERE t.order_no = p_order_no AND t.closed_at IS NULL AND t.breached_at IS NULL
     AND t.step IN ('answer', 'arrive', 'fix');
  RETURN QUERY SELECT 'ok'::text, n;
END $$;
