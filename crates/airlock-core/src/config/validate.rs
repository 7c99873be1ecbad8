//! Everything about a config that can be checked without I/O, each problem
//! with its key path.

use super::settings::is_store_url;
use super::*;

impl Config {
    /// Checks everything that can be checked without I/O.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut problem = |path: String, message: String| out.push(ConfigProblem { path, message });
        if self.server.postgres_listen.parse::<SocketAddr>().is_err() {
            problem(
                "server.postgres_listen".into(),
                format!("not an address:port: {:?}", self.server.postgres_listen),
            );
        }
        match &self.server.mysql_listen {
            Some(a) if a.parse::<SocketAddr>().is_err() => problem(
                "server.mysql_listen".into(),
                format!("not an address:port: {a:?}"),
            ),
            None if self.targets.iter().any(|t| t.engine == Engine::Mysql) => problem(
                "server.mysql_listen".into(),
                "required: a target has engine = \"mysql\"".into(),
            ),
            _ => {}
        }
        if self.server.http_listen.parse::<SocketAddr>().is_err() {
            problem(
                "server.http_listen".into(),
                format!("not an address:port: {:?}", self.server.http_listen),
            );
        }
        if self.server.max_batch_bytes < 1024 {
            problem(
                "server.max_batch_bytes".into(),
                "must be at least 1024".into(),
            );
        }
        if self.server.reconcile_interval.is_zero() {
            problem(
                "server.reconcile_interval".into(),
                "must be longer than 0s".into(),
            );
        }
        if self.server.wait_safety_poll.is_zero() {
            problem(
                "server.wait_safety_poll".into(),
                "must be longer than 0s".into(),
            );
        }
        if self.server.classifier_cache_entries == 0 {
            problem(
                "server.classifier_cache_entries".into(),
                "must be at least 1".into(),
            );
        }

        let mut families: HashMap<&str, &Family> = HashMap::new();
        for (i, f) in self.families.iter().enumerate() {
            if families.insert(f.name.as_str(), f).is_some() {
                problem(
                    format!("families[{i}].name"),
                    format!("duplicate family {:?}", f.name),
                );
            }
            if f.environments.is_empty() {
                problem(
                    format!("families[{i}].environments"),
                    "must list at least one environment".into(),
                );
            }
            let set: BTreeSet<&String> = f.environments.iter().collect();
            if set.len() != f.environments.len() {
                problem(
                    format!("families[{i}].environments"),
                    "lists an environment twice".into(),
                );
            }
        }

