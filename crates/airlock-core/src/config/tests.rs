//! Loading, validating and resolving configs.

use super::*;
use std::time::Duration;

struct NoSecrets;
impl SecretReader for NoSecrets {
    fn env(&self, name: &str) -> Option<String> {
        (name == "SET_VAR").then(|| "s3cret".to_string())
    }
    fn file(&self, path: &Path) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} not found", path.display()),
        ))
    }
}

const VERIFIER: &str = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy";

fn good() -> String {
    format!(
        r#"
[[families]]
name = "orders"
environments = ["dev", "prod"]

[[users]]
name = "alice"
groups = ["developers"]
scram_verifier = "{VERIFIER}"

[[targets]]
name = "orders-prod"
family = "orders"
environment = "prod"
protected = true
allowed_groups = ["developers"]
upstream = {{ host = "127.0.0.1", database = "orders" }}
read_credentials = {{ user = "reader", password_env = "SET_VAR" }}
"#
    )
}

#[test]
fn loads_a_good_config_and_resolves_secrets() {
    let c = Config::load(&good(), Path::new("/etc/airlock"), &NoSecrets).expect("valid");
    let t = c.target("orders-prod").expect("target");
    assert!(t.protected && t.read_only_backstop);
    assert_eq!(t.upstream_port(), 5432);
    let creds = t.session_credentials().expect("creds");
    assert_eq!(creds.password.as_deref(), Some("s3cret"));
    assert!(!format!("{creds:?}").contains("s3cret"));
}

#[test]
fn reports_every_problem_with_its_path() {
    let text = good()
        .replace("\"prod\"\nprotected", "\"staging\"\nprotected")
        .replace("SET_VAR", "UNSET_VAR")
        .replace(VERIFIER, "md5abc")
        + "\n[server]\npostgres_listen = \"nope\"\n";
    let err = Config::load(&text, Path::new("/"), &NoSecrets).expect_err("invalid");
    let paths: Vec<String> = err.problems().into_iter().map(|p| p.path).collect();
    assert_eq!(
        paths,
        vec![
            "server.postgres_listen",
            "users[0].scram_verifier",
            "targets[0].environment",
            "targets[0].read_credentials.password_env",
        ]
    );
}

#[test]
fn unknown_keys_and_bad_durations_are_syntax_errors() {
    let err = Config::load("[server]\nlisten = 1\n", Path::new("/"), &NoSecrets)
        .expect_err("unknown key");
    assert!(err.to_string().contains("listen"), "{err}");
    let err = Config::load(
        "[server]\nshutdown_grace = \"soon\"\n",
        Path::new("/"),
        &NoSecrets,
    )
    .expect_err("bad duration");
    assert!(err.to_string().contains("soon"), "{err}");
}

