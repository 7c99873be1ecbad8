//! Classification cost: uncached (both parsers: sqlparser's analysis and the
//! cross-check by Postgres's own parser), Postgres's parser alone, and cached
//! (LRU hit).
//!
//! `cargo bench -p airlock-sql -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;

use airlock_sql::{classify, Classifier};
use criterion::{criterion_group, criterion_main, Criterion};

/// (name, statement) pairs typical of what the proxy sees.
const STATEMENTS: &[(&str, &str)] = &[
    ("select_1", "SELECT 1"),
    (
        "pgbench_select",
        "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
    ),
    (
        "update",
        "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
    ),
    (
        "psql_describe",
        "SELECT n.nspname as \"Schema\",\n  c.relname as \"Name\",\n  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as \"Type\",\n  pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\"\nFROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam\nWHERE c.relkind IN ('r','p','v','m','S','f','')\n      AND n.nspname <> 'pg_catalog'\n      AND n.nspname !~ '^pg_toast'\n      AND n.nspname <> 'information_schema'\n  AND pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 1,2;",
    ),
    (
        "cte_delete",
        "WITH d AS (DELETE FROM orders WHERE created < now() - interval '30 days' RETURNING id) SELECT count(*) FROM d",
    ),
    (
        "multi_statement",
        "BEGIN; SELECT * FROM accounts WHERE id = 1; UPDATE accounts SET balance = 0 WHERE id = 1; COMMIT",
    ),
];

fn uncached(c: &mut Criterion) {
    let mut g = c.benchmark_group("uncached");
    for (name, sql) in STATEMENTS {
        g.bench_function(*name, |b| b.iter(|| classify(black_box(sql))));
    }
    g.finish();
}

fn postgres_parser_only(c: &mut Criterion) {
    let mut g = c.benchmark_group("pg_query_cross_check");
    for (name, sql) in STATEMENTS {
        g.bench_function(*name, |b| {
            b.iter(|| airlock_sql::pg_view::pg_view(black_box(sql)))
        });
    }
    g.finish();
}

fn cached(c: &mut Criterion) {
    let classifier = Classifier::new(1024);
    for (_, sql) in STATEMENTS {
        classifier.classify(sql);
    }
    let mut g = c.benchmark_group("cached");
    for (name, sql) in STATEMENTS {
        g.bench_function(*name, |b| b.iter(|| classifier.classify(black_box(sql))));
    }
    g.finish();
}

criterion_group!(benches, uncached, postgres_parser_only, cached);
criterion_main!(benches);
