-- R-15 priority as the router computes it (services/router/dispatcher.c
-- order_priority): tier 1–3 + 10 VIP (customer level or the vip sub-level)
-- + gravity 5 + urgency 4 + breadth 3. The handler stores the number it
-- computed from the dispatched Complaint in complaint->'priority'; rows from
-- before that are computed here from the same fields.
CREATE OR REPLACE FUNCTION handler.priority(p_complaint jsonb) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce((p_complaint->>'priority')::int,
           CASE WHEN lower(coalesce(p_complaint->'customer'->>'level', ''))
                     IN ('vip', 'diamond', 'gold', 'silver', '3g')
                  OR coalesce((p_complaint->>'vip')::boolean, false) THEN 10 ELSE 0 END
         + CASE p_complaint->>'tier' WHEN 'national' THEN 3 WHEN 'provincial' THEN 2 ELSE 1 END
         + CASE WHEN coalesce((p_complaint->>'gravity')::boolean, false) THEN 5 ELSE 0 END
         + CASE WHEN coalesce((p_complaint->>'urgency')::boolean, false) THEN 4 ELSE 0 END
         + CASE WHEN coalesce((p_complaint->>'breadth')::boolean, false) THEN 3 ELSE 0 END)
$$;
