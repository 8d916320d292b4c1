-- One fact row per work order, filled from intake, router and sla events.
-- Events from different producers arrive in any order, so every event is an
-- upsert that creates the row if missing and fills only what it knows.
CREATE TABLE IF NOT EXISTS analytics.orders (
  order_no      text PRIMARY KEY,
  region        text,
  channel       text,
  business_type text,
  tier          text,
  received_at   timestamptz,
  unit_id       text,
  dispatched_at timestamptz,
  closed_at     timestamptz,
  warned_at     timestamptz,
  breached_at   timestamptz
);
-- KPI summaries filter by region prefix (LIKE '31%').
CREATE INDEX IF NOT EXISTS orders_region ON analytics.orders (region text_pattern_ops);