#[test]
fn trusted_functions_are_schema_qualified_user_functions_on_protected_targets() {
    let with = |list: &str| {
        good().replace(
            "read_credentials = {",
            &format!("trusted_functions = {list}\nread_credentials = {{"),
        )
    };
    let c = Config::load(
        &with(r#"["report.total", "public.safe_fn"]"#),
        Path::new("/"),
        &NoSecrets,
    )
    .expect("valid");
    let t = c.target("orders-prod").expect("target");
    let names: Vec<String> = t.trusted().iter().map(|f| f.to_string()).collect();
    assert_eq!(names, ["report.total", "public.safe_fn"]);
    let err = Config::load(
        &with(r#"["total", "pg_catalog.lower", "public.safe_fn", "public.safe_fn"]"#),
        Path::new("/"),
        &NoSecrets,
    )
    .expect_err("invalid");
    let problems = err.problems();
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "targets[0].trusted_functions[0]",
            "targets[0].trusted_functions[1]",
            "targets[0].trusted_functions[3]"
        ]
    );
    assert!(
        problems[0].message.contains("with its schema"),
        "{problems:?}"
    );
    let unprotected = with(r#"["public.safe_fn"]"#)
        .replace("protected = true", "protected = false")
        .replace("read_credentials", "write_credentials");
    let err = Config::load(&unprotected, Path::new("/"), &NoSecrets).expect_err("invalid");
    assert!(err
        .problems()
        .iter()
        .any(|p| p.path == "targets[0].trusted_functions[0]" && p.message.contains("protected")));
}

#[test]
fn protected_target_without_read_credentials_is_a_problem() {
    let text = good().replace(
        "read_credentials = { user = \"reader\", password_env = \"SET_VAR\" }",
        "write_credentials = { user = \"writer\" }",
    );
    let err = Config::load(&text, Path::new("/"), &NoSecrets).expect_err("invalid");
    assert!(err
        .problems()
        .iter()
        .any(|p| p.path == "targets[0].read_credentials"));
}

fn with_policy() -> String {
    format!(
        r#"
[policy]
pending_expiry = "2h"
admin_groups = ["dba"]

[policy.classes.ddl]
approvals_required = 2

[[families]]
name = "orders"
environments = ["dev", "qa", "prod"]

[[users]]
name = "alice"
groups = ["developers"]
scram_verifier = "{VERIFIER}"

[[users]]
name = "bob"
groups = ["dba"]
scram_verifier = "{VERIFIER}"

[[users]]
name = "carol"
groups = ["dba"]
scram_verifier = "{VERIFIER}"

[[targets]]
name = "orders-prod"
family = "orders"
environment = "prod"
protected = true
allowed_groups = ["developers", "dba"]
upstream = {{ host = "127.0.0.1", database = "orders" }}
read_credentials = {{ user = "reader" }}

[targets.policy]
approver_groups = ["dba"]
require_reason = true
run_window = "30m"
review_channel = "C-orders"

[targets.policy.classes.privilege]
approvals_required = 2
max_rows = 0

[[targets]]
name = "orders-qa"
family = "orders"
environment = "qa"
protected = true
allowed_groups = ["developers", "dba"]
upstream = {{ host = "127.0.0.1", database = "orders_qa" }}
read_credentials = {{ user = "reader" }}
"#
    )
}

#[test]
fn policies_resolve_in_layers() {
    let c = Config::load(&with_policy(), Path::new("/"), &NoSecrets).expect("valid");
    let prod = c.target("orders-prod").expect("prod");
    let w = c.approval_policy(prod, StatementClass::Write);
    assert_eq!(w.approvals_required, 1);
    assert_eq!(w.approver_groups, vec!["dba"]);
    assert_eq!(w.admin_groups, vec!["dba"]);
    assert_eq!(w.pending_expiry, Duration::from_secs(7200));
    assert_eq!(w.run_window, Duration::from_secs(1800));
    assert!(w.require_reason);
    assert_eq!(w.review_channel.as_deref(), Some("C-orders"));
    // Global class override applies to every target.
    assert_eq!(
        c.approval_policy(prod, StatementClass::Ddl)
            .approvals_required,
        2
    );
    let p = c.approval_policy(prod, StatementClass::Privilege);
    assert_eq!((p.approvals_required, p.max_rows), (2, Some(0)));
    // Without approver groups, the target's allowed groups approve; defaults apply.
    let qa = c.target("orders-qa").expect("qa");
    let q = c.approval_policy(qa, StatementClass::Write);
    assert_eq!(q.approver_groups, vec!["developers", "dba"]);
    assert!(!q.require_reason);
    assert_eq!(q.run_window, ApprovalPolicy::default().run_window);
    assert_eq!(c.lower_environments("orders", "prod"), vec!["dev", "qa"]);
    assert!(c.lower_environments("orders", "dev").is_empty());
    assert!(c.lower_environments("nope", "prod").is_empty());
    assert!(c.policy("orders-prod", StatementClass::Write).is_some());
    assert!(c.policy("nope", StatementClass::Write).is_none());
}

#[test]
fn configs_without_policies_still_load() {
    let c = Config::load(&good(), Path::new("/"), &NoSecrets).expect("valid");
    let t = c.target("orders-prod").expect("target");
    let p = c.approval_policy(t, StatementClass::Write);
    assert_eq!(p.approvals_required, 1);
    assert_eq!(p.approver_groups, vec!["developers"]);
}

#[test]
fn policy_problems_have_key_paths() {
    let text = with_policy()
        .replace(
            "[policy.classes.ddl]\napprovals_required = 2",
            "[policy.classes.dml]\napprovals_required = 0",
        )
        .replace(
            "approver_groups = [\"dba\"]",
            "approver_groups = [\"dbas\"]",
        )
        .replace(
            "run_window = \"30m\"",
            "run_window = \"0s\"\nmax_rows_ratio = -1.0",
        );
    let err = Config::load(&text, Path::new("/"), &NoSecrets).expect_err("invalid");
    let paths: Vec<String> = err.problems().into_iter().map(|p| p.path).collect();
    assert_eq!(
        paths,
        vec![
            "policy.classes.dml",
            "policy.classes.dml.approvals_required",
            "targets[0].policy.approver_groups[0]",
            "targets[0].policy.run_window",
            "targets[0].policy.max_rows_ratio",
            "targets[0].policy",
        ],
        "{err}"
    );
    let err = Config::load(
        &with_policy().replace(
            "approvals_required = 2\nmax_rows = 0",
            "approvals_required = 3",
        ),
        Path::new("/"),
        &NoSecrets,
    )
    .expect_err("unsatisfiable");
    assert!(
        err.to_string()
            .contains("privilege requests need 3 distinct approver(s)"),
        "{err}"
    );
    let err = Config::load(
        &with_policy().replace("require_reason = true", "require_reason = \"yes\""),
        Path::new("/"),
        &NoSecrets,
    )
    .expect_err("type");
    assert!(err.to_string().contains("require_reason"), "{err}");
}

#[test]
fn store_url_defaults_next_to_the_config_and_anchors_relative_files() {
    let c = Config::load(&good(), Path::new("/etc/airlock"), &NoSecrets).expect("valid");
    assert_eq!(
        c.store.url(),
        "sqlite:///etc/airlock/airlock-state.db?mode=rwc"
    );
    let c = Config::load(
        &(good() + "\n[store]\nurl = \"sqlite://state/a.db?mode=rwc\"\n"),
        Path::new("/srv"),
        &NoSecrets,
    )
    .expect("valid");
    assert_eq!(c.store.url(), "sqlite:///srv/state/a.db?mode=rwc");
    let c = Config::load(
        &(good() + "\n[store]\nurl_env = \"SET_VAR\"\nmax_connections = 3\n"),
        Path::new("/srv"),
        &NoSecrets,
    )
    .expect_err("not a URL");
    assert_eq!(c.problems()[0].path, "store.url_env");
    assert!(!c.to_string().contains("s3cret"), "{c}");
    let err = Config::load(
        &(good() + "\n[store]\nurl = \"mysql://x\"\nurl_env = \"NOPE\"\n"),
        Path::new("/"),
        &NoSecrets,
    )
    .expect_err("invalid");
    let paths: Vec<String> = err.problems().into_iter().map(|p| p.path).collect();
    assert_eq!(paths, vec!["store", "store.url", "store.url_env"]);
    assert_eq!(
        redact_url("postgres://airlock:s3cret@db:5432/state"),
        "postgres://airlock:***@db:5432/state"
    );
    assert_eq!(
        redact_url("postgres://airlock@db/state"),
        "postgres://airlock@db/state"
    );
}

#[test]
fn the_shipped_example_loads_with_its_policies() {
    let text = include_str!("../../../../proxy.toml.example");
    let c = Config::load(text, Path::new("/etc/airlock"), &NoSecrets).expect("example is valid");
    let prod = c.target("orders-prod").expect("prod");
    let p = c.approval_policy(prod, StatementClass::Privilege);
    assert_eq!(p.approver_groups, vec!["dba"]);
    assert_eq!(p.run_window, Duration::from_secs(15 * 60));
    assert!(p.require_reason);
    assert_eq!(
        c.store.url(),
        "sqlite:///etc/airlock/airlock-state.db?mode=rwc"
    );
}

#[test]
fn api_token_hashes_and_the_audit_interval() {
    let hash = "ab".repeat(32);
    let text = good().replace(
        "groups = [\"developers\"]\nscram",
        &format!("groups = [\"developers\"]\napi_token_sha256 = \"{hash}\"\nscram"),
    ) + "\n[audit]\nhead_log_interval = \"30s\"\n";
    let c = Config::load(&text, Path::new("/"), &NoSecrets).expect("valid");
    assert_eq!(c.users[0].api_token_sha256.as_deref(), Some(hash.as_str()));
    assert_eq!(c.audit.head_log_interval, Duration::from_secs(30));
    let c = Config::load(&good(), Path::new("/"), &NoSecrets).expect("valid");
    assert_eq!(c.audit.head_log_interval, Duration::from_secs(300));
    let err = Config::load(
        &(text.replace(&hash, "nothex").replace("\"30s\"", "\"0s\"")),
        Path::new("/"),
        &NoSecrets,
    )
    .expect_err("invalid");
    let paths: Vec<String> = err.problems().into_iter().map(|p| p.path).collect();
    assert_eq!(
        paths,
        vec!["users[0].api_token_sha256", "audit.head_log_interval"]
    );
}

#[test]
fn verifier_parsing() {
    assert!(ScramVerifier::parse(VERIFIER).is_ok());
    assert!(ScramVerifier::parse("SCRAM-SHA-256$10:a$b:c").is_err());
    assert!(ScramVerifier::parse("SCRAM-SHA-256$4096:a$b").is_err());
}

fn with_slack(slack: &str) -> String {
    good().replace(
        "scram_verifier = \"",
        "slack_user_id = \"U0ALICE\"\nscram_verifier = \"",
    ) + slack
}

#[test]
fn slack_section_loads_and_resolves_its_secrets() {
    let text = with_slack(
        "\n[slack]\nmode = \"http\"\nbot_token_env = \"SET_VAR\"\nsigning_secret_env = \"SET_VAR\"\nreview_channel = \"C0123ABC\"\n",
    );
    let c = Config::load(&text, Path::new("/etc/airlock"), &NoSecrets).expect("valid");
    let slack = c.slack.as_ref().expect("slack");
    assert_eq!(slack.mode, SlackMode::Http);
    assert_eq!(slack.api_url, SLACK_API_URL);
    assert_eq!(slack.bot_token.value.as_deref(), Some("s3cret"));
    assert_eq!(slack.signing_secret.value.as_deref(), Some("s3cret"));
    assert!(!format!("{slack:?}").contains("s3cret"));
    assert_eq!(
        c.user_by_slack_id("U0ALICE").map(|u| u.name.as_str()),
        Some("alice")
    );
    assert!(c.user_by_slack_id("U0BOB").is_none());
}

#[test]
fn slack_problems_are_reported_with_their_paths() {
    let text = with_slack(
        "\n[slack]\nmode = \"socket\"\napi_url = \"ftp://slack\"\nbot_token_file = \"missing-token\"\nreview_channel = \"#reviews\"\nstatement_max_chars = 10\n",
    )
    .replace("slack_user_id = \"U0ALICE\"", "slack_user_id = \"alice\"");
    let err = Config::load(&text, Path::new("/etc/airlock"), &NoSecrets).expect_err("invalid");
    let paths: Vec<String> = err.problems().into_iter().map(|p| p.path).collect();
    for want in [
        "slack.api_url",
        "slack.app_token",
        "slack.review_channel",
        "slack.statement_max_chars",
        "slack.bot_token_file",
        "users[0].slack_user_id",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want} not in {paths:?}");
    }
    let missing = err
        .problems()
        .into_iter()
        .find(|p| p.path == "slack.bot_token_file")
        .expect("file problem");
    assert!(
        missing.message.contains("/etc/airlock/missing-token"),
        "{missing}"
    );

    // No review channel anywhere for a protected target; an unset env var;
    // one Slack user mapped to two airlock users.
    let text = with_slack(
        "\n[slack]\nmode = \"http\"\nbot_token_env = \"UNSET_VAR\"\nsigning_secret_env = \"SET_VAR\"\n",
    )
    .replace(
        "[[targets]]",
        &format!("[[users]]\nname = \"bob\"\nslack_user_id = \"U0ALICE\"\nscram_verifier = \"{VERIFIER}\"\n\n[[targets]]"),
    );
    let err = Config::load(&text, Path::new("/"), &NoSecrets).expect_err("invalid");
    let problems = err.problems();
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    for want in [
        "targets[0].policy.review_channel",
        "slack.bot_token_env",
        "users[1].slack_user_id",
    ] {
        assert!(paths.contains(&want), "{want} not in {problems:?}");
    }
    // The policy's channel satisfies it, and is checked too.
    let text = with_slack(
        "\n[policy]\nreview_channel = \"reviews\"\n\n[slack]\nmode = \"http\"\nbot_token_env = \"SET_VAR\"\nsigning_secret_env = \"SET_VAR\"\n",
    );
    let err = Config::load(&text, Path::new("/"), &NoSecrets).expect_err("invalid");
    let problems = err.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "policy.review_channel");
}

