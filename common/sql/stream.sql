-- The durable stream tables every service schema gets (ARCHITECTURE §3).
-- Applied by `kesuctl migrate` as the service's role with __SCHEMA__ replaced.
-- Re-applied on every migrate: keep every statement here idempotent.

-- Producer side: the event log. seq is dense and in commit order because
-- outbox_append takes a transaction-level advisory lock (re-entrant, held to
-- commit) before it reads the last seq: one writer appends at a time, and the
-- next sees the last one's rows. (Until 2026-11 a one-row outbox_head was
-- updated per event: within one transaction of many events every UPDATE walked
-- the chain of its earlier versions, quadratic in the batch.)
-- No NOTIFY per append: the publisher in the writing process drains after each
-- commit (common/outbox.h); a NOTIFY would signal every listening backend.
CREATE TABLE IF NOT EXISTS __SCHEMA__.outbox (
  seq         bigint PRIMARY KEY,
  event_id    uuid NOT NULL UNIQUE,
  type        text NOT NULL,
  occurred_at timestamptz NOT NULL,
  order_no    text,
  envelope    bytea NOT NULL,          -- packed Envelope with seq = 0
  created_at  timestamptz NOT NULL DEFAULT now()
);
DROP TABLE IF EXISTS __SCHEMA__.outbox_head;

CREATE OR REPLACE FUNCTION __SCHEMA__.outbox_append(p_event_id uuid, p_type text,
    p_occurred_at_ms bigint, p_order_no text, p_envelope bytea)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE s bigint;
BEGIN
  -- class 0x6b657375 ('kesu'), key: the schema's outbox
  PERFORM pg_advisory_xact_lock(1801810805, hashtext('__SCHEMA__.outbox'));
  SELECT coalesce(max(seq), 0) + 1 INTO s FROM __SCHEMA__.outbox;
  INSERT INTO __SCHEMA__.outbox (seq, event_id, type, occurred_at, order_no, envelope)
  VALUES (s, p_event_id, p_type, to_timestamp(p_occurred_at_ms / 1000.0), NULLIF(p_order_no, ''),
          p_envelope);
  RETURN s;
END $$;

-- Consumer side: how far this service has applied each producer's stream.
CREATE TABLE IF NOT EXISTS __SCHEMA__.offsets (
  producer   text PRIMARY KEY,
  last_seq   bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Advances an offset from p_from to p_to, or raises (aborting the batch's
-- transaction) if the stored offset is not p_from: the effect of a batch is
-- applied at most once even if two processes race or a reply was lost.
CREATE OR REPLACE FUNCTION __SCHEMA__.offset_advance(p_producer text, p_from bigint, p_to bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE cur bigint;
BEGIN
  INSERT INTO __SCHEMA__.offsets (producer, last_seq) VALUES (p_producer, 0)
  ON CONFLICT DO NOTHING;
  SELECT last_seq INTO cur FROM __SCHEMA__.offsets WHERE producer = p_producer FOR UPDATE;
  IF cur <> p_from THEN
    RAISE EXCEPTION 'offset of % is %, batch expected %', p_producer, cur, p_from
      USING ERRCODE = 'KS409';
  END IF;
  UPDATE __SCHEMA__.offsets SET last_seq = p_to, updated_at = now() WHERE producer = p_producer;
END $$;
