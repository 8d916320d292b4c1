-- handler: the order staff acted in. seq numbers every recorded action; the
-- handler keeps at most one action per order in flight to the router (the
-- oldest unanswered one) and sends the next only once it is answered, so
-- actions on one order reach the router once each and in seq order even when
-- the link drops messages (issue 3, partition). Rows recorded behind an
-- unanswered one have resend_at NULL until they are first sent.
ALTER TABLE handler.pending_actions ADD COLUMN IF NOT EXISTS seq bigserial;
CREATE INDEX IF NOT EXISTS pending_actions_order_open ON handler.pending_actions (order_no, seq)
  WHERE done_at IS NULL;
CREATE INDEX IF NOT EXISTS pending_actions_done ON handler.pending_actions (done_at)
  WHERE done_at IS NOT NULL AND result_ok = false;
