//! Walks a syntax tree and reports everything that makes it not read-only:
//! function calls off the allow-list, custom operators, data-modifying
//! statements nested in queries (CTEs, sub-queries), row-locking clauses,
//! `SELECT … INTO`. Also collects the tables touched.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, InTarget,
    ObjectName, OrderByExpr, OrderBySort, Query, Select, Statement, TableFactor, Visit, Visitor,
};

use crate::class::StatementClass;
use crate::functions::{check_function, FnCheck};
use crate::ident::{ident_name, object_name_parts, object_name_string};
use crate::keywords::statement_class;
use crate::settings::{check_setting, value_text, SettingValue};

/// One reason to hold a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// The class this reason implies.
    pub class: StatementClass,
    /// Human-readable reason.
    pub reason: String,
    /// Set when the only reason is a call of this function (name parts as
    /// written, folded as Postgres folds them), which is not on the
    /// allow-list: a target's `trusted_functions` may clear it.
    pub call: Option<Vec<String>>,
}

/// What a walk found.
#[derive(Debug, Default)]
pub(crate) struct WalkOut {
    /// Reasons to hold.
    pub findings: Vec<Finding>,
    /// Tables touched (normalized, deduplicated later).
    pub tables: Vec<String>,
}

impl WalkOut {
    fn hold(&mut self, class: StatementClass, reason: String) {
        self.push(Finding {
            class,
            reason,
            call: None,
        });
    }

    /// Adds a finding unless one with the same reason is there.
    pub(crate) fn push(&mut self, finding: Finding) {
        if !self.findings.iter().any(|f| f.reason == finding.reason) {
            self.findings.push(finding);
        }
    }
}

/// Walk a query (any statement met inside it is nested, hence a write).
pub(crate) fn walk_query(q: &Query, out: &mut WalkOut) {
    let mut w = Walker::new(out, 1);
    let _ = q.visit(&mut w);
}

/// Walk a whole statement (the statement itself is the root; statements nested in it are flagged).
pub(crate) fn walk_statement(st: &Statement, out: &mut WalkOut) {
    let mut w = Walker::new(out, 0);
    let _ = st.visit(&mut w);
}

/// Walk loose expressions (EXECUTE parameters…).
pub(crate) fn walk_exprs(exprs: &[Expr], out: &mut WalkOut) {
    let mut w = Walker::new(out, 1);
    for e in exprs {
        let _ = e.visit(&mut w);
    }
}

struct Walker<'a> {
    out: &'a mut WalkOut,
    /// Statement nesting depth; a statement entered at depth >= 2 is nested.
    depth: usize,
    cte_names: Vec<String>,
    /// The next relation visited is a set-returning function's name, not a table.
    skip_next_relation: bool,
    /// Per enclosing SELECT: the setting name fixed by `FROM pg_settings WHERE name = '…'`.
    settings_row: Vec<Option<String>>,
}

impl<'a> Walker<'a> {
    fn new(out: &'a mut WalkOut, depth: usize) -> Self {
        Walker {
            out,
            depth,
            cte_names: Vec::new(),
            skip_next_relation: false,
            settings_row: Vec::new(),
        }
    }

    fn function_name(&mut self, name: &ObjectName, call: Option<&Function>) {
        match check_function(name) {
            FnCheck::Allowed => {}
            FnCheck::SetConfig => match call {
                Some(f) => {
                    let row = self.settings_row.last().cloned().flatten();
                    if let Some((class, reason)) = check_set_config(f, row.as_deref()) {
                        self.out.hold(class, reason);
                    }
                }
                None => self.out.hold(
                    StatementClass::Session,
                    "set_config used as a table function".to_string(),
                ),
            },
            FnCheck::Held(class, reason) => self.out.hold(class, reason),
            FnCheck::Unlisted(parts, reason) => self.out.push(Finding {
                class: StatementClass::Write,
                reason,
                call: Some(parts),
            }),
        }
    }

