-- router: the unit tree and routing rules (reference data, filled by `kesuctl load`),
-- work orders, their dispatches to regional handlers and the actions taken on them.

CREATE TABLE IF NOT EXISTS router.units (
  id     text PRIMARY KEY,
  name   text NOT NULL,
  region text,
  parent text,
  kind   text
);
CREATE TABLE IF NOT EXISTS router.routing_rules (
  id            serial PRIMARY KEY,
  region_prefix text NOT NULL,
  unit_id       text NOT NULL,
  priority      int NOT NULL DEFAULT 0
);

-- Changes to the rules reach a running router without a restart (kesuctl load
-- also NOTIFYs; this covers edits by hand).
CREATE OR REPLACE FUNCTION router.reference_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('router_reference', ''); RETURN NULL; END $$;
DROP TRIGGER IF EXISTS routing_rules_notify ON router.routing_rules;
CREATE TRIGGER routing_rules_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON router.routing_rules FOR EACH STATEMENT EXECUTE FUNCTION router.reference_notify();

-- Business time comes from the service's clock (Unix ms), never now().
CREATE OR REPLACE FUNCTION router.ms_ts(p_ms bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$ SELECT CASE WHEN p_ms > 0 THEN to_timestamp(p_ms / 1000.0) END $$;
CREATE OR REPLACE FUNCTION router.ts_ms(p_ts timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT (extract(epoch FROM p_ts) * 1000)::bigint $$;

CREATE TABLE IF NOT EXISTS router.work_orders (
  order_no      text PRIMARY KEY,
  unit_id       text NOT NULL,
  region        text NOT NULL,
  kind          text NOT NULL,
  stream        text NOT NULL,
  tier          text NOT NULL,
  channel       text NOT NULL,
  business_type text NOT NULL,
  accepted_at   timestamptz,
  promised_by   timestamptz,
  state         text NOT NULL DEFAULT 'created' CHECK (state IN ('created', 'dispatched', 'closed')),
  handler_id    text,
  complaint     bytea NOT NULL,                 -- packed kesu.v1.Complaint
  created_at    timestamptz NOT NULL,
  closed_at     timestamptz,
  answer        text
);
-- Start-up reloads every order not yet acknowledged by a handler.
CREATE INDEX IF NOT EXISTS work_orders_created ON router.work_orders (accepted_at)
  WHERE state = 'created';

CREATE TABLE IF NOT EXISTS router.dispatches (
  dispatch_id uuid PRIMARY KEY,
  order_no    text NOT NULL,
  handler_id  text NOT NULL,
  created_at  timestamptz NOT NULL,
  sent_at     timestamptz,
  acked_at    timestamptz
);
CREATE INDEX IF NOT EXISTS dispatches_order_no ON router.dispatches (order_no);

CREATE TABLE IF NOT EXISTS router.actions (
  action_id  text PRIMARY KEY,
  order_no   text NOT NULL,
  action     text NOT NULL,
  actor      text NOT NULL DEFAULT '',
  at         timestamptz,
  ok         boolean,
  code       text NOT NULL DEFAULT '',
  message    text NOT NULL DEFAULT '',
  handler_id text NOT NULL DEFAULT '',
  answer     text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS actions_order_no ON router.actions (order_no);

-- A work order for a received complaint and its WorkOrderCreated event, the
-- event appended only if the order is new: applying the same complaint twice
-- changes nothing and emits nothing. Returns whether the order was created.
CREATE OR REPLACE FUNCTION router.create_order(
    p_order_no text, p_unit_id text, p_region text, p_kind text, p_stream text, p_tier text,
    p_channel text, p_business_type text, p_accepted_ms bigint, p_promised_ms bigint,
    p_complaint bytea, p_event_id uuid, p_now_ms bigint, p_envelope bytea)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO router.work_orders (order_no, unit_id, region, kind, stream, tier, channel,
      business_type, accepted_at, promised_by, state, complaint, created_at)
  VALUES (p_order_no, p_unit_id, p_region, p_kind, p_stream, p_tier, p_channel, p_business_type,
      router.ms_ts(p_accepted_ms), router.ms_ts(p_promised_ms), 'created', p_complaint,
      router.ms_ts(p_now_ms))
  ON CONFLICT (order_no) DO NOTHING;
  IF NOT FOUND THEN RETURN false; END IF;
  PERFORM router.outbox_append(p_event_id, 'WorkOrderCreated', p_now_ms, p_order_no, p_envelope);
  RETURN true;
END $$;

-- A handler acknowledged a dispatch: record it (the dispatch row is created
-- here if its insert has not landed yet), move the order to 'dispatched' and
-- emit WorkOrderDispatched — once per order, whatever the number of dispatches
-- and acks. p_envelope NULL: only record the ack. Returns whether it emitted.
CREATE OR REPLACE FUNCTION router.ack_dispatch(
    p_dispatch_id uuid, p_order_no text, p_handler_id text, p_now_ms bigint, p_event_id uuid,
    p_envelope bytea)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO router.dispatches AS d (dispatch_id, order_no, handler_id, created_at, acked_at)
  VALUES (p_dispatch_id, p_order_no, p_handler_id, router.ms_ts(p_now_ms), router.ms_ts(p_now_ms))
  ON CONFLICT (dispatch_id) DO UPDATE SET acked_at = EXCLUDED.acked_at WHERE d.acked_at IS NULL;
  IF p_envelope IS NULL THEN RETURN false; END IF;
  UPDATE router.work_orders SET state = 'dispatched', handler_id = p_handler_id
   WHERE order_no = p_order_no AND state = 'created';
  IF NOT FOUND THEN RETURN false; END IF;
  PERFORM router.outbox_append(p_event_id, 'WorkOrderDispatched', p_now_ms, p_order_no,
                               p_envelope);
  RETURN true;
END $$;

-- A handler's action, applied once per action_id: a resent action gets the
-- stored result (R-17: an action that does not fit the order is refused and
-- changes nothing but its own record). p_envelope is the WorkOrderClosed
-- event the caller packed for a close it expects to succeed; if the order
-- turns out open but no envelope came, the call raises so that nothing is
-- recorded and the handler's resend is applied properly.
CREATE OR REPLACE FUNCTION router.apply_action(
    p_action_id text, p_order_no text, p_action text, p_actor text, p_answer text,
    p_at_ms bigint, p_handler_id text, p_closed_ms bigint, p_event_id uuid, p_now_ms bigint,
    p_envelope bytea,
    OUT ok boolean, OUT code text, OUT message text, OUT emitted boolean)
LANGUAGE plpgsql AS $$
DECLARE
  st text;
BEGIN
  emitted := false;
  -- Claim the id first: a concurrent duplicate waits here, then reads our result.
  INSERT INTO router.actions (action_id, order_no, action, actor, at, handler_id, answer)
  VALUES (p_action_id, p_order_no, p_action, coalesce(p_actor, ''), router.ms_ts(p_at_ms),
          coalesce(p_handler_id, ''), p_answer)
  ON CONFLICT (action_id) DO NOTHING;
  IF NOT FOUND THEN
    SELECT a.ok, a.code, a.message INTO ok, code, message
      FROM router.actions a WHERE a.action_id = p_action_id;
    RETURN;
  END IF;

  SELECT w.state INTO st FROM router.work_orders w WHERE w.order_no = p_order_no FOR UPDATE;
  IF p_action IS DISTINCT FROM 'close' THEN
    ok := false; code := 'invalid_value'; message := '不支持的操作 (unknown action)';
  ELSIF st IS NULL THEN
    ok := false; code := 'not_found'; message := '工单不存在 (no such order)';
  ELSIF st = 'closed' THEN
    ok := false; code := 'conflict'; message := '工单已结办';
  ELSIF coalesce(p_answer, '') = '' OR char_length(p_answer) > 2000 THEN
    ok := false; code := 'invalid_value'; message := '结办需要答复内容 (answer: 1-2000 characters)';
  ELSIF p_envelope IS NULL THEN
    RAISE EXCEPTION 'order % is %, no WorkOrderClosed event supplied', p_order_no, st
      USING ERRCODE = 'KS503';
  ELSE
    UPDATE router.work_orders
       SET state = 'closed', closed_at = router.ms_ts(p_closed_ms), answer = p_answer
     WHERE order_no = p_order_no;
    PERFORM router.outbox_append(p_event_id, 'WorkOrderClosed', p_now_ms, p_order_no, p_envelope);
    ok := true; code := ''; message := ''; emitted := true;
  END IF;
  UPDATE router.actions SET ok = apply_action.ok, code = apply_action.code,
         message = apply_action.message
   WHERE action_id = p_action_id;
END $$;

-- Work-order history is append-only (R-48; ARCHITECTURE §5).
REVOKE DELETE, TRUNCATE ON router.work_orders, router.actions FROM kesu_router;
