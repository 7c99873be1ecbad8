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
    /// Set when user code can run behind any statement at all (an implicit
    /// or assignment cast by a user function between built-in types): every
    /// statement is held, with this reason.
    pub blanket: Option<String>,
    /// Call forms (name parts, as Postgres folds them) that can only reach
    /// a function the target trusts (`trusted_functions`): `schema.name`
    /// for each trusted function found, and the bare `name` when no other
    /// function of that name exists (in any schema, Postgres's own included).
    pub trusted_calls: HashSet<Vec<String>>,
    /// Trusted functions (`schema.name`) the catalog does not have.
    pub missing_trusted: Vec<String>,
}

/// Operators Postgres applies without their symbol in the text: `IN`,
/// `CASE x WHEN`, `NULLIF`, `IS DISTINCT FROM`, `x IN (SELECT …)` use `=`
/// (and `<>`), `BETWEEN` uses `>=`/`<=` (or `<`/`>`).
const IMPLIED_OPERATORS: &[&str] = &["=", "<>", "<", ">", "<=", ">="];

/// `SubLinkType::AnySublink` in pg_query's protobuf.
const ANY_SUBLINK: i64 = 3;

/// Words that spell an implied operator.
const IMPLYING_WORDS: &[&str] = &[
    "in", "case", "nullif", "distinct", "between", "any", "some", "all",
];