    fn operator(&mut self, op: &BinaryOperator) {
        match op {
            BinaryOperator::Custom(s) => self.out.hold(
                StatementClass::Write,
                format!("operator {s} is not on the read-only allow-list"),
            ),
            BinaryOperator::PGCustomBinaryOperator(parts) => {
                let builtin = matches!(parts.as_slice(), [schema, _] if schema.eq_ignore_ascii_case("pg_catalog"));
                if !builtin {
                    self.out.hold(
                        StatementClass::Write,
                        format!(
                            "operator OPERATOR({}) is not a pg_catalog operator",
                            parts.join(".")
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}

/// The setting a `SELECT … FROM pg_settings WHERE name = '…'` is restricted to
/// (pg_dump 15.8+: `SELECT set_config(name, '…', false) FROM pg_settings
/// WHERE name = 'restrict_nonsystem_relation_kind'`). The target list is only
/// evaluated for rows that pass WHERE, so `name` can only be that setting.
fn pg_settings_row(s: &Select) -> Option<String> {
    let [from] = s.from.as_slice() else {
        return None;
    };
    if !from.joins.is_empty() {
        return None;
    }
    let TableFactor::Table {
        name,
        args: None,
        alias: None,
        ..
    } = &from.relation
    else {
        return None;
    };
    let table = object_name_string(name);
    if table != "pg_settings" && table != "pg_catalog.pg_settings" {
        return None;
    }
    let Some(Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    }) = &s.selection
    else {
        return None;
    };
    let (Expr::Identifier(col), Expr::Value(v)) = (left.as_ref(), right.as_ref()) else {
        return None;
    };
    if ident_name(col) != "name" {
        return None;
    }
    match &v.value {
        sqlparser::ast::Value::SingleQuotedString(n) => Some(n.clone()),
        _ => None,
    }
}

/// Check a `set_config(name, value, is_local)` call: allowed when the name is
/// a string literal (or the `name` column of a pg_settings row fixed to one
/// setting) of a setting that may pass with that value.
fn check_set_config(f: &Function, settings_row: Option<&str>) -> Option<(StatementClass, String)> {
    let held = |why: &str| Some((StatementClass::Session, format!("set_config {why}")));
    let FunctionArguments::List(list) = &f.args else {
        return held("without an argument list");
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() || list.args.len() != 3 {
        return held("with unexpected arguments");
    }
    let mut exprs = Vec::with_capacity(3);
    for a in &list.args {
        match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => exprs.push(e),
            _ => return held("with named or wildcard arguments"),
        }
    }
    let name = match exprs[0] {
        Expr::Identifier(col) if ident_name(col) == "name" && settings_row.is_some() => {
            settings_row.unwrap_or_default().to_string()
        }
        Expr::Value(v) => match value_text(&v.value) {
            Some(n) if !matches!(v.value, sqlparser::ast::Value::Number(..)) => n,
            _ => return held("whose setting name is not a string literal"),
        },
        _ => return held("whose setting name is not a string literal"),
    };
    let value = match exprs[1] {
        Expr::Value(v) => match value_text(&v.value) {
            Some(s) => SettingValue::Values(vec![s]),
            None => SettingValue::Unknown,
        },
        _ => SettingValue::Unknown,
    };
    if name.trim().eq_ignore_ascii_case("application_name") {
        // SET application_name is rewritten by the proxy to keep the
        // developer's label; set_config would replace it (SPEC §2).
        return held("of application_name would replace the developer's label upstream; use SET application_name");
    }
    check_setting(&name, &value).map(|(class, reason)| (class, format!("set_config: {reason}")))
}

impl Visitor for Walker<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if !q.locks.is_empty() {
            self.out.hold(
                StatementClass::Write,
                "SELECT … FOR UPDATE/SHARE takes row locks".to_string(),
            );
        }
        if q.for_clause.is_some()
            || q.settings.is_some()
            || q.format_clause.is_some()
            || !q.pipe_operators.is_empty()
        {
            self.out.hold(
                StatementClass::Unknown,
                "query uses syntax that is not PostgreSQL".to_string(),
            );
        }
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.cte_names.push(ident_name(&cte.alias.name));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<()> {
        self.settings_row.push(pg_settings_row(s));
        if s.into.is_some() {
            self.out.hold(
                StatementClass::Ddl,
                "SELECT … INTO creates a table".to_string(),
            );
        }
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, _s: &Select) -> ControlFlow<()> {
        self.settings_row.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, st: &Statement) -> ControlFlow<()> {
        self.depth += 1;
        let (class, what) = statement_class(st);
        // A nested query (CREATE RULE … DO SELECT) is walked like any other.
        if self.depth >= 2 && class != StatementClass::Read {
            self.out.hold(
                class,
                format!("{what} inside a WITH clause or sub-query modifies data"),
            );
        }
        ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, _st: &Statement) -> ControlFlow<()> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }

    fn pre_visit_order_by_expr(&mut self, o: &OrderByExpr) -> ControlFlow<()> {
        // `ORDER BY x USING OPERATOR(schema.<)`: like a binary operator.
        if let Some(OrderBySort::Using(name)) = &o.options.sort {
            let ok = match object_name_parts(name).as_deref() {
                Some([_]) => true,
                Some([schema, _]) => schema == "pg_catalog",
                _ => false,
            };
            if !ok {
                self.out.hold(
                    StatementClass::Write,
                    format!("sort operator {name} is not a pg_catalog operator"),
                );
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        match t {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => {
                // `FROM f(…)`: a set-returning function call, not a table.
                self.function_name(name, None);
                self.skip_next_relation = true;
            }
            TableFactor::Function { name, .. } => self.function_name(name, None),
            TableFactor::SemanticView { .. } | TableFactor::MatchRecognize { .. } => {
                self.out.hold(
                    StatementClass::Unknown,
                    "query uses syntax that is not PostgreSQL".to_string(),
                );
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, r: &ObjectName) -> ControlFlow<()> {
        if std::mem::take(&mut self.skip_next_relation) {
            return ControlFlow::Continue(());
        }
        let name = object_name_string(r);
        if r.0.len() == 1 && self.cte_names.contains(&name) {
            return ControlFlow::Continue(());
        }
        self.out.tables.push(name);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            Expr::Function(f) => {
                // `SELECT set_config(…)` arguments are checked as a whole; the
                // argument expressions are still visited for nested calls.
                self.function_name(&f.name, Some(f));
                if f.parameters != FunctionArguments::None {
                    self.out.hold(
                        StatementClass::Unknown,
                        "function call with parameters is not PostgreSQL".to_string(),
                    );
                }
            }
            Expr::BinaryOp { op, .. } => self.operator(op),
            Expr::AnyOp { compare_op, .. } | Expr::AllOp { compare_op, .. } => {
                self.operator(compare_op)
            }
            Expr::In {
                target:
                    InTarget::Table {
                        name,
                        args: Some(_),
                    },
                ..
            } => {
                self.function_name(name, None);
                self.skip_next_relation = true;
            }
            Expr::Lambda(_) | Expr::MatchAgainst { .. } | Expr::Prior(_) | Expr::OuterJoin(_) => {
                self.out.hold(
                    StatementClass::Unknown,
                    "expression syntax that is not PostgreSQL".to_string(),
                );
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}
