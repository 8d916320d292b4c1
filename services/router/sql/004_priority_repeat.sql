-- router: priority (R-15) and repeat contacts (R-02).
--
-- priority: a data-free rule until intake takes a priority field — VIP/3G
-- customers first (10), then the tier: national 3 > provincial 2 > general 1.
-- Queues (the dispatcher's and the handler's) order by priority, then due time.
--
-- repeat_of: a complaint from the same customer phone about the same business
-- type while an earlier order is still open is linked to that order (the
-- first open one that is not itself a repeat) and flagged; the open order
-- counts its repeats in repeat_count.
ALTER TABLE router.work_orders
  ADD COLUMN IF NOT EXISTS customer_phone text,
  ADD COLUMN IF NOT EXISTS priority int NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS repeat_of text,
  ADD COLUMN IF NOT EXISTS repeat_count int NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS work_orders_open_customer ON router.work_orders
  (customer_phone, business_type, created_at)
  WHERE wf_state NOT IN ('closed', 'archived') AND customer_phone IS NOT NULL;

CREATE OR REPLACE FUNCTION router.create_order_v2(
    p_order_no text, p_unit_id text, p_region text, p_kind text, p_stream text, p_tier text,
    p_channel text, p_business_type text, p_accepted_ms bigint, p_promised_ms bigint,
    p_complaint bytea, p_event_id uuid, p_now_ms bigint, p_envelope bytea,
    p_phone text, p_priority int)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  v_open text;
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
      priority, repeat_of)
  VALUES (p_order_no, p_unit_id, p_region, p_kind, p_stream, p_tier, p_channel, p_business_type,
      router.ms_ts(p_accepted_ms), router.ms_ts(p_promised_ms), 'created', p_complaint,
      router.ms_ts(p_now_ms), NULLIF(p_phone, ''), coalesce(p_priority, 0), v_open)
  ON CONFLICT (order_no) DO NOTHING;
  IF NOT FOUND THEN RETURN false; END IF;
  IF v_open IS NOT NULL THEN
    UPDATE router.work_orders SET repeat_count = repeat_count + 1 WHERE order_no = v_open;
  END IF;
  PERFORM router.outbox_append(p_event_id, 'WorkOrderCreated', p_now_ms, p_order_no, p_envelope);
  RETURN true;
END $$;