        let mut user_names = BTreeSet::new();
        let mut all_groups = BTreeSet::new();
        for (i, u) in self.users.iter().enumerate() {
            if u.name.is_empty() {
                problem(format!("users[{i}].name"), "must not be empty".into());
            }
            if !user_names.insert(u.name.as_str()) {
                problem(
                    format!("users[{i}].name"),
                    format!("duplicate user {:?}", u.name),
                );
            }
            all_groups.extend(u.groups.iter().map(String::as_str));
            match &u.scram_verifier {
                None => problem(
                    format!("users[{i}].scram_verifier"),
                    "missing: generate one with `airlock passwd`".into(),
                ),
                Some(v) => {
                    if let Err(e) = ScramVerifier::parse(v) {
                        problem(format!("users[{i}].scram_verifier"), e);
                    }
                }
            }
            if let Some(v) = &u.mysql_native_verifier {
                if let Err(e) = NativeVerifier::parse(v) {
                    problem(format!("users[{i}].mysql_native_verifier"), e);
                }
            }
            if let Some(v) = &u.mysql_sha2_verifier {
                if let Err(e) = Sha2Verifier::parse(v) {
                    problem(format!("users[{i}].mysql_sha2_verifier"), e);
                }
            }
            if let Some(h) = &u.api_token_sha256 {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    problem(
                        format!("users[{i}].api_token_sha256"),
                        "must be 64 hex digits: generate it with `airlock token`".into(),
                    );
                }
            }
        }
        if self.audit.head_log_interval.is_zero() {
            problem(
                "audit.head_log_interval".into(),
                "must be longer than 0s".into(),
            );
        }

        let mut target_names = BTreeSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            let at = |k: &str| format!("targets[{i}].{k}");
            if t.name.is_empty() {
                problem(at("name"), "must not be empty".into());
            }
            if !target_names.insert(t.name.as_str()) {
                problem(at("name"), format!("duplicate target {:?}", t.name));
            }
            if let Some(fam) = &t.family {
                // One engine a family: the same text on Postgres and on
                // MySQL is not the same change, so one cannot be the
                // other's earlier run.
                let first = self
                    .targets
                    .iter()
                    .find(|o| o.family.as_deref() == Some(fam.as_str()));
                if let Some(first) = first.filter(|o| o.engine != t.engine) {
                    problem(
                        at("engine"),
                        format!(
                            "family {fam:?} is on {} (target {:?}): a family's targets share one engine",
                            first.engine.as_str(),
                            first.name
                        ),
                    );
                }
                match families.get(fam.as_str()) {
                    None => problem(at("family"), format!("unknown family {fam:?}")),
                    Some(f) => {
                        if !f.environments.contains(&t.environment) {
                            problem(
                                at("environment"),
                                format!(
                                    "{:?} is not one of family {fam:?}'s environments {:?}",
                                    t.environment, f.environments
                                ),
                            );
                        }
                    }
                }
            }
            if t.allowed_groups.is_empty() {
                problem(
                    at("allowed_groups"),
                    "empty: nobody could connect to this target".into(),
                );
            }
            for (g_i, g) in t.allowed_groups.iter().enumerate() {
                if !all_groups.contains(g.as_str()) {
                    problem(
                        format!("targets[{i}].allowed_groups[{g_i}]"),
                        format!("no user is in group {g:?}"),
                    );
                }
            }
            if t.upstream.host.is_empty() {
                problem(at("upstream.host"), "must not be empty".into());
            }
            if t.upstream.host.starts_with('/')
                && matches!(
                    t.upstream.tls,
                    UpstreamTlsMode::Require | UpstreamTlsMode::VerifyFull
                )
            {
                problem(
                    at("upstream.tls"),
                    "a Unix-socket upstream (host is a directory) cannot use TLS".into(),
                );
            }
            if t.upstream.port == Some(0) {
                problem(at("upstream.port"), "must not be 0".into());
            }
            if t.upstream.database.is_empty() {
                problem(at("upstream.database"), "must not be empty".into());
            }
            if t.upstream.ca_file.is_some() && t.upstream.tls != UpstreamTlsMode::VerifyFull {
                problem(
                    at("upstream.ca_file"),
                    "only used with tls = \"verify-full\"".into(),
                );
            }
            if t.protected && t.read_credentials.is_none() {
                problem(
                    at("read_credentials"),
                    "required on a protected target (sessions use the read role)".into(),
                );
            }
            if t.engine != Engine::Mysql && !t.mysql_schemas.is_empty() {
                problem(
                    at("mysql_schemas"),
                    "only for MySQL targets (a Postgres session cannot switch databases)".into(),
                );
            }
            if t.mysql_schemas.iter().any(|s| s.trim().is_empty()) {
                problem(at("mysql_schemas"), "a schema name cannot be empty".into());
            }
            if t.engine == Engine::Mysql && !t.trusted_functions.is_empty() {
                problem(
                    at("trusted_functions"),
                    "not available on MySQL targets: only built-ins on airlock's read-only list pass there".into(),
                );
            }
            let mut trusted = BTreeSet::new();
            for (k, entry) in t.trusted_functions.iter().enumerate() {
                let key = at(&format!("trusted_functions[{k}]"));
                if !t.protected {
                    problem(
                        key,
                        "only a protected target judges statements; trusting functions here has no effect".into(),
                    );
                    break;
                }
                match TrustedFunction::parse(entry) {
                    Ok(f) if !trusted.insert(f.clone()) => {
                        problem(key, format!("{entry:?} is listed twice"))
                    }
                    Ok(_) => {}
                    Err(e) => problem(key, e),
                }
            }
            if t.session_credentials().is_none() {
                problem(
                    at("write_credentials"),
                    "an unprotected target needs write_credentials (or read_credentials)".into(),
                );
            }
            for (key, c) in [
                ("read_credentials", &t.read_credentials),
                ("write_credentials", &t.write_credentials),
            ] {
                if let Some(c) = c {
                    if c.user.is_empty() {
                        problem(at(&format!("{key}.user")), "must not be empty".into());
                    }
                    if c.password_env.is_some() && c.password_file.is_some() {
                        problem(
                            at(key),
                            "set password_env or password_file, not both".into(),
                        );
                    }
                }
            }
        }
        if self.store.url.is_some() && self.store.url_env.is_some() {
            out.push(ConfigProblem {
                path: "store".into(),
                message: "set url or url_env, not both".into(),
            });
        }
        if let Some(url) = &self.store.url {
            if !is_store_url(url) {
                out.push(ConfigProblem {
                    path: "store.url".into(),
                    message: format!(
                        "{:?} is neither sqlite://PATH nor postgres://…",
                        redact_url(url)
                    ),
                });
            }
        }
        if self.store.max_connections == 0 {
            out.push(ConfigProblem {
                path: "store.max_connections".into(),
                message: "must be at least 1".into(),
            });
        }
        self.policy.validate("policy", &all_groups, &mut out);
        if let Err((i, e)) = airlock_sql::Redactor::new(&self.redaction.patterns) {
            out.push(ConfigProblem {
                path: format!("redaction.patterns[{i}]"),
                message: format!("not a valid regular expression: {e}"),
            });
        }
        if let Some(url) = &self.server.public_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                out.push(ConfigProblem {
                    path: "server.public_url".into(),
                    message: format!("must be an http(s) URL, not {url:?}"),
                });
            }
        }
        slack::validate_user_ids(
            self.users
                .iter()
                .enumerate()
                .filter_map(|(i, u)| u.slack_user_id.as_deref().map(|id| (i, id))),
            &mut out,
        );
        if let Some(slack) = &self.slack {
            slack.validate(&self.review_channels(), &mut out);
            if slack.review_channel.is_none() {
                for (i, t) in self.targets.iter().enumerate().filter(|(_, t)| t.protected) {
                    let p = self.approval_policy(t, StatementClass::Write);
                    if p.review_channel.is_none() {
                        out.push(ConfigProblem {
                            path: format!("targets[{i}].policy.review_channel"),
                            message: format!(
                                "target {:?} has no Slack review channel: set it here, in [policy] or as slack.review_channel",
                                t.name
                            ),
                        });
                    }
                }
            }
        }
        for (i, t) in self.targets.iter().enumerate() {
            t.policy
                .validate(&format!("targets[{i}].policy"), &all_groups, &mut out);
            if !t.protected {
                continue;
            }
            for class in POLICY_CLASSES {
                let Some(c) = crate::request::parse_class(class) else {
                    continue;
                };
                let p = self.approval_policy(t, c);
                let approvers = self
                    .users
                    .iter()
                    .filter(|u| u.groups.iter().any(|g| p.approver_groups.contains(g)))
                    .count();
                if (approvers as u64) < u64::from(p.approvals_required) {
                    out.push(ConfigProblem {
                        path: format!("targets[{i}].policy"),
                        message: format!(
                            "{class} requests need {} distinct approver(s) from {:?}, but only {approvers} user(s) are in those groups",
                            p.approvals_required, p.approver_groups
                        ),
                    });
                    break;
                }
            }
        }
        out
    }

    /// Every `review_channel` set in a policy, with its key path.
    fn review_channels(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut add = |path: String, p: &PolicyConfig| {
            if let Some(c) = &p.review_channel {
                out.push((format!("{path}.review_channel"), c.clone()));
            }
            for (class, rules) in &p.classes {
                if let Some(c) = &rules.review_channel {
                    out.push((format!("{path}.classes.{class}.review_channel"), c.clone()));
                }
            }
        };
        add("policy".into(), &self.policy);
        for (i, t) in self.targets.iter().enumerate() {
            add(format!("targets[{i}].policy"), &t.policy);
        }
        out
    }
}
