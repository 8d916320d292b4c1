-- Routing rules on every dimension (issue 3): besides the region prefix, a rule
-- may name a business line, business type, problem type, channel and customer
-- level; '' = any. The most specific matching rule wins (docs/internals.md
-- "Routing rules"). note: free text from the CSV (e.g. a Chinese description).
ALTER TABLE router.routing_rules
  ADD COLUMN IF NOT EXISTS business_line  text NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS business_type  text NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS problem_type   text NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS channel        text NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS customer_level text NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS note           text NOT NULL DEFAULT '';
