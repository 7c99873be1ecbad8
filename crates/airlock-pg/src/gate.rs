//! The per-session judge for protected targets: decides, message by message,
//! whether what the client sent may pass unreviewed. It remembers which
//! prepared statements (protocol-level and SQL `PREPARE`, one namespace in
//! Postgres) are reads, so `Bind`/`EXECUTE` of a known read passes. No I/O.

use crate::frame::FunctionCall;
use airlock_sql::{Classifier, StatementClass};
use std::collections::HashSet;
use std::sync::Arc;

/// The verdict on one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Forward it.
    Pass,
    /// Do not run it.
    Hold {
        /// The SQL text (empty for messages without SQL).
        sql: String,
        /// Class of the statement.
        class: StatementClass,
        /// Why it may not pass.
        reasons: Vec<String>,
    },
}

impl Judgement {
    fn hold_without_sql(class: StatementClass, reason: impl Into<String>) -> Self {
        Judgement::Hold {
            sql: String::new(),
            class,
            reasons: vec![reason.into()],
        }
    }
}

/// Most read-only prepared statements remembered per session.
pub const MAX_KNOWN_READS: usize = 10_000;

/// Session state of the judge.
pub struct Gate {
    classifier: Arc<Classifier>,
    known_reads: HashSet<Vec<u8>>,
    unnamed_is_read: bool,
    /// The target's catalog of objects that run user code (protected targets).
    catalog: Option<Arc<crate::catalog::CatalogCell>>,
    /// Statement names released by `DEALLOCATE`/`DISCARD ALL` since the
    /// relay last asked (`*` = all).
    deallocated: Vec<Vec<u8>>,
    /// The last judged text was one `DEALLOCATE name` of a name no read
    /// Parse or `PREPARE` had made known (so only a kept-back Parse, which
    /// never reached the upstream, can hold it).
    sole_deallocate_of_unknown: Option<Vec<u8>>,
    /// Where judged statements are counted (metrics), with the target's name.
    tally: Option<(airlock_metrics::Metrics, String)>,
}

impl Gate {
    /// A judge for one session.
    pub fn new(classifier: Arc<Classifier>) -> Self {
        Self {
            classifier,
            known_reads: HashSet::new(),
            unnamed_is_read: false,
            catalog: None,
            deallocated: Vec::new(),
            sole_deallocate_of_unknown: None,
            tally: None,
        }
    }

    /// Counts judged statements of target `target` in `metrics`.
    pub fn with_metrics(mut self, metrics: airlock_metrics::Metrics, target: &str) -> Self {
        self.tally = Some((metrics, target.to_string()));
        self
    }

    fn counted(&self, j: Judgement) -> Judgement {
        if let Some((m, target)) = &self.tally {
            match &j {
                Judgement::Pass => m.statement(target, false, "read"),
                Judgement::Hold { class, .. } => m.statement(target, true, class.as_str()),
            }
        }
        j
    }

