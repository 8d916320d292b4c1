-- intake: the rest of R-07 (cause, business line, brand, on-the-spot answer, area,
-- priority factors, recording reference, customer signature, VIP, customer e-mail and
-- reply channel, appeal-only fields) kept in one jsonb column; intake.submit_v2 is
-- intake.submit with it.
ALTER TABLE intake.complaints ADD COLUMN IF NOT EXISTS details jsonb NOT NULL DEFAULT '{}';

CREATE OR REPLACE FUNCTION intake.submit_v2(
    p_key text, p_hash text, p_order_no text, p_kind text, p_stream text, p_channel text,
    p_tier text, p_accepted_ms bigint, p_promised_ms bigint, p_first_receiver text,
    p_name text, p_phone text, p_address text, p_home_region text, p_level text,
    p_region text, p_business text, p_problem text, p_title text, p_content text,
    p_event_id uuid, p_envelope bytea, p_details jsonb,
    OUT order_no text, OUT accepted_ms bigint, OUT promised_ms bigint, OUT request_hash text,
    OUT created boolean)
LANGUAGE plpgsql AS $$
BEGIN
  IF p_key IS NOT NULL THEN
    SELECT c.order_no, (extract(epoch FROM c.accepted_at) * 1000)::bigint,
           (extract(epoch FROM c.promised_by) * 1000)::bigint, c.request_hash, false
      INTO order_no, accepted_ms, promised_ms, request_hash, created
      FROM intake.complaints c WHERE c.idempotency_key = p_key;
    IF FOUND THEN RETURN; END IF;
  END IF;
  BEGIN
    INSERT INTO intake.complaints (order_no, kind, stream, channel, tier, accepted_at, promised_by,
        first_receiver, customer_name, customer_phone, customer_address, customer_home_region,
        customer_level, region, business_type, problem_type, title, content, idempotency_key,
        request_hash, details)
    VALUES (p_order_no, p_kind, p_stream, p_channel, p_tier, to_timestamp(p_accepted_ms / 1000.0),
        to_timestamp(p_promised_ms / 1000.0), p_first_receiver, p_name, p_phone, p_address,
        p_home_region, p_level, p_region, p_business, p_problem, p_title, p_content, p_key, p_hash,
        coalesce(p_details, '{}'));
  EXCEPTION WHEN unique_violation THEN
    -- Our own earlier attempt committed (its reply was lost with the
    -- connection): the order number is ours alone, so answer as created.
    SELECT c.order_no, (extract(epoch FROM c.accepted_at) * 1000)::bigint,
           (extract(epoch FROM c.promised_by) * 1000)::bigint, c.request_hash, true
      INTO order_no, accepted_ms, promised_ms, request_hash, created
      FROM intake.complaints c WHERE c.order_no = p_order_no;
    IF FOUND THEN request_hash := p_hash; RETURN; END IF;
    -- A concurrent request with the same key committed first.
    SELECT c.order_no, (extract(epoch FROM c.accepted_at) * 1000)::bigint,
           (extract(epoch FROM c.promised_by) * 1000)::bigint, c.request_hash, false
      INTO order_no, accepted_ms, promised_ms, request_hash, created
      FROM intake.complaints c WHERE c.idempotency_key = p_key;
    IF FOUND THEN RETURN; END IF;
    RAISE;
  END;
  PERFORM intake.outbox_append(p_event_id, 'ComplaintReceived', p_accepted_ms, p_order_no,
                               p_envelope);
  order_no := p_order_no; accepted_ms := p_accepted_ms; promised_ms := p_promised_ms;
  request_hash := p_hash; created := true;
END $$;
