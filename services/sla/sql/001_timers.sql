-- SLA timers (R-25, R-31, R-32): one row per (order, step). A timer warns at
-- warn_at (90 % of the limit) and breaches at due_at (100 %); warned_at /
-- breached_at record that the event was emitted (each at most once), and a
-- closed timer never emits anything again.
CREATE TABLE IF NOT EXISTS sla.timers (
  order_no      text NOT NULL,
  step          text NOT NULL,              -- step name: 'answer', ...
  unit_id       text,
  region        text,
  started_at    timestamptz NOT NULL,
  warn_at       timestamptz NOT NULL,
  due_at        timestamptz NOT NULL,
  limit_seconds bigint NOT NULL,
  warned_at     timestamptz,
  breached_at   timestamptz,
  closed_at     timestamptz,
  PRIMARY KEY (order_no, step)
);
-- Start-up loads the open timers that still have something to fire.
CREATE INDEX IF NOT EXISTS timers_open ON sla.timers (due_at)
  WHERE closed_at IS NULL AND breached_at IS NULL;

-- Records a warning or breach and appends its event to the outbox, in the
-- caller's transaction — only if it was not recorded before and the timer is
-- not closed. Returns whether it fired. So a fire is at most once even when a
-- transaction is retried after a lost reply, and never for a closed timer.
CREATE OR REPLACE FUNCTION sla.fire(p_order_no text, p_step text, p_kind text, p_event_id uuid,
                                    p_occurred_ms bigint, p_envelope bytea)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  at timestamptz := to_timestamp(p_occurred_ms / 1000.0);
  hit text;
BEGIN
  IF p_kind = 'warning' THEN
    UPDATE sla.timers SET warned_at = at
     WHERE order_no = p_order_no AND step = p_step AND warned_at IS NULL AND closed_at IS NULL
    RETURNING order_no INTO hit;
  ELSIF p_kind = 'breach' THEN
    UPDATE sla.timers SET breached_at = at
     WHERE order_no = p_order_no AND step = p_step AND breached_at IS NULL AND closed_at IS NULL
    RETURNING order_no INTO hit;
  ELSE
    RAISE EXCEPTION 'sla.fire: unknown kind %', p_kind;
  END IF;
  IF hit IS NULL THEN
    RETURN false;
  END IF;
  PERFORM sla.outbox_append(p_event_id,
                            CASE p_kind WHEN 'warning' THEN 'SlaWarning' ELSE 'SlaBreached' END,
                            p_occurred_ms, p_order_no, p_envelope);
  RETURN true;
END $$;
