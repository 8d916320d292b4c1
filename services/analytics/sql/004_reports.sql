-- Reports (issue 6, R-43 per step, R-46, R-47): what the problem/hot-issue
-- reports, the per-step delay and the supervision ledger need, kept by
-- analytics from the event streams (its own copy; never the sla schema).
ALTER TABLE analytics.orders
  ADD COLUMN IF NOT EXISTS problem_type text,
  ADD COLUMN IF NOT EXISTS title        text;
CREATE INDEX IF NOT EXISTS orders_received ON analytics.orders (received_at);

-- Supervision records: every SlaWarning / SlaBreached / SlaEscalated, once
-- (keyed by the producer's sequence, so a replay adds nothing).
CREATE TABLE IF NOT EXISTS analytics.supervision (
  producer   text NOT NULL,
  seq        bigint NOT NULL,
  order_no   text NOT NULL,
  event      text NOT NULL,          -- warning | breached | escalated
  step       text NOT NULL DEFAULT '',
  unit       text NOT NULL DEFAULT '', -- the unit responsible for the step (escalated: from_unit)
  to_unit    text NOT NULL DEFAULT '', -- escalated: the unit it went to
  region     text NOT NULL DEFAULT '',
  at         timestamptz NOT NULL,
  started_at timestamptz,
  due_at     timestamptz,
  PRIMARY KEY (producer, seq)
);
CREATE INDEX IF NOT EXISTS supervision_at ON analytics.supervision (at);
CREATE INDEX IF NOT EXISTS supervision_order ON analytics.supervision (order_no);

-- State changes of the router's workflow (from ≠ to): where a breached step ended.
CREATE TABLE IF NOT EXISTS analytics.step_log (
  producer   text NOT NULL,
  seq        bigint NOT NULL,
  order_no   text NOT NULL,
  at         timestamptz NOT NULL,
  action     text NOT NULL DEFAULT '',
  from_state text NOT NULL DEFAULT '',
  to_state   text NOT NULL DEFAULT '',
  PRIMARY KEY (producer, seq)
);
CREATE INDEX IF NOT EXISTS step_log_order ON analytics.step_log (order_no, at);
