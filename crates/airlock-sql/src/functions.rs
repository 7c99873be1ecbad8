//! The read-only function allow-list, and how a function name is resolved.
//!
//! A call passes only when its (resolved) name is on one of the lists below.
//! Anything else — user functions, extension functions, unknown names, and the
//! known side-effecting built-ins — is held. Names are matched the way Postgres
//! resolves them: unquoted identifiers fold to lower case, quoted ones are
//! exact; `pg_catalog.f` is `f`; `information_schema.f` is checked against the
//! `information_schema` helpers; any other schema (or a catalog-qualified
//! name) is a user function and is held.
//!
//! Known limitation (documented, defended by the read-only upstream session):
//! a name is checked, not an overload. A user who already created e.g.
//! `public.lower(mytype)` with side effects, an operator, a cast or a type I/O
//! function over their own type, or a function reachable through
//! attribute notation (`t.f`), is not detected here.

use crate::class::StatementClass;
use crate::functions_pg15::{INFORMATION_SCHEMA, PG_CATALOG_STABLE};
use crate::ident::object_name_parts;
use sqlparser::ast::ObjectName;

/// SQL-standard forms that sqlparser reports as function calls but that are
/// grammar constructs in Postgres (or functions with reserved names). All are
/// pure expressions or read session state.
const SQL_SPECIAL: &[&str] = &[
    "array",
    "coalesce",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "exists",
    "greatest",
    "grouping",
    "least",
    "localtime",
    "localtimestamp",
    "nullif",
    "row",
    "system_user",
    "user",
    "xmlconcat",
    "xmlelement",
    "xmlforest",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
];

/// VOLATILE built-ins that nevertheless change nothing: reading tools and
/// dashboards call them. Each family and why it is safe:
const VOLATILE_READS: &[&str] = &[
    // Clocks and randomness: volatile only because the value changes between
    // calls; no state outside the session is touched (setseed only seeds this
    // session's generator).
    "clock_timestamp",
    "gen_random_uuid",
    "random",
    "setseed",
    "timeofday",
    // Sleeping holds no locks beyond what the query already holds.
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    // Reading the current session's sequence state (does not advance it).
    "currval",
    "lastval",
    "pg_sequence_last_value",
    // The text of the running query.
    "current_query",
    // Sizes read the file system sizes of relations (DBeaver, \l+, \dt+).
    "pg_database_size",
    "pg_indexes_size",
    "pg_relation_size",
    "pg_table_size",
    "pg_tablespace_size",
    "pg_total_relation_size",
    // Recovery / WAL position probes (pg_dump calls pg_is_in_recovery).
    "pg_current_wal_flush_lsn",
    "pg_current_wal_insert_lsn",
    "pg_current_wal_lsn",
    "pg_get_wal_replay_pause_state",
    "pg_is_in_recovery",
    "pg_is_wal_replay_paused",
    "pg_last_wal_receive_lsn",
    "pg_last_wal_replay_lsn",
    "pg_last_xact_replay_timestamp",
    // Lock and activity monitoring views (pg_locks, pg_prepared_xacts…).
    "pg_blocking_pids",
    "pg_isolation_test_session_is_blocked",
    "pg_lock_status",
    "pg_prepared_xact",
    "pg_safe_snapshot_blocking_pids",
    // Transaction status lookups (read the commit log, assign nothing).
    "pg_last_committed_xact",
    "pg_xact_commit_timestamp",
    "pg_xact_commit_timestamp_origin",
    "pg_xact_status",
    "txid_status",
    // Statistics and catalogs exposed as functions (read-only views).
    "pg_control_checkpoint",
    "pg_control_init",
    "pg_control_recovery",
    "pg_control_system",
    "pg_get_backend_memory_contexts",
    "pg_get_multixact_members",
    "pg_get_shmem_allocations",
    "pg_get_wal_resource_managers",
    "pg_hba_file_rules",
    "pg_ident_file_mappings",
    "pg_jit_available",
    "pg_notification_queue_usage",
    "pg_partition_ancestors",
    "pg_partition_tree",
    "pg_show_all_file_settings",
    "pg_show_replication_origin_status",
    "pg_stat_get_recovery_prefetch",
    "pg_stat_get_xact_blocks_fetched",
    "pg_stat_get_xact_blocks_hit",
    "pg_stat_get_xact_function_calls",
    "pg_stat_get_xact_function_self_time",
    "pg_stat_get_xact_function_total_time",
    "pg_stat_get_xact_numscans",
    "pg_stat_get_xact_tuples_deleted",
    "pg_stat_get_xact_tuples_fetched",
    "pg_stat_get_xact_tuples_hot_updated",
    "pg_stat_get_xact_tuples_inserted",
    "pg_stat_get_xact_tuples_returned",
    "pg_stat_get_xact_tuples_updated",
    "pg_stat_have_stats",
    "pg_collation_actual_version",
    "pg_database_collation_actual_version",
    // pg_dump -j: the leader exports its snapshot so workers can share it; it
    // writes a snapshot file for the lifetime of the transaction only, and is
    // allowed in read-only transactions and on standbys.
    "pg_export_snapshot",
];

