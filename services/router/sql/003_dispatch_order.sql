-- router: dispatch rows are written before the dispatch is sent; a restart
-- reloads the latest dispatch of every undispatched order (by seq) and keeps
-- the order for that handler, under the same dispatch_id, for the handler
-- timeout before it goes to another.
ALTER TABLE router.dispatches ADD COLUMN IF NOT EXISTS seq bigserial;
CREATE INDEX IF NOT EXISTS dispatches_order_seq ON router.dispatches (order_no, seq DESC);
