-- Objects for the \d family comparison in tests/pg_psql.rs (created directly).
CREATE SCHEMA shop;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE items (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    price numeric(10,2) DEFAULT 0 CHECK (price >= 0),
    qty posint,
    feeling mood,
    created timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE items IS 'things we sell';
COMMENT ON COLUMN items.price IS 'in EUR';
CREATE INDEX items_name_idx ON items (lower(name));
CREATE TABLE shop.customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    item_id int NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    customer_id bigint REFERENCES shop.customers(id),
    amount int
) ;
CREATE INDEX orders_item_idx ON orders (item_id) WHERE amount > 0;
CREATE VIEW item_summary AS SELECT i.name, count(o.id) AS orders FROM items i LEFT JOIN orders o ON o.item_id = i.id GROUP BY i.name;
CREATE SEQUENCE shop.invoice_seq START 1000;
CREATE FUNCTION add_tax(p numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$ SELECT p * 1.2 $$;
CREATE FUNCTION shop.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.email := lower(NEW.email); RETURN NEW; END $$;
CREATE TRIGGER customers_touch BEFORE INSERT ON shop.customers FOR EACH ROW EXECUTE FUNCTION shop.touch();
INSERT INTO items (name, price, qty, feeling) VALUES ('apple', 1, 3, 'happy'), ('pear', 2, 1, 'ok');
ANALYZE;