/// Built-ins that are known to have side effects, with the class they get.
/// Not needed for safety (anything off the allow-lists is held) but gives a
/// better class and message.
fn known_side_effect(name: &str) -> Option<(StatementClass, &'static str)> {
    use StatementClass::*;
    let hit = match name {
        "nextval" | "setval" => (Write, "advances or sets a sequence"),
        "txid_current" | "pg_current_xact_id" => (Write, "assigns a transaction id"),
        "pg_logical_emit_message" => (Write, "writes a WAL message"),
        "brin_summarize_new_values" | "brin_summarize_range" | "brin_desummarize_range" => {
            (Write, "modifies a BRIN index")
        }
        "gin_clean_pending_list" => (Admin, "modifies a GIN index"),
        "pg_notify" => (Admin, "sends a notification to other sessions"),
        "set_config" => (Session, "changes a setting"),
        "pg_terminate_backend" | "pg_cancel_backend" => (Admin, "signals another backend"),
        "pg_reload_conf"
        | "pg_rotate_logfile"
        | "pg_rotate_logfile_old"
        | "pg_switch_wal"
        | "pg_promote"
        | "pg_create_restore_point"
        | "pg_backup_start"
        | "pg_backup_stop"
        | "pg_wal_replay_pause"
        | "pg_wal_replay_resume"
        | "pg_log_backend_memory_contexts"
        | "pg_import_system_collations"
        | "pg_stat_clear_snapshot"
        | "pg_stat_force_next_flush"
        | "pg_nextoid"
        | "pg_stop_making_pinned_objects" => (Admin, "is a server administration function"),
        "pg_read_file"
        | "pg_read_file_old"
        | "pg_read_binary_file"
        | "pg_stat_file"
        | "pg_ls_dir"
        | "pg_ls_logdir"
        | "pg_ls_waldir"
        | "pg_ls_tmpdir"
        | "pg_ls_archive_statusdir"
        | "pg_ls_logicalmapdir"
        | "pg_ls_logicalsnapdir"
        | "pg_ls_replslotdir"
        | "pg_current_logfile" => (Admin, "accesses the server file system"),
        "query_to_xml"
        | "query_to_xml_and_xmlschema"
        | "query_to_xmlschema"
        | "cursor_to_xml"
        | "cursor_to_xmlschema"
        | "table_to_xml"
        | "table_to_xml_and_xmlschema"
        | "table_to_xmlschema"
        | "schema_to_xml"
        | "schema_to_xml_and_xmlschema"
        | "schema_to_xmlschema"
        | "database_to_xml"
        | "database_to_xml_and_xmlschema"
        | "database_to_xmlschema"
        | "ts_stat"
        | "ts_rewrite" => (Unknown, "runs SQL given as text, which cannot be analysed"),
        "pg_extension_config_dump" | "binary_upgrade_create_empty_extension" => {
            (Ddl, "changes catalog entries")
        }
        n if n.starts_with("binary_upgrade_") => (Admin, "is a pg_upgrade internal"),
        n if n.starts_with("lo_") || n == "loread" || n == "lowrite" => (
            Write,
            "accesses large objects (lo_* functions create, change or export data)",
        ),
        n if n.starts_with("pg_advisory") || n.starts_with("pg_try_advisory") => {
            (Admin, "takes or releases an advisory lock")
        }
        n if n.starts_with("pg_stat_reset") => (Admin, "resets statistics"),
        n if n.contains("replication_slot")
            || n.starts_with("pg_replication_origin")
            || n.starts_with("pg_logical_slot") =>
        {
            (Admin, "manages replication state")
        }
        n if n.starts_with("dblink") => (Write, "runs SQL on another server"),
        _ => return None,
    };
    Some(hit)
}

fn sorted_contains(list: &[&str], name: &str) -> bool {
    list.binary_search(&name).is_ok()
}

/// True if an unqualified (or `pg_catalog.`-qualified) function name is on the read-only allow-list.
pub fn is_allowed_builtin(name: &str) -> bool {
    if known_side_effect(name).is_some() {
        return false;
    }
    sorted_contains(PG_CATALOG_STABLE, name)
        || sorted_contains(SQL_SPECIAL, name)
        || VOLATILE_READS.contains(&name)
}

/// True if `information_schema.<name>` is one of its read-only functions.
pub(crate) fn is_information_schema_function(name: &str) -> bool {
    sorted_contains(INFORMATION_SCHEMA, name)
}