#[test]
fn redaction_patterns_must_compile() {
    let ok = good() + "\n[redaction]\npatterns = [\"tok_[a-z0-9]+\"]\n";
    let c = Config::load(&ok, Path::new("/"), &NoSecrets).expect("valid");
    let r = c.redactor().expect("redactor");
    assert_eq!(r.redact("SELECT 'tok_abc'"), "SELECT '***'");
    let bad = good() + "\n[redaction]\npatterns = [\"fine\", \"(unclosed\"]\n";
    let err = Config::load(&bad, Path::new("/"), &NoSecrets).expect_err("invalid");
    let problems = err.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "redaction.patterns[1]");
}

#[test]
fn mysql_targets_need_the_listener_and_valid_verifiers() {
    let mysql = r#"
[[targets]]
name = "shop"
engine = "mariadb"
protected = true
allowed_groups = ["developers"]
trusted_functions = ["app.f"]
upstream = { host = "127.0.0.1", database = "shop" }
read_credentials = { user = "reader" }
"#;
    let text = good().replace(
        &format!("scram_verifier = \"{VERIFIER}\""),
        &format!("scram_verifier = \"{VERIFIER}\"\nmysql_native_verifier = \"14E6\"\nmysql_sha2_verifier = \"zz\""),
    ) + mysql;
    let err = Config::load(&text, Path::new("/"), &NoSecrets).expect_err("invalid");
    let paths: Vec<String> = err.problems().into_iter().map(|p| p.path).collect();
    assert_eq!(
        paths,
        vec![
            "server.mysql_listen",
            "users[0].mysql_native_verifier",
            "users[0].mysql_sha2_verifier",
            "targets[1].trusted_functions",
        ]
    );
    let ok = good()
        + "\n[server]\nmysql_listen = \"127.0.0.1:3307\"\n"
        + &mysql.replace("trusted_functions = [\"app.f\"]\n", "");
    let config = Config::load(&ok, Path::new("/"), &NoSecrets).expect("valid");
    let t = config.target("shop").unwrap();
    assert_eq!((t.engine, t.upstream_port()), (Engine::Mysql, 3306));
    // Other schemas: MySQL targets only.
    let schemas = ok.replace(
        "upstream = { host = \"127.0.0.1\", database = \"shop\" }",
        "upstream = { host = \"127.0.0.1\", database = \"shop\" }\nmysql_schemas = [\"reports\"]",
    );
    let config = Config::load(&schemas, Path::new("/"), &NoSecrets).expect("valid");
    assert_eq!(config.target("shop").unwrap().mysql_schemas, ["reports"]);
    let on_pg = schemas.replace("engine = \"mariadb\"\n", "");
    let err = Config::load(&on_pg, Path::new("/"), &NoSecrets).expect_err("invalid");
    assert!(
        err.problems()
            .iter()
            .any(|p| p.path == "targets[1].mysql_schemas"),
        "{err}"
    );
}

#[test]
fn a_family_is_on_one_engine() {
    let mysql_dev = r#"
[server]
mysql_listen = "127.0.0.1:3307"

[[targets]]
name = "orders-dev"
engine = "mariadb"
family = "orders"
environment = "dev"
allowed_groups = ["developers"]
upstream = { host = "127.0.0.1", database = "orders" }
write_credentials = { user = "root" }
"#;
    let err = Config::load(&(good() + mysql_dev), Path::new("/"), &NoSecrets)
        .expect_err("two engines in one family");
    let problems = err.problems();
    let p = problems
        .iter()
        .find(|p| p.path == "targets[1].engine")
        .unwrap_or_else(|| panic!("{err}"));
    assert!(p.message.contains("share one engine"), "{}", p.message);
    let own = mysql_dev.replace("family = \"orders\"\nenvironment = \"dev\"\n", "");
    Config::load(&(good() + &own), Path::new("/"), &NoSecrets).expect("a MySQL target of its own");
}
