-- class: write
SELECT * FROM app.accounts FOR UPDATE
-- next
-- class: write
SELECT * FROM app.accounts FOR SHARE
-- next
-- class: write
SELECT * FROM app.accounts FOR NO KEY UPDATE
-- next
-- class: write
SELECT * FROM app.accounts FOR KEY SHARE
-- next
-- class: write
SELECT * FROM app.accounts WHERE id = 1 FOR UPDATE NOWAIT
-- next
-- class: write
SELECT * FROM app.accounts a JOIN app.orders o ON o.account_id = a.id FOR UPDATE OF a SKIP LOCKED
-- next
-- class: write
SELECT * FROM (SELECT * FROM app.accounts FOR UPDATE) s
-- next
-- class: write
WITH l AS (SELECT * FROM app.accounts FOR UPDATE) SELECT * FROM l
-- next
-- class: write
DECLARE c CURSOR FOR SELECT * FROM app.accounts FOR UPDATE
