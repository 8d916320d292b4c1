-- router: the work-order workflow of SPEC §5 (services/router/workflow.h) and
-- the history of every action taken on an order (R-17, R-48).
--
-- `state` stays the dispatch state (created → dispatched → closed; back to
-- created when the order must go to another handler); `wf_state` is the
-- workflow state. An order routed by the rules starts 'dispatched', held by
-- the rule's unit, dispatched by its province centre (R-18: feedback returns
-- there).

ALTER TABLE router.work_orders
  ADD COLUMN IF NOT EXISTS wf_state text NOT NULL DEFAULT 'dispatched',
  ADD COLUMN IF NOT EXISTS wf_version int NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS holder_unit text,
  ADD COLUMN IF NOT EXISTS dispatcher_unit text,
  ADD COLUMN IF NOT EXISTS open_assists int NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS hq_reviewed boolean NOT NULL DEFAULT false,
  ADD COLUMN IF NOT EXISTS called_back boolean NOT NULL DEFAULT false,
  ADD COLUMN IF NOT EXISTS receipt_signed boolean NOT NULL DEFAULT false,
  ADD COLUMN IF NOT EXISTS handling_at_fault boolean NOT NULL DEFAULT false,
  ADD COLUMN IF NOT EXISTS satisfaction int NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS conclusion text,
  ADD COLUMN IF NOT EXISTS responsibility text,
  ADD COLUMN IF NOT EXISTS regulator_opinion text,
  ADD COLUMN IF NOT EXISTS original_promised_by timestamptz;

ALTER TABLE router.work_orders DROP CONSTRAINT IF EXISTS work_orders_wf_state_check;
ALTER TABLE router.work_orders ADD CONSTRAINT work_orders_wf_state_check CHECK (wf_state IN
  ('accepted', 'review', 'dispatched', 'handling', 'feedback', 'answered', 'closed', 'archived'));

-- Orders created before this migration.
UPDATE router.work_orders SET holder_unit = unit_id WHERE holder_unit IS NULL;
UPDATE router.work_orders SET wf_state = 'closed' WHERE state = 'closed' AND wf_state <> 'closed';

-- The province centre (or HQ) above a unit: who dispatched an order routed there.
CREATE OR REPLACE FUNCTION router.centre_of(p_unit text) RETURNS text
LANGUAGE sql STABLE AS $$
  WITH RECURSIVE up(id, parent, kind, depth) AS (
    SELECT id, parent, kind, 0 FROM router.units WHERE id = p_unit
    UNION ALL
    SELECT u.id, u.parent, u.kind, up.depth + 1 FROM router.units u JOIN up ON u.id = up.parent
     WHERE up.depth < 16 AND up.kind NOT IN ('province', 'hq'))
  SELECT coalesce((SELECT id FROM up WHERE kind IN ('province', 'hq') ORDER BY depth LIMIT 1),
                  'hq')
$$;

CREATE OR REPLACE FUNCTION router.work_orders_wf_init() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.holder_unit IS NULL THEN NEW.holder_unit := NEW.unit_id; END IF;
  IF NEW.dispatcher_unit IS NULL THEN NEW.dispatcher_unit := router.centre_of(NEW.unit_id); END IF;
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS work_orders_wf_init ON router.work_orders;
CREATE TRIGGER work_orders_wf_init BEFORE INSERT ON router.work_orders
  FOR EACH ROW EXECUTE FUNCTION router.work_orders_wf_init();

-- The history: one row per step, numbered within the order.
CREATE TABLE IF NOT EXISTS router.order_history (
  order_no   text NOT NULL,
  seq        int NOT NULL,
  action     text NOT NULL,
  actor      text NOT NULL DEFAULT '',
  actor_unit text NOT NULL DEFAULT '',
  at         timestamptz NOT NULL,
  reason     text,
  from_unit  text,
  to_unit    text,
  answer     text,
  from_state text,
  to_state   text,
  action_id  text,
  details    jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (order_no, seq)
);

