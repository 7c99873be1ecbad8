//! What a protected target's catalog can run behind an innocent-looking
//! text (SPEC §3): Postgres resolves operators, overloads, casts, domains,
//! views and attribute notation against the catalog, so names in the text
//! are not the whole story. The wire crate loads a [`CatalogRisks`] per
//! target (user functions and aggregates, user operators, types with user
//! I/O or cast functions and domains with checks, views that reach
//! non-allow-listed functions, tables with columns of such types) and every
//! statement that could reach one of them, by any route, is held.
//! Resolution is approximated conservatively: names match whatever the
//! schema, case-insensitively. Pure: no I/O here.

use serde_json::Value;
use std::collections::HashSet;

/// The objects of one target that can run user code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogRisks {
    /// Names (lowercase, unqualified) of user functions and aggregates,
    /// including those that shadow allow-listed built-ins.
    pub functions: HashSet<String>,
    /// Symbols of user-defined operators (`+`, `~~` for LIKE, `=`…).
    pub operators: HashSet<String>,
    /// Type names (lowercase, unqualified) whose input, output or casts run
    /// user code, and domains with CHECK constraints.
    pub types: HashSet<String>,
    /// OIDs of those types (for typed protocol parameters).
    pub type_oids: HashSet<u32>,
    /// Relations (lowercase, unqualified) that run user code when read:
    /// views reaching non-allow-listed functions (through views of views too),
    /// tables with columns of the types above.
    pub relations: HashSet<String>,
}

impl CatalogRisks {
    /// Whether nothing on the target can run user code.
    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
            && self.operators.is_empty()
            && self.types.is_empty()
            && self.relations.is_empty()
    }

    /// Whether a protocol Parse's declared parameter types include a risky one.
    pub fn risky_parameter_types(&self, oids: &[u32]) -> bool {
        oids.iter().any(|o| self.type_oids.contains(o))
    }

    /// Why `sql` can reach user code on this target; empty when it cannot.
    pub fn findings(&self, sql: &str) -> Vec<String> {
        if self.is_empty() || !self.might_reach(sql) {
            return Vec::new();
        }
        let tree = match pg_query::parse(sql, 0)
            .ok()
            .and_then(|p| serde_json::to_value(&p.protobuf).ok())
        {
            Some(t) => t,
            None => return vec!["cannot be checked against the target's catalog".to_string()],
        };
        let mut out = Vec::new();
        self.walk(&tree, &mut out);
        out
    }

    /// A fast, sound pre-filter: a name can only be reached if it occurs in
    /// the text (case-insensitively), unless the text spells identifiers with
    /// Unicode escapes (`U&"…"`), which is always checked in full.
    fn might_reach(&self, sql: &str) -> bool {
        let lower = sql.to_ascii_lowercase();
        if lower.contains("u&") {
            return true;
        }
        self.functions
            .iter()
            .chain(&self.types)
            .chain(&self.relations)
            .any(|n| lower.contains(n.as_str()))
            || self
                .operators
                .iter()
                .any(|op| operator_may_occur(&lower, op))
    }

    fn walk(&self, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| self.walk(i, out)),
            Value::Object(map) => {
                // A TypeName is embedded by value (TypeCast.type_name, column
                // definitions, PREPARE argument types): known by its fields.
                if map.contains_key("names") && map.contains_key("typmods") {
                    if let Some(t) = last_name(map.get("names")) {
                        if self.types.contains(&t) {
                            note(out, format!("uses type {t}, whose input, checks or casts run user code on this target"));
                        }
                    }
                }
                for (key, inner) in map {
                    match key.as_str() {
                        "FuncCall" if !in_pg_catalog(inner.get("funcname")) => {
                            if let Some(name) = last_name(inner.get("funcname")) {
                                if self.functions.contains(&name) {
                                    note(
                                        out,
                                        format!("calls {name}, a user function on this target"),
                                    );
                                }
                            }
                        }
                        "AExpr" if !in_pg_catalog(inner.get("name")) => {
                            for op in names(inner.get("name")) {
                                if self.operators.contains(&op) {
                                    note(out, format!("operator {op} has a user-defined overload on this target"));
                                }
                            }
                        }
                        "RangeVar" => {
                            if let Some(rel) = inner.get("relname").and_then(Value::as_str) {
                                let rel = rel.to_lowercase();
                                if self.relations.contains(&rel) {
                                    note(out, format!("reads {rel}, which runs user code on this target (a view over such functions, or columns of a type with user code)"));
                                }
                                // A function in FROM that is also a view name is caught by FuncCall.
                            }
                        }
                        "ColumnRef" => {
                            // Attribute notation: t.some_function calls some_function(t).
                            if let Some(f) = last_name(inner.get("fields")) {
                                if self.functions.contains(&f) {
                                    note(out, format!("{f} may be a call in attribute notation of a user function on this target"));
                                }
                            }
                        }
                        _ => {}
                    }
                    self.walk(inner, out);
                }
            }
            _ => {}
        }
    }
}