/// The outcome of checking one function name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FnCheck {
    /// On the allow-list.
    Allowed,
    /// `set_config` (unqualified or `pg_catalog.`): the caller checks its arguments.
    SetConfig,
    /// Held, with a class and a reason.
    Held(StatementClass, String),
    /// Held only for not being on the allow-list (a user function, as far
    /// as the name tells): the name parts and the reason. A target may
    /// trust it (`trusted_functions`).
    Unlisted(Vec<String>, String),
}

/// Check a function name as written in a call.
pub(crate) fn check_function(name: &ObjectName) -> FnCheck {
    let Some(parts) = object_name_parts(name) else {
        return FnCheck::Held(
            StatementClass::Unknown,
            format!("function {name} has an unsupported name form"),
        );
    };
    let display = parts.join(".");
    let (schema, func) = match parts.as_slice() {
        [f] => (None, f.as_str()),
        [s, f] => (Some(s.as_str()), f.as_str()),
        _ => {
            return FnCheck::Held(
                StatementClass::Write,
                format!("function {display} is not on the read-only allow-list"),
            )
        }
    };
    match schema {
        None | Some("pg_catalog") => {
            if func == "set_config" {
                return FnCheck::SetConfig;
            }
            if is_allowed_builtin(func) {
                return FnCheck::Allowed;
            }
            if let Some((class, why)) = known_side_effect(func) {
                return FnCheck::Held(class, format!("function {display} {why}"));
            }
            let reason = format!("function {display} is not on the read-only allow-list");
            if schema.is_none() {
                FnCheck::Unlisted(parts.clone(), reason)
            } else {
                FnCheck::Held(StatementClass::Write, reason)
            }
        }
        Some("information_schema") if sorted_contains(INFORMATION_SCHEMA, func) => {
            FnCheck::Allowed
        }
        Some("information_schema") => FnCheck::Held(
            StatementClass::Write,
            format!("function {display} is not on the read-only allow-list"),
        ),
        Some(_) => FnCheck::Unlisted(
            parts.clone(),
            format!("function {display} is not on the read-only allow-list (user-defined functions may modify data)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ObjectName {
        use sqlparser::dialect::PostgreSqlDialect;
        use sqlparser::parser::Parser;
        let mut p = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(s)
            .expect("tokens");
        p.parse_object_name(false).expect("name")
    }

    #[test]
    fn lists_are_sorted_and_unique() {
        for list in [PG_CATALOG_STABLE, SQL_SPECIAL, INFORMATION_SCHEMA] {
            for w in list.windows(2) {
                assert!(w[0] < w[1], "{} !< {}", w[0], w[1]);
            }
        }
    }

    #[test]
    fn no_side_effecting_name_is_allowed() {
        for n in PG_CATALOG_STABLE.iter().chain(VOLATILE_READS) {
            if let Some((c, why)) = known_side_effect(n) {
                if *n != "set_config" {
                    assert!(!is_allowed_builtin(n), "{n} allowed but {c} {why}");
                }
            }
        }
    }

    #[test]
    fn resolution() {
        assert_eq!(check_function(&name("lower")), FnCheck::Allowed);
        assert_eq!(check_function(&name("LOWER")), FnCheck::Allowed);
        assert_eq!(check_function(&name("pg_catalog.lower")), FnCheck::Allowed);
        assert_eq!(
            check_function(&name("\"pg_catalog\".\"lower\"")),
            FnCheck::Allowed
        );
        assert!(matches!(
            check_function(&name("\"LOWER\"")),
            FnCheck::Unlisted(parts, _) if parts == ["LOWER"]
        ));
        assert!(matches!(
            check_function(&name("public.lower")),
            FnCheck::Unlisted(parts, _) if parts == ["public", "lower"]
        ));
        assert!(matches!(
            check_function(&name("db.pg_catalog.lower")),
            FnCheck::Held(..)
        ));
        assert_eq!(
            check_function(&name("information_schema._pg_expandarray")),
            FnCheck::Allowed
        );
        assert!(matches!(
            check_function(&name("_pg_expandarray")),
            FnCheck::Unlisted(parts, _) if parts == ["_pg_expandarray"]
        ));
        assert!(matches!(
            check_function(&name("pg_catalog.nextval")),
            FnCheck::Held(StatementClass::Write, _)
        ));
        assert!(matches!(
            check_function(&name("pg_terminate_backend")),
            FnCheck::Held(StatementClass::Admin, _)
        ));
        assert_eq!(
            check_function(&name("pg_catalog.set_config")),
            FnCheck::SetConfig
        );
        assert!(matches!(
            check_function(&name("txid_current")),
            FnCheck::Held(StatementClass::Write, _)
        ));
        assert_eq!(
            check_function(&name("txid_current_if_assigned")),
            FnCheck::Allowed
        );
        assert_eq!(check_function(&name("now")), FnCheck::Allowed);
        assert_eq!(check_function(&name("pg_sleep")), FnCheck::Allowed);
    }
}
