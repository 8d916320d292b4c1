-- Orders recorded before 005 have priority 0, and the default rules now say
-- priority>=7 where they said level=vip: their VIP customers would lose the
-- dispatch SMS. R-15 gives the VIP levels 10 for importance, at least 1 for the
-- tier: 11 (the next WorkOrderStepChanged brings the exact number).
UPDATE notify.orders SET priority = 11
 WHERE priority = 0 AND lower(level) IN ('vip', 'diamond', 'gold', 'silver', '3g');
