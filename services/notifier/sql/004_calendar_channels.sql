-- Staff business hours that know holidays (R-33, R-39): the working-day
-- calendar and the business hours per region — ONE definition shared with the
-- SLA-watcher (docs/internals.md "Calendars and business hours"), filled by
-- `kesuctl load calendar` (superuser, replaced as a whole). A region uses the
-- business_hours row of the longest matching region_prefix ('*' = everywhere,
-- calendar 'cn'); a calendar other than 'cn' is the national one plus its own
-- rows. A day works if Mon-Fri and not a holiday, or a 'workday' (调休).
-- Empty tables: KESU_NOTIFY_BUSINESS_HOURS on Mon-Fri.
CREATE TABLE IF NOT EXISTS notify.calendar_days (
  calendar_id text NOT NULL DEFAULT 'cn',
  day         date NOT NULL,
  kind        text NOT NULL CHECK (kind IN ('holiday', 'workday')),
  name        text NOT NULL DEFAULT '',
  PRIMARY KEY (calendar_id, day)
);
CREATE TABLE IF NOT EXISTS notify.business_hours (
  calendar_id   text NOT NULL DEFAULT 'cn',
  region_prefix text NOT NULL DEFAULT '',
  open          time NOT NULL,
  close         time NOT NULL,
  PRIMARY KEY (region_prefix)
);
DROP TRIGGER IF EXISTS calendar_days_changed ON notify.calendar_days;
CREATE TRIGGER calendar_days_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON notify.calendar_days FOR EACH STATEMENT EXECUTE FUNCTION notify.reference_changed();
DROP TRIGGER IF EXISTS business_hours_changed ON notify.business_hours;
CREATE TRIGGER business_hours_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON notify.business_hours FOR EACH STATEMENT EXECUTE FUNCTION notify.reference_changed();

-- Unit names for templates ({unit_name}, R-41) and unit regions (R-24: the
-- province dept / HQ centre covering an order), from data/units.csv by
-- `kesuctl load notify`.
CREATE TABLE IF NOT EXISTS notify.units (
  id     text PRIMARY KEY,
  name   text NOT NULL,
  region text NOT NULL DEFAULT ''
);
DROP TRIGGER IF EXISTS units_changed ON notify.units;
CREATE TRIGGER units_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON notify.units
  FOR EACH STATEMENT EXECUTE FUNCTION notify.reference_changed();

-- The customer's e-mail and channel as chosen at intake (R-38) and the
-- major-problem flag (R-24) of an open order.
ALTER TABLE notify.orders ADD COLUMN IF NOT EXISTS email text NOT NULL DEFAULT '';
ALTER TABLE notify.orders ADD COLUMN IF NOT EXISTS reply_channel text NOT NULL DEFAULT '';
ALTER TABLE notify.orders ADD COLUMN IF NOT EXISTS major boolean NOT NULL DEFAULT false;
-- R-39 "unless the order is urgent": Complaint.urgency (迫切性) or a major problem.
ALTER TABLE notify.orders ADD COLUMN IF NOT EXISTS urgent boolean NOT NULL DEFAULT false;

-- Callback due (R-38, R-26 "callback within 7 days of closing"): one task per
-- closed order for the callback team, GET /v1/callbacks?unit=&due=.
CREATE TABLE IF NOT EXISTS notify.callbacks (
  order_no      text PRIMARY KEY,
  unit_id       text NOT NULL DEFAULT '',
  region        text NOT NULL DEFAULT '',
  title         text NOT NULL DEFAULT '',
  customer_name text NOT NULL DEFAULT '',
  phone         text NOT NULL DEFAULT '',
  closed_at     timestamptz NOT NULL,
  due_at        timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS callbacks_unit_due ON notify.callbacks (unit_id, due_at);

-- Complaint-recorded digest (R-38: unit head, e-mail digest): each recorded
-- order waits here until the unit's digest of the next business-day opening
-- takes it (digest_day set in the same transaction as the digest deliveries).
CREATE TABLE IF NOT EXISTS notify.digest_items (
  order_no    text PRIMARY KEY,
  unit_id     text NOT NULL,
  region      text NOT NULL DEFAULT '',
  title       text NOT NULL DEFAULT '',
  recorded_at timestamptz NOT NULL,
  digest_day  date
);
CREATE INDEX IF NOT EXISTS digest_items_open ON notify.digest_items (unit_id) WHERE digest_day IS NULL;
-- One digest per unit and business day.
CREATE TABLE IF NOT EXISTS notify.digests (
  unit_id text NOT NULL,
  day     date NOT NULL,
  PRIMARY KEY (unit_id, day)
);
