-- Sample orders schema for the dbre.rds demo; the named argument rows is the number of orders.
CREATE TABLE IF NOT EXISTS customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    status text NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'cancelled')),
    total_cents integer NOT NULL CHECK (total_cents >= 0),
    created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_created_at_idx ON orders (created_at);
INSERT INTO customers (email)
SELECT 'customer' || n || '@example.com' FROM generate_series(1, 500) AS n
ON CONFLICT (email) DO NOTHING;
INSERT INTO orders (customer_id, status, total_cents, created_at)
SELECT 1 + (n %% 500),
       (ARRAY['pending', 'paid', 'shipped', 'cancelled'])[1 + (n %% 4)],
       100 + (n * 37) %% 50000,
       now() - make_interval(secs => (%(rows)s - n) * (2592000.0 / %(rows)s))
FROM generate_series(1, %(rows)s) AS n;
