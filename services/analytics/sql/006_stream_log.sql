-- The live stream's durable log (issue 6, R-45 live view): every event
-- /v1/stream sends, with its SSE data, in commit order (pos), written in the
-- consumer's batch transaction. A client resuming with a Last-Event-ID the
-- in-memory ring no longer holds (after an analytics restart, or a long
-- absence) is served from here: no gap, no duplicate. analytics keeps the
-- last 200,000 events.
CREATE TABLE IF NOT EXISTS analytics.stream_log (
  pos      bigserial PRIMARY KEY,
  producer text NOT NULL,
  seq      bigint NOT NULL,
  type     text NOT NULL,
  region   text NOT NULL DEFAULT '',
  data     text NOT NULL,
  UNIQUE (producer, seq)
);
