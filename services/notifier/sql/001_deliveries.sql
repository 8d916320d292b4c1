-- Notifications (R-38..R-41): one row per (event, recipient, channel) —
-- delivery_key "<event_id>:customer:sms" is unique, so an event delivered
-- twice is still sent once. Failures retry with back-off and end as 'dead'
-- (the visible dead-letter list); 4xx answers are 'failed' at once.
CREATE TABLE IF NOT EXISTS notify.deliveries (
  id              bigserial PRIMARY KEY,
  delivery_key    text NOT NULL UNIQUE,
  order_no        text,
  region          text,
  event_type      text NOT NULL,
  recipient       text NOT NULL,
  channel         text NOT NULL DEFAULT 'sms',
  body            text NOT NULL,
  status          text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'sent', 'failed', 'dead', 'no_gateway')),
  attempts        int NOT NULL DEFAULT 0,
  created_at      timestamptz NOT NULL DEFAULT now(),
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  sent_at         timestamptz,
  last_error      text
);
-- The sender's pick: pending rows in id order.
CREATE INDEX IF NOT EXISTS deliveries_pending ON notify.deliveries (id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_order ON notify.deliveries (order_no);
CREATE INDEX IF NOT EXISTS deliveries_status ON notify.deliveries (status, id);
