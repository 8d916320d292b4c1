-- R-34 "the next step and the centre are told": every move of a step's
-- deadline that is not the order's own step change appends one
-- SlaDeadlineMoved event (envelope payload 24) to sla.outbox, in the
-- transaction that moves it. Kinds: recommit, appointment, postpone,
-- reclassify (each a row in sla.recommits), pause and resume (sla.pause).
--
-- The event is built here, where the old and new deadlines are known, so
-- every path that records a move (sla.recommit, sla.appointment,
-- sla.postpone, the reclassify recompute, future ones) is covered by one
-- trigger. The protobuf wire format (varints, length-delimited fields) is
-- written by the small functions below; tests/test_sla_told.py decodes the
-- events with the generated Python classes.

CREATE OR REPLACE FUNCTION sla.pb_varint(p bigint) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v numeric := CASE WHEN p < 0 THEN p::numeric + 18446744073709551616 ELSE p END;
  out bytea := ''::bytea;
BEGIN
  LOOP
    IF v < 128 THEN
      RETURN out || set_byte('\x00'::bytea, 0, v::int);
    END IF;
    out := out || set_byte('\x00'::bytea, 0, (mod(v, 128) + 128)::int);
    v := div(v, 128);
  END LOOP;
END $$;

-- field p_field as a varint (wire type 0); nothing for 0 (proto3 default)
CREATE OR REPLACE FUNCTION sla.pb_int(p_field int, p bigint) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN coalesce(p, 0) = 0 THEN ''::bytea
              ELSE sla.pb_varint(p_field * 8) || sla.pb_varint(p) END
$$;

-- field p_field length-delimited (wire type 2); nothing for empty
CREATE OR REPLACE FUNCTION sla.pb_bytes(p_field int, p bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p IS NULL OR length(p) = 0 THEN ''::bytea
              ELSE sla.pb_varint(p_field * 8 + 2) || sla.pb_varint(length(p)) || p END
$$;

CREATE OR REPLACE FUNCTION sla.pb_str(p_field int, p text) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
  SELECT sla.pb_bytes(p_field, convert_to(coalesce(p, ''), 'UTF8'))
$$;

CREATE OR REPLACE FUNCTION sla.ms(p timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p IS NULL THEN 0 ELSE round(extract(epoch from p) * 1000)::bigint END
$$;

-- kesu.v1.Step by the timer's step name
CREATE OR REPLACE FUNCTION sla.step_no(p text) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE p WHEN 'accept' THEN 1 WHEN 'review' THEN 2 WHEN 'handle' THEN 3
                WHEN 'feedback' THEN 4 WHEN 'answer' THEN 5 WHEN 'callback' THEN 6
                WHEN 'closed' THEN 7 WHEN 'arrive' THEN 8 WHEN 'fix' THEN 9 ELSE 0 END
$$;

-- Appends one SlaDeadlineMoved (Envelope: producer 1, event_id 3, type 4,
-- occurred_at 5, order_no 6, region 7, payload 24).
CREATE OR REPLACE FUNCTION sla.emit_deadline_moved(p_order_no text, p_step text, p_unit text,
    p_region text, p_old_ms bigint, p_new_ms bigint, p_reason text, p_kind text, p_actor text,
    p_at_ms bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  id uuid := gen_random_uuid();
  payload bytea;
  env bytea;
BEGIN
  payload := sla.pb_str(1, p_order_no) || sla.pb_int(2, sla.step_no(p_step))
          || sla.pb_str(3, p_unit) || sla.pb_int(4, p_old_ms) || sla.pb_int(5, p_new_ms)
          || sla.pb_str(6, p_reason) || sla.pb_str(7, p_kind) || sla.pb_str(8, p_actor);
  env := sla.pb_str(1, 'sla') || sla.pb_str(3, id::text) || sla.pb_str(4, 'SlaDeadlineMoved')
      || sla.pb_int(5, p_at_ms) || sla.pb_str(6, p_order_no) || sla.pb_str(7, p_region)
      || sla.pb_varint(24 * 8 + 2) || sla.pb_varint(length(payload)) || payload;
  PERFORM sla.outbox_append(id, 'SlaDeadlineMoved', p_at_ms, p_order_no, env);
END $$;

-- A row of sla.recommits: emitted at commit (a deferred trigger), when the
-- row is final (sla.appointment re-labels the row sla.recommit wrote).
CREATE OR REPLACE FUNCTION sla.recommit_moved() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r sla.recommits%ROWTYPE;
  t sla.timers%ROWTYPE;
BEGIN
  SELECT * INTO r FROM sla.recommits WHERE id = NEW.id;
  IF r.id IS NULL OR r.old_due_at = r.new_due_at THEN
    RETURN NULL;
  END IF;
  SELECT * INTO t FROM sla.timers WHERE order_no = r.order_no AND step = r.step;
  PERFORM sla.emit_deadline_moved(r.order_no, r.step, coalesce(t.unit_id, ''),
                                  coalesce(t.region, ''), sla.ms(r.old_due_at),
                                  sla.ms(r.new_due_at), r.reason, r.kind, r.actor, sla.ms(r.at));
  RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS recommits_moved ON sla.recommits;
CREATE CONSTRAINT TRIGGER recommits_moved AFTER INSERT ON sla.recommits
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sla.recommit_moved();

-- Pause and resume (sla.pause): the clock stops (new_due_at 0: not known
-- until it runs again) or runs again with every deadline later by the time
-- it stood still. A timer started over (paused_ms back to 0) is no resume.
-- Actor and reason are the transaction's settings sla.actor / sla.reason
-- (set by the HTTP API).
CREATE OR REPLACE FUNCTION sla.pause_moved() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  actor text := coalesce(current_setting('sla.actor', true), '');
  why text := coalesce(nullif(current_setting('sla.reason', true), ''),
                      CASE WHEN NEW.customer_caused THEN 'customer' ELSE '' END);
BEGIN
  IF OLD.paused_at IS NULL AND NEW.paused_at IS NOT NULL THEN
    PERFORM sla.emit_deadline_moved(NEW.order_no, NEW.step, coalesce(NEW.unit_id, ''),
                                    coalesce(NEW.region, ''), sla.ms(OLD.due_at), 0, why,
                                    'pause', actor, sla.ms(NEW.paused_at));
  ELSIF OLD.paused_at IS NOT NULL AND NEW.paused_at IS NULL AND NEW.paused_ms >= OLD.paused_ms
        AND NEW.started_at = OLD.started_at AND NEW.closed_at IS NULL THEN
    PERFORM sla.emit_deadline_moved(NEW.order_no, NEW.step, coalesce(NEW.unit_id, ''),
                                    coalesce(NEW.region, ''), sla.ms(OLD.due_at),
                                    sla.ms(NEW.due_at), why, 'resume', actor,
                                    sla.ms(OLD.paused_at) + NEW.paused_ms - OLD.paused_ms);
  END IF;
  RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS timers_pause_moved ON sla.timers;
CREATE TRIGGER timers_pause_moved AFTER UPDATE OF paused_at ON sla.timers
  FOR EACH ROW WHEN (OLD.paused_at IS DISTINCT FROM NEW.paused_at)
  EXECUTE FUNCTION sla.pause_moved();
