-- handler: several handler processes may share this schema (one per handler_id):
-- each resends only its own unanswered actions. Rows from before this
-- migration ('') are resent by any of them.
ALTER TABLE handler.pending_actions ADD COLUMN IF NOT EXISTS handler_id text NOT NULL DEFAULT '';
-- resend_at: real time, only to schedule resends; sent_at (first send) is
-- the service clock's like every time staff see.
ALTER TABLE handler.pending_actions ADD COLUMN IF NOT EXISTS resend_at timestamptz;
UPDATE handler.pending_actions SET resend_at = sent_at WHERE resend_at IS NULL AND done_at IS NULL;
CREATE INDEX IF NOT EXISTS pending_actions_open_handler ON handler.pending_actions (handler_id, created_at)
  WHERE done_at IS NULL;

-- R-15 priority until intake takes one, the router's rule (services/router
-- dispatcher.h order_priority): VIP/3G customers 10 + tier (national 3,
-- provincial 2, general 1). GET /v1/queue sorts by it, then by due time.
CREATE OR REPLACE FUNCTION handler.priority(p_complaint jsonb) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN lower(coalesce(p_complaint->'customer'->>'level', ''))
                   IN ('vip', 'diamond', 'gold', 'silver', '3g') THEN 10 ELSE 0 END
       + CASE p_complaint->>'tier' WHEN 'national' THEN 3 WHEN 'provincial' THEN 2 ELSE 1 END
$$;
