-- handler: the regional office's copy of its queue and the actions its staff
-- took that the router has not yet answered (ARCHITECTURE §4). Both survive a
-- restart and a broken link to the centre.

CREATE OR REPLACE FUNCTION handler.ms_ts(p_ms bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$ SELECT CASE WHEN p_ms > 0 THEN to_timestamp(p_ms / 1000.0) END $$;
CREATE OR REPLACE FUNCTION handler.ts_ms(p_ts timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT (extract(epoch FROM p_ts) * 1000)::bigint $$;

CREATE TABLE IF NOT EXISTS handler.orders (
  order_no    text PRIMARY KEY,
  unit_id     text NOT NULL,
  region      text NOT NULL,
  dispatch_id uuid,
  received_at timestamptz NOT NULL,
  due_at      timestamptz,
  complaint   jsonb NOT NULL,     -- what the workbench shows (customer, title, content, ...)
  state       text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
  closed_at   timestamptz,
  answer      text
);
CREATE INDEX IF NOT EXISTS orders_open_due ON handler.orders (due_at) WHERE state = 'open';

CREATE TABLE IF NOT EXISTS handler.pending_actions (
  action_id      uuid PRIMARY KEY,
  order_no       text NOT NULL,
  action         text NOT NULL,
  answer         text,
  actor          text NOT NULL,
  created_at     timestamptz NOT NULL,
  sent_at        timestamptz,
  result_ok      boolean,
  result_code    text,
  result_message text,
  done_at        timestamptz
);
CREATE INDEX IF NOT EXISTS pending_actions_order_no ON handler.pending_actions (order_no);
CREATE INDEX IF NOT EXISTS pending_actions_open ON handler.pending_actions (created_at)
  WHERE done_at IS NULL;

-- The staff's record of what they did stays (R-48).
REVOKE DELETE, TRUNCATE ON handler.pending_actions FROM kesu_handler;
