-- Issue 5, third round.
-- R-38 "dispatched / transferred / assist requested → SMS/IM for VIP or high
-- priority": the order's R-15 priority (WorkOrderCreated.priority, then
-- WorkOrderStepChanged.priority after each step) for rule conditions
-- "priority>=N"; whether the repair crew has arrived (WorkOrderStepChanged
-- action arrive) for "arrived=true" (a rain/snow postponement of the fix step
-- after arrival); the customer's postal address for letters.
ALTER TABLE notify.orders ADD COLUMN IF NOT EXISTS priority int NOT NULL DEFAULT 0;
ALTER TABLE notify.orders ADD COLUMN IF NOT EXISTS arrived boolean NOT NULL DEFAULT false;
ALTER TABLE notify.orders ADD COLUMN IF NOT EXISTS address text NOT NULL DEFAULT '';
-- The unit a transfer was just told to (WorkOrderStepChanged action transfer):
-- the router's WorkOrderDispatched that follows for that unit is not told again.
ALTER TABLE notify.orders ADD COLUMN IF NOT EXISTS transferred_to text NOT NULL DEFAULT '';
-- R-38 "interim reply, final answer … by letter as chosen at intake": a letter
-- cannot be sent by the system; it is a print task — a delivery of channel
-- 'letter' whose status is 'print' until staff mark it 'printed'
-- (GET /v1/letters, POST /v1/letters/{id}/printed). The sender never picks
-- these rows (it picks 'pending' only).
ALTER TABLE notify.deliveries DROP CONSTRAINT IF EXISTS deliveries_status_check;
ALTER TABLE notify.deliveries ADD CONSTRAINT deliveries_status_check
  CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'dead', 'no_gateway', 'print',
                    'printed'));
ALTER TABLE notify.templates DROP CONSTRAINT IF EXISTS templates_channel_check;
ALTER TABLE notify.templates ADD CONSTRAINT templates_channel_check
  CHECK (channel IN ('sms', 'email', 'im', 'letter'));
ALTER TABLE notify.rules DROP CONSTRAINT IF EXISTS rules_channel_check;
ALTER TABLE notify.rules ADD CONSTRAINT rules_channel_check
  CHECK (channel IN ('sms', 'email', 'im', 'letter'));
CREATE INDEX IF NOT EXISTS deliveries_letters ON notify.deliveries (status, id)
  WHERE channel = 'letter';