/// Whether an operator symbol may occur in lowercase SQL text: symbols are
/// looked for as written; LIKE/ILIKE/SIMILAR spell `~~`, `~~*`, `~`.
fn operator_may_occur(lower: &str, op: &str) -> bool {
    lower.contains(op)
        || (op.starts_with('~') || op.starts_with("!~"))
            && (lower.contains("like") || lower.contains("similar"))
        || lower.contains("operator(")
}

fn note(out: &mut Vec<String>, reason: String) {
    if !out.contains(&reason) {
        out.push(reason);
    }
}

/// The `sval`s of a list of String nodes, lowercased.
fn names(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|n| n.get("node")?.get("String")?.get("sval")?.as_str())
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a qualified name names `pg_catalog` explicitly: resolution is then
/// exact, and user objects are never in `pg_catalog`.
fn in_pg_catalog(list: Option<&Value>) -> bool {
    let n = names(list);
    n.len() > 1 && n[0] == "pg_catalog"
}

fn last_name(list: Option<&Value>) -> Option<String> {
    names(list).pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn risks() -> CatalogRisks {
        CatalogRisks {
            functions: ["bump", "lower", "stable_bump"].map(String::from).into(),
            operators: ["+", "~~"].map(String::from).into(),
            types: ["positive_int", "mood"].map(String::from).into(),
            type_oids: [16_500].into(),
            relations: ["v_bumps"].map(String::from).into(),
        }
    }

    #[test]
    fn every_route_to_user_code_is_found() {
        let r = risks();
        for sql in [
            "SELECT * FROM v_bumps",
            "SELECT * FROM public.V_BUMPS",
            "SELECT lower(42)",
            "SELECT 1 + 1",
            "SELECT 'a' LIKE 'b'",
            "SELECT '5'::positive_int",
            "SELECT CAST('happy' AS public.mood)",
            "SELECT t.bump FROM t",
            "PREPARE p(positive_int) AS SELECT $1",
            "EXPLAIN EXECUTE p(stable_bump())",
            "SELECT U&\"\\0062ump\"()",
        ] {
            assert!(!r.findings(sql).is_empty(), "{sql} must be found");
        }
        assert!(r.risky_parameter_types(&[23, 16_500]));
    }

    #[test]
    fn statements_that_reach_nothing_pass_without_a_parse() {
        let r = risks();
        for sql in [
            "SELECT id FROM t WHERE id = 1",
            "SELECT count(*) FROM orders",
            "SHOW search_path",
            "SELECT pg_catalog.lower(name) FROM t",
            "SELECT 1 OPERATOR(pg_catalog.+) 1",
        ] {
            assert!(r.findings(sql).is_empty(), "{sql}");
        }
        assert!(CatalogRisks::default().findings("SELECT bump()").is_empty());
    }
}
