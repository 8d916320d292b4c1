-- Exactly one send per delivery even when the notifier dies mid-send (R-40):
-- the sender marks a row 'sending' (attempts already counting this attempt,
-- attempt_started_at set) in the database BEFORE the request goes out, and
-- writes the outcome after. A row found 'sending' at start-up was in flight
-- when the notifier died: it goes back to 'pending' and is sent again with the
-- same Idempotency-Key (delivery_key), which the provider dedupes.
ALTER TABLE notify.deliveries DROP CONSTRAINT IF EXISTS deliveries_status_check;
ALTER TABLE notify.deliveries ADD CONSTRAINT deliveries_status_check
  CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'dead', 'no_gateway'));
ALTER TABLE notify.deliveries ADD COLUMN IF NOT EXISTS attempt_started_at timestamptz;
CREATE INDEX IF NOT EXISTS deliveries_sending ON notify.deliveries (id) WHERE status = 'sending';