-- The automatic dispatch by the routing rules is the first step of every order.
CREATE OR REPLACE FUNCTION router.work_orders_first_step() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO router.order_history (order_no, seq, action, actor, actor_unit, at, from_unit,
                                    to_unit, from_state, to_state, details)
  VALUES (NEW.order_no, 1, 'dispatch', 'router', NEW.dispatcher_unit, NEW.created_at,
          NEW.dispatcher_unit, NEW.holder_unit, 'accepted', NEW.wf_state,
          '{"by":"routing_rules"}');
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS work_orders_first_step ON router.work_orders;
CREATE TRIGGER work_orders_first_step AFTER INSERT ON router.work_orders
  FOR EACH ROW EXECUTE FUNCTION router.work_orders_first_step();

-- Writes the new workflow row of an order applied in C (services/router/actions.c).
-- Raises if the order changed since it was read (p_version), so the whole
-- transaction — history rows, events, the action's record — is rolled back.
-- p_redispatch: the order goes to a handler of its (new) holder unit.
CREATE OR REPLACE FUNCTION router.wf_save(
    p_order_no text, p_version int, p_wf_state text, p_holder text, p_dispatcher text,
    p_open_assists int, p_hq_reviewed boolean, p_called_back boolean, p_receipt_signed boolean,
    p_at_fault boolean, p_satisfaction int, p_conclusion text, p_responsibility text,
    p_regulator_opinion text, p_promised_ms bigint, p_original_promised_ms bigint,
    p_redispatch boolean, p_closed_ms bigint, p_answer text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE router.work_orders SET
    wf_state = p_wf_state, wf_version = wf_version + 1, holder_unit = p_holder,
    dispatcher_unit = p_dispatcher, open_assists = p_open_assists, hq_reviewed = p_hq_reviewed,
    called_back = p_called_back, receipt_signed = p_receipt_signed,
    handling_at_fault = p_at_fault, satisfaction = p_satisfaction, conclusion = coalesce(p_conclusion, conclusion),
    responsibility = coalesce(p_responsibility, responsibility),
    regulator_opinion = coalesce(p_regulator_opinion, regulator_opinion),
    promised_by = coalesce(router.ms_ts(p_promised_ms), promised_by),
    original_promised_by = coalesce(router.ms_ts(p_original_promised_ms), original_promised_by),
    state = CASE WHEN p_wf_state IN ('closed', 'archived') THEN 'closed'
                 WHEN p_redispatch THEN 'created' ELSE state END,
    unit_id = CASE WHEN p_redispatch THEN p_holder ELSE unit_id END,
    closed_at = CASE WHEN p_wf_state IN ('closed', 'archived')
                     THEN coalesce(closed_at, router.ms_ts(p_closed_ms)) ELSE NULL END,
    answer = coalesce(p_answer, answer)
  WHERE order_no = p_order_no AND wf_version = p_version;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'order % changed meanwhile', p_order_no USING ERRCODE = 'KS409';
  END IF;
END $$;

-- The history is never deleted (R-48).
REVOKE DELETE, TRUNCATE ON router.work_orders, router.actions, router.order_history,
  router.dispatches FROM kesu_router;

-- ack_dispatch for the unit the dispatch was made for: once the order has
-- moved to another unit (it is 'created' again, for that unit), a late ack of
-- the old dispatch is recorded and moves nothing.
CREATE OR REPLACE FUNCTION router.ack_dispatch_unit(
    p_dispatch_id uuid, p_order_no text, p_handler_id text, p_now_ms bigint, p_event_id uuid,
    p_envelope bytea, p_unit text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF p_envelope IS NOT NULL AND p_unit <> '' AND NOT EXISTS (
      SELECT 1 FROM router.work_orders WHERE order_no = p_order_no AND unit_id = p_unit) THEN
    RETURN router.ack_dispatch(p_dispatch_id, p_order_no, p_handler_id, p_now_ms, NULL, NULL);
  END IF;
  RETURN router.ack_dispatch(p_dispatch_id, p_order_no, p_handler_id, p_now_ms, p_event_id,
                             p_envelope);
END $$;
