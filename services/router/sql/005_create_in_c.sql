-- router: the creation path decided in C (services/router/orders.c, units.c).
--
-- The holder and dispatcher units (R-05 home-region centre, R-13 tier, R-18,
-- R-20 escalated/appeal: HQ dispatches, the home province centre holds;
-- unknown problem type → the business-owner department of the line) are
-- computed by the router from its in-memory unit tree, and the first history
-- step is written by router.create_order_v3 in the same transaction: the
-- per-row triggers work_orders_wf_init (router.centre_of, a recursive query
-- per order) and work_orders_first_step are gone. An order answered on the
-- spot (R-08) is created closed, its answer recorded, with WorkOrderClosed.
DROP TRIGGER IF EXISTS work_orders_wf_init ON router.work_orders;
DROP TRIGGER IF EXISTS work_orders_first_step ON router.work_orders;

ALTER TABLE router.work_orders
  ADD COLUMN IF NOT EXISTS vip boolean NOT NULL DEFAULT false,
  ADD COLUMN IF NOT EXISTS area text NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS customer_level text NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS problem_type text NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS home_region text NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS arrived_at timestamptz;

CREATE OR REPLACE FUNCTION router.create_order_v3(
    p_order_no text, p_unit_id text, p_region text, p_kind text, p_stream text, p_tier text,
    p_channel text, p_business_type text, p_accepted_ms bigint, p_promised_ms bigint,
    p_complaint bytea, p_event_id uuid, p_now_ms bigint, p_envelope bytea,
    p_phone text, p_priority int,
    p_dispatcher text, p_wf_state text, p_vip boolean, p_area text, p_level text,
    p_problem text, p_home text,
    p_step_action text, p_step_actor text, p_step_actor_unit text, p_step_from_unit text,
    p_step_at_ms bigint, p_step_answer text, p_step_details jsonb,
    p_closed_event_id uuid, p_closed_envelope bytea)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  v_open text;
  v_closed boolean := p_wf_state IN ('closed', 'archived');
BEGIN
  IF EXISTS (SELECT 1 FROM router.work_orders WHERE order_no = p_order_no) THEN
    RETURN false;
  END IF;
  IF coalesce(p_phone, '') <> '' THEN
    SELECT w.order_no INTO v_open FROM router.work_orders w
     WHERE w.customer_phone = p_phone AND w.business_type = p_business_type
       AND w.wf_state NOT IN ('closed', 'archived') AND w.customer_phone IS NOT NULL
     ORDER BY (w.repeat_of IS NULL) DESC, w.created_at, w.order_no LIMIT 1;
  END IF;
  INSERT INTO router.work_orders (order_no, unit_id, region, kind, stream, tier, channel,
      business_type, accepted_at, promised_by, state, complaint, created_at, customer_phone,
      priority, repeat_of, holder_unit, dispatcher_unit, wf_state, vip, area, customer_level,
      problem_type, home_region, closed_at, answer)
  VALUES (p_order_no, p_unit_id, p_region, p_kind, p_stream, p_tier, p_channel, p_business_type,
      router.ms_ts(p_accepted_ms), router.ms_ts(p_promised_ms),
      CASE WHEN v_closed THEN 'closed' ELSE 'created' END, p_complaint,
      router.ms_ts(p_now_ms), NULLIF(p_phone, ''), coalesce(p_priority, 0), v_open, p_unit_id,
      p_dispatcher, p_wf_state, coalesce(p_vip, false), coalesce(p_area, ''),
      coalesce(p_level, ''), coalesce(p_problem, ''), coalesce(p_home, ''),
      CASE WHEN v_closed THEN router.ms_ts(p_step_at_ms) END,
      CASE WHEN v_closed THEN p_step_answer END)
  ON CONFLICT (order_no) DO NOTHING;
  IF NOT FOUND THEN RETURN false; END IF;
  IF v_open IS NOT NULL THEN
    UPDATE router.work_orders SET repeat_count = repeat_count + 1 WHERE order_no = v_open;
  END IF;
  INSERT INTO router.order_history (order_no, seq, action, actor, actor_unit, at, from_unit,
                                    to_unit, answer, from_state, to_state, details)
  VALUES (p_order_no, 1, p_step_action, p_step_actor, p_step_actor_unit,
          router.ms_ts(p_step_at_ms), p_step_from_unit, p_unit_id, p_step_answer, 'accepted',
          p_wf_state, coalesce(p_step_details, '{}'));
  PERFORM router.outbox_append(p_event_id, 'WorkOrderCreated', p_now_ms, p_order_no, p_envelope);
  IF p_closed_envelope IS NOT NULL THEN
    PERFORM router.outbox_append(p_closed_event_id, 'WorkOrderClosed', p_now_ms, p_order_no,
                                 p_closed_envelope);
  END IF;
  RETURN true;
END $$;