impl CatalogRisks {
    /// Whether nothing on the target can run user code.
    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
            && self.operators.is_empty()
            && self.types.is_empty()
            && self.relations.is_empty()
            && self.blanket.is_none()
    }

    /// Whether `c`, held only for calling functions off the allow-list,
    /// calls nothing but functions this target trusts.
    pub fn trusts(&self, c: &crate::Classification) -> bool {
        c.held_only_for_calls
            && !c.calls.is_empty()
            && c.calls.iter().all(|call| self.trusted_calls.contains(call))
    }

    /// Adds the views (name, definition as `pg_get_viewdef` prints it) that
    /// run code when read: a definition that is not a plain read (it calls
    /// a function off the allow-list, such as `nextval`, `pg_notify` or
    /// `lo_create`) or that reaches user code, directly or through other
    /// such views (to a fixpoint). Postgres records no dependency on its own
    /// functions, so the definitions are analysed, not `pg_depend`.
    pub fn add_views(&mut self, views: &[(String, String)]) {
        loop {
            let more: Vec<String> = views
                .iter()
                .filter(|(name, _)| !self.relations.contains(name))
                .filter(|(_, def)| {
                    let c = crate::classify(def);
                    !(c.read_only || self.trusts(&c)) || !self.findings(def).is_empty()
                })
                .map(|(name, _)| name.clone())
                .collect();
            if more.is_empty() {
                return;
            }
            self.relations.extend(more);
        }
    }

    /// Whether the planner can be asked for a row estimate of `sql` (a
    /// write held for review) without running code the text does not show:
    /// it reaches nothing of this catalog and calls only allow-listed
    /// built-in functions (the planner folds IMMUTABLE calls and evaluates
    /// STABLE ones for selectivity).
    pub fn plans_safely(&self, sql: &str) -> bool {
        if self.blanket.is_some() {
            return false;
        }
        // One parse serves both checks (the text pre-filter of `findings`
        // only ever skips a walk that would find nothing).
        let Some(tree) = parse_tree(sql) else {
            return false;
        };
        let mut found = Vec::new();
        self.walk(&tree, &mut found);
        let mut ok = found.is_empty();
        only_allowed_calls(&tree, &mut ok);
        ok
    }

    /// Whether a protocol Parse's declared parameter types include a risky one.
    pub fn risky_parameter_types(&self, oids: &[u32]) -> bool {
        oids.iter().any(|o| self.type_oids.contains(o))
    }

    /// Why `sql` can reach user code on this target; empty when it cannot.
    pub fn findings(&self, sql: &str) -> Vec<String> {
        if let Some(why) = &self.blanket {
            return vec![why.clone()];
        }
        if self.is_empty() || !self.might_reach(sql) {
            return Vec::new();
        }
        let Some(tree) = parse_tree(sql) else {
            return vec!["cannot be checked against the target's catalog".to_string()];
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
        if self
            .operators
            .iter()
            .any(|o| IMPLIED_OPERATORS.contains(&o.as_str()))
            && IMPLYING_WORDS.iter().any(|w| lower.contains(w))
        {
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
                        // A call that can only resolve to a trusted function.
                        "FuncCall"
                            if self
                                .trusted_calls
                                .contains(&exact_names(inner.get("funcname"))) => {}
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
                                let implied: &[&str] = if op.contains("between") {
                                    &["<", ">", "<=", ">="]
                                } else {
                                    &[]
                                };
                                for op in
                                    std::iter::once(op.as_str()).chain(implied.iter().copied())
                                {
                                    self.operator(op, out);
                                }
                            }
                        }
                        // `CASE x WHEN y` compares with `=`.
                        "CaseExpr" if inner.get("arg").is_some_and(|a| !a.is_null()) => {
                            self.operator("=", out)
                        }
                        // `x IN (SELECT …)` compares with `=`.
                        "SubLink"
                            if inner.get("sub_link_type").and_then(Value::as_i64)
                                == Some(ANY_SUBLINK)
                                && names(inner.get("oper_name")).is_empty() =>
                        {
                            self.operator("=", out)
                        }
                        // `(row).f` and `(expr).f`: attribute notation of a call f(row).
                        "AIndirection" => {
                            for f in names(inner.get("indirection")) {
                                if self.functions.contains(&f) {
                                    note(out, format!("{f} may be a call in attribute notation of a user function on this target"));
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

    fn operator(&self, op: &str, out: &mut Vec<String>) {
        if self.operators.contains(op) {
            note(
                out,
                format!("operator {op} has a user-defined overload on this target"),
            );
        }
    }
}

/// Postgres's parse tree of `sql`, as JSON.
fn parse_tree(sql: &str) -> Option<Value> {
    pg_query::parse(sql, 0)
        .ok()
        .and_then(|p| serde_json::to_value(&p.protobuf).ok())
}

/// Clears `ok` at the first call of a function that is not an allow-listed built-in.
fn only_allowed_calls(v: &Value, ok: &mut bool) {
    if !*ok {
        return;
    }
    match v {
        Value::Array(items) => items.iter().for_each(|i| only_allowed_calls(i, ok)),
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "FuncCall" {
                    let n = names(inner.get("funcname"));
                    let allowed = match n.as_slice() {
                        [f] => crate::is_allowed_builtin(f),
                        [schema, f] => schema == "pg_catalog" && crate::is_allowed_builtin(f),
                        _ => false,
                    };
                    if !allowed {
                        *ok = false;
                        return;
                    }
                }
                only_allowed_calls(inner, ok);
            }
        }
        _ => {}
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
    exact_names(list)
        .into_iter()
        .map(|n| n.to_lowercase())
        .collect()
}

/// The `sval`s of a list of String nodes, as Postgres folded them.
fn exact_names(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|n| n.get("node")?.get("String")?.get("sval")?.as_str())
                .map(str::to_string)
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
            blanket: None,
            trusted_calls: HashSet::new(),
            missing_trusted: Vec::new(),
        }
    }

    fn call(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn trusted_functions_clear_only_calls_and_only_their_own() {
        let r = CatalogRisks {
            trusted_calls: [call(&["report", "total"]), call(&["total"])].into(),
            ..Default::default()
        };
        for sql in [
            "SELECT total(1)",
            "SELECT report.total(id) FROM t",
            "SELECT * FROM report.total()",
            "EXPLAIN SELECT total(2)",
            "PREPARE p AS SELECT total(1)",
            "SELECT total(1); SELECT report.total(2)",
        ] {
            let c = crate::classify(sql);
            assert!(!c.read_only, "{sql} is held without trust");
            assert!(r.trusts(&c), "{sql} calls only trusted functions: {c:?}");
        }
        assert_eq!(
            crate::classify("PREPARE p AS SELECT total(1)").prepares,
            ["p"]
        );
        for sql in [
            "SELECT total(1), other(2)",
            "SELECT public.total(1)",
            "SELECT pg_catalog.total(1)",
            "SELECT total(1) FROM t FOR UPDATE",
            "SELECT total(nextval('s'))",
            "SELECT total(1); DELETE FROM t",
            "WITH d AS (DELETE FROM t RETURNING 1) SELECT total(1)",
            "SELECT \"Total\"(1)",
            "EXPLAIN ANALYZE DELETE FROM t WHERE id = total(1)",
            "SELECT $€$ , $a$ $€$; DELETE FROM t; SELECT total($€$ , $a$ , $€$)",
        ] {
            let c = crate::classify(sql);
            assert!(!c.read_only && !r.trusts(&c), "{sql} must stay held: {c:?}");
        }
    }

    #[test]
    fn a_qualified_trusted_call_is_not_taken_for_a_same_named_user_function() {
        let r = CatalogRisks {
            functions: ["shared"].map(String::from).into(),
            trusted_calls: [call(&["report", "shared"])].into(),
            ..Default::default()
        };
        assert!(r.findings("SELECT report.shared()").is_empty());
        for sql in [
            "SELECT shared()",
            "SELECT public.shared()",
            "SELECT report.shared(), shared()",
            "SELECT report.\"Shared\"()",
        ] {
            assert!(!r.findings(sql).is_empty(), "{sql} must be found");
        }
    }

    #[test]
    fn a_view_calling_only_trusted_functions_is_a_plain_read() {
        let mut r = CatalogRisks {
            trusted_calls: [call(&["total"])].into(),
            ..Default::default()
        };
        r.add_views(&[
            (
                "v_total".into(),
                " SELECT total(t.id) AS total FROM t;".into(),
            ),
            (
                "v_other".into(),
                " SELECT other(t.id) AS other FROM t;".into(),
            ),
        ]);
        assert_eq!(r.relations, HashSet::from(["v_other".to_string()]));
    }

    #[test]
    fn implied_operators_and_indirection_are_found() {
        let r = CatalogRisks {
            operators: ["=", ">="].map(String::from).into(),
            functions: ["touch"].map(String::from).into(),
            ..Default::default()
        };
        for sql in [
            "SELECT owner IN (1, 2) FROM t",
            "SELECT CASE owner WHEN 1 THEN 'x' END FROM t",
            "SELECT NULLIF(owner, 1) FROM t",
            "SELECT owner IS DISTINCT FROM 1 FROM t",
            "SELECT owner BETWEEN 1 AND 2 FROM t",
            "SELECT 1 FROM t WHERE id IN (SELECT 1)",
            "SELECT (ROW(1, 'x')::t).touch",
            "SELECT (a).touch FROM t a",
        ] {
            assert!(!r.findings(sql).is_empty(), "{sql} must be found");
        }
        assert!(r.findings("SELECT CASE WHEN true THEN 1 END").is_empty());
    }

    #[test]
    fn views_are_judged_by_their_definitions_to_a_fixpoint() {
        let mut r = CatalogRisks {
            functions: ["bump"].map(String::from).into(),
            ..Default::default()
        };
        r.add_views(&[
            (
                "v_seq".into(),
                " SELECT nextval('s'::regclass) AS n;".into(),
            ),
            ("v_top".into(), " SELECT v_mid.n FROM v_mid;".into()),
            ("v_mid".into(), " SELECT v_seq.n FROM v_seq;".into()),
            ("v_user".into(), " SELECT bump() AS b;".into()),
            (
                "v_plain".into(),
                " SELECT t.id FROM t WHERE (t.id > 1);".into(),
            ),
        ]);
        for v in ["v_seq", "v_mid", "v_top", "v_user"] {
            assert!(r.relations.contains(v), "{v} must be risky");
        }
        assert!(!r.relations.contains("v_plain"));
    }

    #[test]
    fn estimates_only_for_statements_that_call_allow_listed_builtins() {
        let r = risks();
        assert!(r.plans_safely("UPDATE t SET v = upper(v) WHERE id = 1"));
        assert!(!r.plans_safely("UPDATE t SET v = 'x' WHERE id = stable_bump()"));
        assert!(!r.plans_safely("DELETE FROM t WHERE id = other_schema.f()"));
        assert!(!r.plans_safely("DELETE FROM t WHERE id = pg_terminate_backend(1)::int"));
        let blanket = CatalogRisks {
            blanket: Some("x".into()),
            ..Default::default()
        };
        assert!(!blanket.plans_safely("UPDATE t SET v = 1"));
        assert_eq!(blanket.findings("SELECT 1"), vec!["x".to_string()]);
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
