-- Issue 4: SLA policies and calendars as data (R-25 … R-33), the unit tree
-- for escalation (R-32), supervision records 督办记录 (R-31, R-32) and the
-- assessment ledger 考核台账 (R-37). Reference tables are filled by
-- `kesuctl load` (superuser) and announced with NOTIFY sla_reference.

-- Calendars per organisation/region: business hours and time zone.
CREATE TABLE IF NOT EXISTS sla.calendars (
  id            text PRIMARY KEY,            -- 'cn' = the national default
  tz_offset_min int  NOT NULL DEFAULT 480,   -- Asia/Shanghai, no DST
  open_time     time NOT NULL DEFAULT '09:00',
  close_time    time NOT NULL DEFAULT '17:00'
);
INSERT INTO sla.calendars (id) VALUES ('cn') ON CONFLICT DO NOTHING;

-- Overrides of the Mon–Fri week: holidays and make-up working days 调休.
CREATE TABLE IF NOT EXISTS sla.calendar_days (
  calendar text NOT NULL DEFAULT 'cn',
  day      date NOT NULL,
  kind     text NOT NULL CHECK (kind IN ('holiday', 'workday')),
  name     text NOT NULL DEFAULT '',
  PRIMARY KEY (calendar, day)
);

-- One limit per (kind, stream, tier, level, area, step) pattern; '*' = any,
-- 'a|b' = either. The most specific matching row wins (services/sla/policy.h).
CREATE TABLE IF NOT EXISTS sla.policies (
  id          text PRIMARY KEY,
  ord         int  NOT NULL DEFAULT 0,       -- load order (ties)
  kind        text NOT NULL DEFAULT '*',
  stream      text NOT NULL DEFAULT '*',
  tier        text NOT NULL DEFAULT '*',
  level       text NOT NULL DEFAULT '*',
  area        text NOT NULL DEFAULT '*',
  step        text NOT NULL,
  limit_value numeric NOT NULL CHECK (limit_value > 0),
  unit        text NOT NULL CHECK (unit IN ('clock_hours', 'business_hours', 'working_days')),
  warn_ratio  numeric NOT NULL DEFAULT 0.9 CHECK (warn_ratio > 0 AND warn_ratio <= 1),
  name        text NOT NULL DEFAULT ''
);

-- The unit tree (a copy of data/units.csv: sla cannot read router.units).
CREATE TABLE IF NOT EXISTS sla.units (
  id     text PRIMARY KEY,
  name   text NOT NULL DEFAULT '',
  region text NOT NULL DEFAULT '',           -- for token scopes
  parent text,
  kind   text NOT NULL DEFAULT ''
);

-- Which policy set a timer's limit, and the deadline first promised (R-34:
-- it stays for the KPIs when the deadline moves).
ALTER TABLE sla.timers ADD COLUMN IF NOT EXISTS policy_id text;
ALTER TABLE sla.timers ADD COLUMN IF NOT EXISTS limit_unit text NOT NULL DEFAULT 'clock_hours';
ALTER TABLE sla.timers ADD COLUMN IF NOT EXISTS original_due_at timestamptz;
-- The escalation ladder (R-32): 150 % → one level up, 200 % → the next;
-- escalated = how many rungs have fired (0..2).
ALTER TABLE sla.timers ADD COLUMN IF NOT EXISTS escalate1_at timestamptz;
ALTER TABLE sla.timers ADD COLUMN IF NOT EXISTS escalate2_at timestamptz;
ALTER TABLE sla.timers ADD COLUMN IF NOT EXISTS escalated int NOT NULL DEFAULT 0;
-- Start-up loads every timer with something left to fire.
CREATE INDEX IF NOT EXISTS timers_live ON sla.timers (due_at)
  WHERE closed_at IS NULL AND escalated < 2;

-- Every warning, breach and escalation (R-31, R-32), written in the same
-- transaction as its event. minutes_late < 0: before the deadline (warning).
CREATE TABLE IF NOT EXISTS sla.supervision (
  id           bigserial PRIMARY KEY,
  event_id     uuid NOT NULL UNIQUE,
  order_no     text NOT NULL,
  step         text NOT NULL,
  unit_id      text,
  kind         text NOT NULL CHECK (kind IN ('warning', 'breach', 'escalation')),
  to_unit      text,
  due_at       timestamptz NOT NULL,
  at           timestamptz NOT NULL,
  minutes_late int NOT NULL
);
CREATE INDEX IF NOT EXISTS supervision_unit_at ON sla.supervision (unit_id, at);
CREATE INDEX IF NOT EXISTS supervision_order ON sla.supervision (order_no);

-- Assessment ledger 考核台账 (R-37): one deduction per overdue step against
-- the responsible unit, for the month (local) of the breach. Amounts are data.
CREATE TABLE IF NOT EXISTS sla.ledger_rules (
  id     text PRIMARY KEY,
  step   text NOT NULL DEFAULT '*',
  amount numeric NOT NULL CHECK (amount >= 0)
);
INSERT INTO sla.ledger_rules (id, amount) VALUES ('default', 100) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS sla.ledger (
  order_no text NOT NULL,
  step     text NOT NULL,
  unit_id  text,
  month    date NOT NULL,                    -- first day of the local month
  amount   numeric NOT NULL,
  reason   text NOT NULL,
  at       timestamptz NOT NULL,
  PRIMARY KEY (order_no, step)
);
CREATE INDEX IF NOT EXISTS ledger_unit_month ON sla.ledger (unit_id, month);

-- Hand edits of reference data reload the watcher too.
CREATE OR REPLACE FUNCTION sla.reference_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('sla_reference', '');
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS policies_changed ON sla.policies;
CREATE TRIGGER policies_changed AFTER INSERT OR UPDATE OR DELETE ON sla.policies
  FOR EACH STATEMENT EXECUTE FUNCTION sla.reference_changed();
DROP TRIGGER IF EXISTS calendar_days_changed ON sla.calendar_days;
CREATE TRIGGER calendar_days_changed AFTER INSERT OR UPDATE OR DELETE ON sla.calendar_days
  FOR EACH STATEMENT EXECUTE FUNCTION sla.reference_changed();
DROP TRIGGER IF EXISTS units_changed ON sla.units;
CREATE TRIGGER units_changed AFTER INSERT OR UPDATE OR DELETE ON sla.units
  FOR EACH STATEMENT EXECUTE FUNCTION sla.reference_changed();

-- sla.fire, now also writing the supervision record (and for a breach the
-- ledger deduction) in the caller's transaction. p_kind 'escalation' fires
-- rung p_level (1 or 2) of the ladder once, to p_to_unit; with no unit above
-- (p_to_unit = '') the rung is passed without a record or event.
DROP FUNCTION IF EXISTS sla.fire(text, text, text, uuid, bigint, bytea);
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
     WHERE order_no = p_order_no AND step = p_step AND warned_at IS NULL AND closed_at IS NULL
       AND warn_at <= at  -- a re-commit may have moved it
    RETURNING * INTO t;
  ELSIF p_kind = 'breach' THEN
    UPDATE sla.timers SET breached_at = at
     WHERE order_no = p_order_no AND step = p_step AND breached_at IS NULL AND closed_at IS NULL
       AND due_at <= at
    RETURNING * INTO t;
  ELSIF p_kind = 'escalation' THEN
    UPDATE sla.timers SET escalated = p_level
     WHERE order_no = p_order_no AND step = p_step AND escalated = p_level - 1
       AND breached_at IS NOT NULL AND closed_at IS NULL
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
