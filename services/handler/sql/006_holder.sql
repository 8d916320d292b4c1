-- handler: several handler processes share this schema; each order row says
-- which of them holds it now (the handler_id of the dispatch it stored) and
-- which held it before (a re-dispatch after a handler was gone). A handler's
-- queue is the rows it holds; a former holder's staff are refused (409).
ALTER TABLE handler.orders ADD COLUMN IF NOT EXISTS handler_id text;
ALTER TABLE handler.orders ADD COLUMN IF NOT EXISTS former_handlers text[] NOT NULL DEFAULT '{}';
CREATE INDEX IF NOT EXISTS orders_open_handler ON handler.orders (handler_id) WHERE state = 'open';
