-- handler: the workflow (SPEC §5) as the office sees it. The router owns the
-- state machine; the handler keeps the workflow state and the history rows its
-- actions produced (from the router's ActionResult), every action's fields
-- until it is answered, and marks orders the router moved to another unit.

ALTER TABLE handler.orders DROP CONSTRAINT IF EXISTS orders_state_check;
ALTER TABLE handler.orders ADD CONSTRAINT orders_state_check
  CHECK (state IN ('open', 'closed', 'moved'));
ALTER TABLE handler.orders ADD COLUMN IF NOT EXISTS wf_state text;

ALTER TABLE handler.pending_actions
  ADD COLUMN IF NOT EXISTS actor_unit text NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS params jsonb NOT NULL DEFAULT '{}';

CREATE TABLE IF NOT EXISTS handler.order_history (
  order_no   text NOT NULL,
  seq        int NOT NULL,
  action     text NOT NULL,
  actor      text NOT NULL DEFAULT '',
  actor_unit text NOT NULL DEFAULT '',
  at         timestamptz NOT NULL,
  reason     text,
  from_unit  text,
  to_unit    text,
  answer     text,
  from_state text,
  to_state   text,
  PRIMARY KEY (order_no, seq)
);

REVOKE DELETE, TRUNCATE ON handler.order_history FROM kesu_handler;
