-- Issue 4, third part: calendars per region (R-33) with one definition of
-- business hours shared with the notifier (docs/internals.md "Calendars and
-- business hours"), the repair area urban/rural (R-29) and re-tier /
-- customer-level changes (R-35).

-- One row per region prefix of data/business_hours.csv ('*' = the national
-- default): which calendar (the national 'cn' days plus the calendar's own)
-- and which business hours. The most specific prefix wins.
CREATE TABLE IF NOT EXISTS sla.calendar_regions (
  region_prefix text PRIMARY KEY,
  calendar_id   text NOT NULL DEFAULT 'cn',
  open_time     time NOT NULL,
  close_time    time NOT NULL CHECK (close_time > open_time)
);
DROP TRIGGER IF EXISTS calendar_regions_changed ON sla.calendar_regions;
CREATE TRIGGER calendar_regions_changed AFTER INSERT OR UPDATE OR DELETE ON sla.calendar_regions
  FOR EACH STATEMENT EXECUTE FUNCTION sla.reference_changed();

-- SPEC names no business hours: 08:30–17:30 (the data's '*' row says so too).
ALTER TABLE sla.calendars ALTER COLUMN open_time SET DEFAULT '08:30';
ALTER TABLE sla.calendars ALTER COLUMN close_time SET DEFAULT '17:30';
UPDATE sla.calendars SET open_time = '08:30', close_time = '17:30'
 WHERE id = 'cn' AND open_time = '09:00' AND close_time = '17:00';

-- The repair area (WorkOrderCreated.area: urban | rural, '' = urban).
ALTER TABLE sla.orders ADD COLUMN IF NOT EXISTS area text NOT NULL DEFAULT '';

-- Why a deadline moved: 'recommit' (R-34, sla.recommit) or 'reclassify'
-- (R-35: re-tier / customer level / large fault; the old due stays here and
-- in sla.timers.original_due_at).
ALTER TABLE sla.recommits ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'recommit';
-- A repair found to be a large fault (R-29: fixed within 1 day, not 1 h / 12 h).
ALTER TABLE sla.orders ADD COLUMN IF NOT EXISTS large_fault boolean NOT NULL DEFAULT false;
