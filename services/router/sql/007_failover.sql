-- router (issue 3, failover): an order a handler acknowledged stays with that
-- handler until it is gone (no heartbeat for 3 s, or not back within 3 s of a
-- router start); then its open orders are dispatched again to another handler
-- serving their unit, and the ack of that LATEST dispatch moves the order's
-- handler_id. WorkOrderDispatched is still emitted once per order (only on
-- created -> dispatched); a re-dispatch after a failover emits nothing.
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
  IF NOT FOUND THEN
    -- an open order re-dispatched after its handler was gone: the handler
    -- that acknowledged the latest dispatch holds it from now on
    UPDATE router.work_orders w SET handler_id = p_handler_id
     WHERE w.order_no = p_order_no AND w.state = 'dispatched'
       AND w.handler_id IS DISTINCT FROM p_handler_id
       AND p_dispatch_id = (SELECT d.dispatch_id FROM router.dispatches d
                             WHERE d.order_no = p_order_no ORDER BY d.seq DESC LIMIT 1);
    RETURN false;
  END IF;
  PERFORM router.outbox_append(p_event_id, 'WorkOrderDispatched', p_now_ms, p_order_no,
                               p_envelope);
  RETURN true;
END $$;

-- the open orders of one handler (failover), and the handlers holding any
CREATE INDEX IF NOT EXISTS work_orders_held ON router.work_orders (handler_id)
  WHERE state = 'dispatched';
