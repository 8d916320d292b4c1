-- The durable stream tables every service schema gets (ARCHITECTURE §3).
-- Applied by `kesuctl migrate` as the service's role with __SCHEMA__ replaced.

-- Producer side: the event log. seq is dense and in commit order because
-- outbox_append takes the row lock on outbox_head and holds it to commit.
CREATE TABLE IF NOT EXISTS __SCHEMA__.outbox (
  seq         bigint PRIMARY KEY,
  event_id    uuid NOT NULL UNIQUE,
  type        text NOT NULL,
  occurred_at timestamptz NOT NULL,
  order_no    text,
  envelope    bytea NOT NULL,          -- packed Envelope with seq = 0
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS __SCHEMA__.outbox_head (
  id  int PRIMARY KEY CHECK (id = 1),
  seq bigint NOT NULL
);
INSERT INTO __SCHEMA__.outbox_head VALUES (1, 0) ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION __SCHEMA__.outbox_append(p_event_id uuid, p_type text,
    p_occurred_at_ms bigint, p_order_no text, p_envelope bytea)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE s bigint;
BEGIN
  UPDATE __SCHEMA__.outbox_head SET seq = seq + 1 WHERE id = 1 RETURNING seq INTO s;
  INSERT INTO __SCHEMA__.outbox (seq, event_id, type, occurred_at, order_no, envelope)
  VALUES (s, p_event_id, p_type, to_timestamp(p_occurred_at_ms / 1000.0), NULLIF(p_order_no, ''),
          p_envelope);
  -- One constant payload: Postgres folds repeats within a transaction.
  PERFORM pg_notify('__SCHEMA___outbox', '');
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
