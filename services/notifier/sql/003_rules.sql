-- Notification rules, templates and staff contacts as data (R-38, R-41),
-- loaded by `kesuctl load notify` from data/notify_rules.csv,
-- data/notify_templates.csv and data/notify_contacts.csv (the loader refuses a
-- template with an unknown variable). The notifier reloads on
-- NOTIFY notify_reference.
CREATE TABLE IF NOT EXISTS notify.templates (
  code    text PRIMARY KEY,
  channel text NOT NULL CHECK (channel IN ('sms', 'email', 'im')),
  subject text NOT NULL DEFAULT '',
  body    text NOT NULL
);
-- event_type (+ conditions "key=value;key=value": kind, tier, level, region
-- prefix, problem_type, business_type) → recipient → channel → template.
-- urgent: staff copies ignore business hours.
CREATE TABLE IF NOT EXISTS notify.rules (
  id         serial PRIMARY KEY,
  event_type text NOT NULL,
  conditions text NOT NULL DEFAULT '',
  recipient  text NOT NULL CHECK (recipient IN ('customer', 'handler', 'head', 'supervisor',
                                                'next_level', 'province_cs', 'hq')),
  channel    text NOT NULL CHECK (channel IN ('sms', 'email', 'im')),
  template   text NOT NULL REFERENCES notify.templates (code),
  urgent     boolean NOT NULL DEFAULT false
);
-- Staff addresses: unit '*' = whichever unit the event concerns.
CREATE TABLE IF NOT EXISTS notify.contacts (
  unit_id text NOT NULL,
  role    text NOT NULL,
  channel text NOT NULL CHECK (channel IN ('sms', 'email', 'im')),
  address text NOT NULL,
  PRIMARY KEY (unit_id, role, channel, address)
);
-- What the notifier knows of each open order (from intake's and the router's
-- events), so a later SLA event can name the customer (masked) and the unit.
CREATE TABLE IF NOT EXISTS notify.orders (
  order_no      text PRIMARY KEY,
  phone         text NOT NULL DEFAULT '',
  customer_name text NOT NULL DEFAULT '',
  level         text NOT NULL DEFAULT '',
  title         text NOT NULL DEFAULT '',
  region        text NOT NULL DEFAULT '',
  kind          text NOT NULL DEFAULT '',
  tier          text NOT NULL DEFAULT '',
  business_type text NOT NULL DEFAULT '',
  problem_type  text NOT NULL DEFAULT '',
  unit_id       text NOT NULL DEFAULT '',
  promised_by   bigint NOT NULL DEFAULT 0
);
ALTER TABLE notify.deliveries ADD COLUMN IF NOT EXISTS subject text NOT NULL DEFAULT '';
ALTER TABLE notify.deliveries ADD COLUMN IF NOT EXISTS recipient_kind text NOT NULL DEFAULT 'customer';
CREATE OR REPLACE FUNCTION notify.reference_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('notify_reference', TG_TABLE_NAME);
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS rules_changed ON notify.rules;
CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON notify.rules
  FOR EACH STATEMENT EXECUTE FUNCTION notify.reference_changed();
DROP TRIGGER IF EXISTS templates_changed ON notify.templates;
CREATE TRIGGER templates_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON notify.templates
  FOR EACH STATEMENT EXECUTE FUNCTION notify.reference_changed();
DROP TRIGGER IF EXISTS contacts_changed ON notify.contacts;
CREATE TRIGGER contacts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON notify.contacts
  FOR EACH STATEMENT EXECUTE FUNCTION notify.reference_changed();