    /// Names released by `DEALLOCATE`/`DISCARD ALL` since the last call (`*` = all).
    pub fn take_deallocated(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.deallocated)
    }

    /// The name, when the last judged text was a lone `DEALLOCATE name` of
    /// a statement the gate did not know as a read.
    pub fn sole_deallocate_of_unknown(&self) -> Option<&[u8]> {
        self.sole_deallocate_of_unknown.as_deref()
    }

    /// Whether Postgres may parse and describe `sql` (a held write) without
    /// running user code: one DML statement by both parsers' reading, the
    /// target's catalog is loaded and the text reaches none of it (parse
    /// analysis runs type input functions).
    pub fn parse_is_inert(&self, sql: &str) -> bool {
        airlock_sql::pg_view::is_single_dml(sql)
            && self
                .catalog
                .as_ref()
                .and_then(|c| c.get())
                .is_some_and(|r| r.findings(sql).is_empty())
    }

    /// Also holds what can reach user code through the target's catalog.
    pub fn with_catalog(mut self, catalog: Option<Arc<crate::catalog::CatalogCell>>) -> Self {
        self.catalog = catalog;
        self
    }

    /// Reasons the target's catalog gives to hold `text`, which the
    /// classifier let pass; before the catalog is loaded, anything that reads
    /// a relation or calls anything is held.
    fn catalog_reasons(&self, text: &str, c: &airlock_sql::Classification) -> Vec<String> {
        let Some(cell) = &self.catalog else {
            return Vec::new();
        };
        match cell.get() {
            Some(risks) => risks.findings(text),
            None if !c.tables.is_empty() || text.contains('(') || text.contains("::") => {
                vec!["the target's catalog (user functions, operators, types, views) is not loaded yet".to_string()]
            }
            None => Vec::new(),
        }
    }

    /// Whether `c` is held only for calls of functions the target trusts
    /// (`trusted_functions`, as its loaded catalog resolved them).
    fn trusts(&self, c: &airlock_sql::Classification) -> bool {
        c.held_only_for_calls
            && self
                .catalog
                .as_ref()
                .and_then(|cell| cell.get())
                .is_some_and(|risks| risks.trusts(c))
    }

    /// Judges SQL text (a simple Query or the text of a Parse).
    fn judge_sql(&mut self, sql: &[u8]) -> Judgement {
        self.sole_deallocate_of_unknown = None;
        let Ok(text) = std::str::from_utf8(sql) else {
            return Judgement::Hold {
                sql: String::from_utf8_lossy(sql).into_owned(),
                class: StatementClass::Unknown,
                reasons: vec!["statement text is not valid UTF-8".into()],
            };
        };
        let c = self.classifier.classify(text);
        let unknown: Vec<&String> = c
            .executes
            .iter()
            .filter(|n| !self.known_reads.contains(n.as_bytes()))
            .collect();
        let read_only = c.read_only || self.trusts(&c);
        if !read_only || !unknown.is_empty() {
            let mut reasons = c.reasons.clone();
            reasons.extend(
                unknown.into_iter().map(|n| {
                    format!("EXECUTE {n}: not a prepared statement known to be read-only")
                }),
            );
            return Judgement::Hold {
                sql: text.to_string(),
                class: if c.read_only {
                    StatementClass::Unknown
                } else {
                    c.class
                },
                reasons,
            };
        }
        let from_catalog = self.catalog_reasons(text, &c);
        if !from_catalog.is_empty() {
            return Judgement::Hold {
                sql: text.to_string(),
                class: StatementClass::Unknown,
                reasons: from_catalog,
            };
        }
        self.sole_deallocate_of_unknown = match (c.statement_count, c.deallocates.as_slice()) {
            (1, [name]) if name != "*" && !self.known_reads.contains(name.as_bytes()) => {
                Some(name.as_bytes().to_vec())
            }
            _ => None,
        };
        for name in &c.deallocates {
            self.deallocated.push(name.as_bytes().to_vec());
            if name == "*" {
                self.known_reads.clear();
            } else {
                self.known_reads.remove(name.as_bytes());
            }
        }
        for name in &c.prepares {
            self.remember_read(name.as_bytes());
        }
        Judgement::Pass
    }

    /// Remembers a read-only prepared statement, up to [`MAX_KNOWN_READS`]:
    /// over the bound the name is not remembered, so executing it is held
    /// (the session holds rather than grows).
    fn remember_read(&mut self, name: &[u8]) {
        if self.known_reads.len() < MAX_KNOWN_READS || self.known_reads.contains(name) {
            self.known_reads.insert(name.to_vec());
        }
    }

    /// Judges a simple Query message's SQL.
    pub fn query(&mut self, sql: &[u8]) -> Judgement {
        let j = self.judge_sql(sql);
        self.counted(j)
    }

    /// Judges a Parse message and remembers the statement's class.
    pub fn parse(&mut self, name: &[u8], sql: &[u8]) -> Judgement {
        self.parse_typed(name, sql, &[])
    }

    /// [`Gate::parse`] with the Parse's declared parameter types: a
    /// parameter of a type whose input or checks run user code is held.
    pub fn parse_typed(&mut self, name: &[u8], sql: &[u8], types: &[u32]) -> Judgement {
        let j = self.parse_judged(name, sql, types);
        self.counted(j)
    }

    fn parse_judged(&mut self, name: &[u8], sql: &[u8], types: &[u32]) -> Judgement {
        let risky_types = self
            .catalog
            .as_ref()
            .and_then(|c| c.get())
            .is_some_and(|r| r.risky_parameter_types(types));
        let verdict = if risky_types {
            Judgement::Hold {
                sql: String::from_utf8_lossy(sql).into_owned(),
                class: StatementClass::Unknown,
                reasons: vec![
                    "a parameter is declared with a type whose input or checks run user code on this target".to_string(),
                ],
            }
        } else {
            self.judge_sql(sql)
        };
        let is_read = verdict == Judgement::Pass;
        if name.is_empty() {
            self.unnamed_is_read = is_read;
        } else if is_read {
            self.remember_read(name);
        } else {
            self.known_reads.remove(name);
        }
        verdict
    }

    /// Judges a Bind to a prepared statement.
    pub fn bind(&self, statement: &[u8]) -> Judgement {
        let known = if statement.is_empty() {
            self.unnamed_is_read
        } else {
            self.known_reads.contains(statement)
        };
        if known {
            Judgement::Pass
        } else {
            Judgement::hold_without_sql(
                StatementClass::Unknown,
                format!(
                    "Bind to prepared statement {:?} that is not known to be read-only",
                    String::from_utf8_lossy(statement)
                ),
            )
        }
    }

    /// Forgets a statement closed by a Close message.
    pub fn close_statement(&mut self, name: &[u8]) {
        if name.is_empty() {
            self.unnamed_is_read = false;
        } else {
            self.known_reads.remove(name);
        }
    }

    /// The verdict on a FunctionCall message. Only the built-in large-object
    /// read functions pass (pg_dump reads large objects this way); `lo_open`
    /// only without the write bit. Built-in OIDs are fixed below 10000 and
    /// cannot be taken by user functions.
    pub fn function_call(&self, call: Option<&FunctionCall<'_>>) -> Judgement {
        const INV_WRITE: i64 = 0x0002_0000;
        let passes = call.is_some_and(|c| match c.oid {
            // lo_close, loread, lo_lseek, lo_tell, lo_lseek64, lo_tell64
            953 | 954 | 956 | 958 | 3170 | 3171 => true,
            // lo_open(oid, mode)
            952 => c.int_arg(1).is_some_and(|mode| mode & INV_WRITE == 0),
            _ => false,
        });
        if passes {
            return Judgement::Pass;
        }
        Judgement::hold_without_sql(
            StatementClass::Unknown,
            match call {
                Some(c) => format!(
                    "FunctionCall of function OID {}: only the large-object read functions pass on a protected target",
                    c.oid
                ),
                None => "malformed FunctionCall message".to_string(),
            },
        )
    }

    /// The verdict on a message type the proxy does not know.
    pub fn unknown_message(&self, tag: u8) -> Judgement {
        Judgement::hold_without_sql(
            StatementClass::Unknown,
            format!("unknown protocol message type {:?}", tag as char),
        )
    }

    /// The verdict on an extended batch over the size cap.
    pub fn oversized(&self, cap: usize) -> Judgement {
        Judgement::hold_without_sql(
            StatementClass::Unknown,
            format!("extended-protocol batch larger than server.max_batch_bytes ({cap} bytes)"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        Gate::new(Arc::new(Classifier::new(100)))
    }

    #[test]
    fn reads_pass_writes_hold() {
        let mut g = gate();
        assert_eq!(g.query(b"SELECT 1"), Judgement::Pass);
        assert!(matches!(
            g.query(b"DELETE FROM t"),
            Judgement::Hold {
                class: StatementClass::Write,
                ..
            }
        ));
        assert!(matches!(g.query(b"\xff\xfe"), Judgement::Hold { .. }));
    }

    #[test]
    fn known_reads_are_bounded_and_over_the_bound_binds_hold() {
        let mut g = gate();
        for i in 0..MAX_KNOWN_READS {
            assert_eq!(
                g.parse(format!("s{i}").as_bytes(), b"SELECT 1"),
                Judgement::Pass
            );
        }
        assert_eq!(g.parse(b"one_more", b"SELECT 1"), Judgement::Pass);
        assert_eq!(g.known_reads.len(), MAX_KNOWN_READS);
        assert!(matches!(g.bind(b"one_more"), Judgement::Hold { .. }));
        assert_eq!(g.bind(b"s0"), Judgement::Pass);
    }

    #[test]
    fn a_catalog_holds_what_reaches_user_code_and_typed_parameters() {
        let cell = Arc::new(crate::catalog::CatalogCell::default());
        let mut g = gate().with_catalog(Some(cell.clone()));
        // Not loaded yet: reads of relations are held, plain settings pass.
        assert!(matches!(
            g.query(b"SELECT * FROM t"),
            Judgement::Hold { .. }
        ));
        assert_eq!(g.query(b"SET search_path = public"), Judgement::Pass);
        let mut risks = airlock_sql::CatalogRisks::default();
        risks.relations.insert("v_bump".into());
        risks.type_oids.insert(16_500);
        cell.set(risks);
        assert_eq!(g.query(b"SELECT * FROM t"), Judgement::Pass);
        assert!(matches!(
            g.query(b"SELECT * FROM v_bump"),
            Judgement::Hold { .. }
        ));
        assert!(matches!(
            g.parse_typed(b"p", b"SELECT $1", &[16_500]),
            Judgement::Hold { .. }
        ));
        assert_eq!(g.parse_typed(b"q", b"SELECT $1", &[23]), Judgement::Pass);
    }

    #[test]
    fn calls_of_trusted_functions_pass_once_the_catalog_resolves_them() {
        let cell = Arc::new(crate::catalog::CatalogCell::default());
        let mut g = gate().with_catalog(Some(cell.clone()));
        let trusted = |g: &mut Gate, sql: &[u8]| g.query(sql) == Judgement::Pass;
        assert!(!trusted(&mut g, b"SELECT safe_total(1)"), "not loaded yet");
        let mut risks = airlock_sql::CatalogRisks::default();
        crate::catalog::trust_functions(
            &mut risks,
            &[
                ("report".into(), "safe_total".into()),
                ("public".into(), "bump".into()),
            ],
            &HashSet::new(),
            &[airlock_core::TrustedFunction::parse("report.safe_total").expect("valid")],
        );
        cell.set(risks);
        assert!(trusted(&mut g, b"SELECT safe_total(1)"));
        assert!(trusted(&mut g, b"SELECT report.safe_total(id) FROM t"));
        assert!(trusted(&mut g, b"PREPARE p AS SELECT safe_total(2)"));
        assert!(
            trusted(&mut g, b"EXECUTE p"),
            "the trusted PREPARE is a known read"
        );
        for held in [
            &b"SELECT bump()"[..],
            b"SELECT safe_total(1), bump()",
            b"SELECT public.safe_total(1)",
            b"SELECT safe_total(1); DELETE FROM t",
        ] {
            assert!(!trusted(&mut g, held), "{}", String::from_utf8_lossy(held));
        }
    }

    #[test]
    fn named_statements_are_remembered() {
        let mut g = gate();
        assert_eq!(g.parse(b"s1", b"SELECT $1::int"), Judgement::Pass);
        assert_eq!(g.bind(b"s1"), Judgement::Pass);
        assert!(matches!(
            g.parse(b"s2", b"UPDATE t SET a = $1"),
            Judgement::Hold { .. }
        ));
        assert!(matches!(g.bind(b"s2"), Judgement::Hold { .. }));
        assert!(matches!(g.bind(b"never"), Judgement::Hold { .. }));
        g.close_statement(b"s1");
        assert!(matches!(g.bind(b"s1"), Judgement::Hold { .. }));
    }

    #[test]
    fn unnamed_statement_follows_the_last_parse() {
        let mut g = gate();
        assert!(matches!(g.bind(b""), Judgement::Hold { .. }));
        assert_eq!(g.parse(b"", b"SELECT 1"), Judgement::Pass);
        assert_eq!(g.bind(b""), Judgement::Pass);
        assert!(matches!(
            g.parse(b"", b"DELETE FROM t"),
            Judgement::Hold { .. }
        ));
        assert!(matches!(g.bind(b""), Judgement::Hold { .. }));
    }

    #[test]
    fn only_large_object_reads_pass_as_function_calls() {
        let g = gate();
        let call = |oid, mode: i32| FunctionCall {
            oid,
            args: vec![
                (true, Some(&[0, 0, 64, 1][..])),
                (true, Some(Box::leak(Box::new(mode.to_be_bytes())))),
            ],
        };
        assert_eq!(g.function_call(Some(&call(952, 0x40000))), Judgement::Pass);
        assert!(matches!(
            g.function_call(Some(&call(952, 0x60000))),
            Judgement::Hold { .. }
        ));
        assert_eq!(g.function_call(Some(&call(954, 0))), Judgement::Pass);
        for write in [955, 957, 715, 964, 1004, 1] {
            assert!(matches!(
                g.function_call(Some(&call(write, 0))),
                Judgement::Hold { .. }
            ));
        }
        assert!(matches!(g.function_call(None), Judgement::Hold { .. }));
    }

    #[test]
    fn sql_prepare_and_execute_share_the_namespace() {
        let mut g = gate();
        assert!(matches!(g.query(b"EXECUTE p"), Judgement::Hold { .. }));
        assert_eq!(g.query(b"PREPARE p AS SELECT 1"), Judgement::Pass);
        assert_eq!(g.query(b"EXECUTE p"), Judgement::Pass);
        assert_eq!(g.bind(b"p"), Judgement::Pass);
        assert!(matches!(
            g.query(b"PREPARE w AS DELETE FROM t"),
            Judgement::Hold { .. }
        ));
        assert!(matches!(g.query(b"EXECUTE w"), Judgement::Hold { .. }));
        assert_eq!(g.query(b"DEALLOCATE ALL"), Judgement::Pass);
        assert!(matches!(g.query(b"EXECUTE p"), Judgement::Hold { .. }));
    }
}
