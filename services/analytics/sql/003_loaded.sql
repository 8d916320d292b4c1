-- Loaded data for the KPIs the event streams cannot give (issue 6, R-42 … R-44),
-- written by `kesuctl load customers|calls|agents|analytics_config` from
-- data/analytics_*.csv (the files are the truth: each load replaces a table).
--
-- customers: customers using a business, per region (city code) and customer
-- level/brand — the denominator of 客户投诉率 complaint_rate.
CREATE TABLE IF NOT EXISTS analytics.customers (
  region         text NOT NULL,
  business_type  text NOT NULL,
  customer_level text NOT NULL DEFAULT '',
  customers      bigint NOT NULL CHECK (customers >= 0),
  PRIMARY KEY (region, business_type, customer_level)
);

-- calls: hotline call records (hotline_service_level, agent_call_volume_index).
CREATE TABLE IF NOT EXISTS analytics.calls (
  call_id      text PRIMARY KEY,
  started_at   timestamptz NOT NULL,
  region       text NOT NULL,
  unit         text NOT NULL DEFAULT '',
  agent        text NOT NULL DEFAULT '',   -- '' = not answered by a person
  wants_agent  boolean NOT NULL,           -- the caller asked for a person
  answered     boolean NOT NULL,           -- answered by a person
  wait_seconds int NOT NULL DEFAULT 0 CHECK (wait_seconds >= 0),
  complaint    boolean NOT NULL DEFAULT false  -- the call was a complaint the agent handled
);
CREATE INDEX IF NOT EXISTS calls_started ON analytics.calls (started_at);

-- agent_month: per agent and month, the call target and the QA results
-- (agent_call_volume_index, agent_service_quality_index; S0).
CREATE TABLE IF NOT EXISTS analytics.agent_month (
  month            date NOT NULL,            -- first day of the month
  agent            text NOT NULL,
  name             text NOT NULL DEFAULT '',
  unit             text NOT NULL,
  region           text NOT NULL,
  call_target      int NOT NULL CHECK (call_target > 0),
  monitoring_score numeric NOT NULL,         -- 0 … 1
  test_call_score  numeric NOT NULL,         -- 0 … 1
  complaints       int NOT NULL DEFAULT 0,   -- complaints against the agent
  PRIMARY KEY (month, agent)
);

-- Coefficients and thresholds (complaint_coefficient, hotline_answer_seconds).
CREATE TABLE IF NOT EXISTS analytics.config (
  key         text PRIMARY KEY,
  value       numeric NOT NULL,
  description text NOT NULL DEFAULT ''
);
INSERT INTO analytics.config (key, value, description) VALUES
  ('complaint_coefficient', 0.05, '服务质量指标: 每件投诉扣减系数'),
  ('hotline_answer_seconds', 15, '热线服务水平: 人工接通时限(秒)')
ON CONFLICT (key) DO NOTHING;
