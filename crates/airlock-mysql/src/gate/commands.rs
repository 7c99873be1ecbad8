//! The proxy's own commands on MySQL (`SET @airlock_*`, `SHOW airlock.*`,
//! `CALL airlock.run/rollback/cancel(N)`), answered without the upstream.

use super::*;

impl ProtectedGate {
    /// Answers one of the proxy's own commands (never sent upstream).
    pub(super) async fn proxy_command(&mut self, cmd: ProxyCommand) -> Verdict {
        let ok = |info: String, caps: u32| {
            Verdict::Answer(vec![crate::messages::OkPacket {
                status: crate::caps::STATUS_AUTOCOMMIT,
                info,
                ..Default::default()
            }
            .encode_for(0, caps)])
        };
        let actor = airlock_core::Actor::new(self.user.name.clone(), self.user.groups.clone());
        match cmd {
            ProxyCommand::Set { key, value } => {
                let mut next = self.settings.clone();
                next.set(key, value);
                let problems = next.problems();
                if !problems.is_empty() {
                    return needs_input(&problems.join("; "));
                }
                self.settings = next;
                ok(String::new(), self.capabilities)
            }
            ProxyCommand::Reset(key) => {
                let mut next = Directives::default();
                for k in DirectiveKey::ALL.into_iter().filter(|k| *k != key) {
                    if let Some(v) = self.settings.get(k) {
                        next.set(k, v.to_string());
                    }
                }
                self.settings = next;
                ok(String::new(), self.capabilities)
            }
            ProxyCommand::Show(key) => {
                let v = self.settings.get(key).map(str::to_string);
                Verdict::Answer(crate::resultset::encode(
                    &[&format!("airlock.{}", key.as_str())],
                    &[vec![v]],
                    self.capabilities,
                    self.mariadb_capabilities,
                ))
            }
            ProxyCommand::ShowRequests => {
                let Some(workflow) = &self.workflow else {
                    return refuse("no request store");
                };
                let filter = airlock_core::request::RequestFilter {
                    statuses: vec![
                        airlock_core::RequestStatus::Pending,
                        airlock_core::RequestStatus::Approved,
                    ],
                    requester: Some(self.user.name.clone()),
                    limit: Some(100),
                    ..Default::default()
                };
                match workflow.list(&filter).await {
                    Ok(list) => {
                        let rows: Vec<Vec<Option<String>>> = list
                            .iter()
                            .map(|r| {
                                vec![
                                    Some(r.id.0.to_string()),
                                    Some(r.status.as_str().to_string()),
                                    Some(r.details.target.clone()),
                                    Some(r.details.summary.clone()),
                                ]
                            })
                            .collect();
                        Verdict::Answer(crate::resultset::encode(
                            &["id", "status", "target", "summary"],
                            &rows,
                            self.capabilities,
                            self.mariadb_capabilities,
                        ))
                    }
                    Err(e) => refuse(&format!("listing requests failed: {e}")),
                }
            }
            ProxyCommand::Run(n) => self.run_approved(airlock_core::RequestId(n as i64)).await,
            ProxyCommand::Rollback(n) => {
                let Some(runner) = &self.runner else {
                    return refuse("this airlock process cannot run rollbacks");
                };
                let id = airlock_core::RequestId(n as i64);
                match runner.run_rollback(id, &actor).await {
                    Ok(report) => match report.result.error {
                        None => ok(
                            format!("airlock: the rollback of request #{n} ran"),
                            self.capabilities,
                        ),
                        Some(e) => refuse(&format!("the rollback of request #{n} failed: {e}")),
                    },
                    Err(e) => refuse(&format!("request #{n}: {e}")),
                }
            }
            ProxyCommand::Cancel(n) => {
                let Some(workflow) = &self.workflow else {
                    return refuse("no request store");
                };
                match workflow
                    .cancel(airlock_core::RequestId(n as i64), &actor, None)
                    .await
                {
                    Ok(_) => ok(
                        format!("airlock: request #{n} cancelled"),
                        self.capabilities,
                    ),
                    Err(e) => refuse(&format!("request #{n}: {e}")),
                }
            }
            ProxyCommand::Unknown { name } => Verdict::Refuse(ErrPacket::new(
                NEEDS_INPUT_CODE,
                NEEDS_INPUT_STATE,
                format!("airlock: unknown airlock setting or command {name}"),
            )),
        }
    }
}
