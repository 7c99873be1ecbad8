//! The tamper-evident audit trail: events chained by SHA-256, and the
//! verification that finds an altered, removed, reordered or truncated event.
//!
//! `hash(n) = sha256(hash(n-1) as hex text || canonical(n))`, with 64 zeros
//! before the first event. The canonical form is length-prefixed, so no two
//! different events share it:
//!
//! ```text
//! airlock-audit-v1\n seq\n at\n <len>:actor\n <len>:kind\n request_id|-\n <len>:payload
//! ```

use crate::request::{RequestId, RequestStatus};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// The hash before the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Event kinds written by the core and the store; other crates add their own
/// dotted names (`session.login`, `statement.held`…).
pub mod kinds {
    /// A change request was created.
    pub const REQUEST_CREATED: &str = "request.created";
    /// An approval was accepted (the request may still need more).
    pub const APPROVAL_RECORDED: &str = "approval.recorded";
    /// An approval or rejection was refused; the payload says why.
    pub const DECISION_REFUSED: &str = "decision.refused";
    /// An action (run, rollback, cancel, settle) was refused; the payload says why.
    pub const ACTION_REFUSED: &str = "action.refused";
    /// A statement was held but no request was created (e.g. a reason was missing),
    /// or was re-sent while its request is still pending.
    pub const STATEMENT_HELD: &str = "statement.held";
    /// A client logged in to a target through the proxy.
    pub const LOGIN: &str = "login";
    /// A login was refused (bad password, unknown or forbidden target); the payload says why.
    pub const LOGIN_REFUSED: &str = "login.refused";
    /// A chat interaction (a Slack click or modal) was refused before any
    /// decision: bad signature, stale or replayed payload, unmapped user…
    pub const INTERACTION_REFUSED: &str = "interaction.refused";
    /// The configuration file was reloaded (SIGHUP); the payload has its SHA-256.
    pub const CONFIG_RELOADED: &str = "config.reloaded";
    /// A reload was refused (the file is invalid); the old configuration stays.
    pub const CONFIG_RELOAD_REFUSED: &str = "config.reload_refused";
    /// A session was ended because a reload removed its user, its access or its target.
    pub const SESSION_REVOKED: &str = "session.revoked";
    /// Prefix of status changes: `request.approved`, `request.running`…
    pub const TRANSITION_PREFIX: &str = "request.";
}

/// An event to append; the store gives it its sequence number and hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAuditEvent {
    /// When it happened.
    pub at: Timestamp,
    /// Who did it (an airlock user, or `airlock` for the proxy itself).
    pub actor: String,
    /// Dotted kind (`request.created`, `approval.recorded`…).
    pub kind: String,
    /// The request concerned, if any.
    pub request_id: Option<RequestId>,
    /// JSON object with the details, stored byte for byte.
    pub payload: String,
}

impl NewAuditEvent {
    /// An event with a JSON payload.
    pub fn new(
        at: Timestamp,
        actor: impl Into<String>,
        kind: impl Into<String>,
        request_id: Option<RequestId>,
        payload: serde_json::Value,
    ) -> Self {
        NewAuditEvent {
            at,
            actor: actor.into(),
            kind: kind.into(),
            request_id,
            payload: payload.to_string(),
        }
    }

    /// The event of a status change, kind `request.<to>`; `detail` (a JSON
    /// object, or null) is merged into `{"from": …, "to": …}`.
    pub fn transition(
        at: Timestamp,
        actor: impl Into<String>,
        id: RequestId,
        from: RequestStatus,
        to: RequestStatus,
        detail: serde_json::Value,
    ) -> Self {
        let mut payload = serde_json::json!({ "from": from.as_str(), "to": to.as_str() });
        if let (Some(obj), serde_json::Value::Object(extra)) = (payload.as_object_mut(), detail) {
            for (k, v) in extra {
                obj.entry(k).or_insert(v);
            }
        }
        NewAuditEvent::new(
            at,
            actor,
            format!("{}{}", kinds::TRANSITION_PREFIX, to.as_str()),
            Some(id),
            payload,
        )
    }
}

/// A stored, chained event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When it happened.
    pub at: Timestamp,
    /// Who did it.
    pub actor: String,
    /// Dotted kind.
    pub kind: String,
    /// The request concerned.
    pub request_id: Option<RequestId>,
    /// JSON details.
    pub payload: String,
    /// Hash of the previous event ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
}

/// The last event of a chain: its sequence number and hash (`SEQ:HASH`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuditHead {
    /// Sequence number of the last event (0 for an empty chain).
    pub seq: i64,
    /// Its hash ([`GENESIS_HASH`] for an empty chain).
    pub hash: String,
}

impl AuditHead {
    /// The head of an empty chain.
    pub fn genesis() -> Self {
        AuditHead {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        }
    }
}

impl fmt::Display for AuditHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// Text that is not `SEQ:HASH`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an audit head (SEQ:HASH with a 64-digit hex hash): {0:?}")]
pub struct BadHead(pub String);

impl FromStr for AuditHead {
    type Err = BadHead;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadHead(s.to_string());
        let (seq, hash) = s.trim().split_once(':').ok_or_else(bad)?;
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        if seq < 0 || hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(AuditHead {
            seq,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

/// The canonical bytes of an event at position `seq` (what its hash covers
/// besides the previous hash).
pub fn canonical(seq: i64, event: &NewAuditEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + event.payload.len());
    let mut field = |text: &str| {
        out.extend_from_slice(text.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(text.as_bytes());
        out.push(b'\n');
    };
    field("airlock-audit-v1");
    field(&seq.to_string());
    field(&event.at.0.to_string());
    field(&event.actor);
    field(&event.kind);
    field(
        &event
            .request_id
            .map_or_else(|| "-".to_string(), |r| r.0.to_string()),
    );
    field(&event.payload);
    out
}

/// `sha256(prev_hash || canonical(seq, event))`, lowercase hex.
pub fn event_hash(prev_hash: &str, seq: i64, event: &NewAuditEvent) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical(seq, event));
    hex::encode(h.finalize())
}

/// Chains a new event after `head`: the store calls this inside the
/// transaction that holds the chain's lock.
pub fn seal(head: &AuditHead, event: NewAuditEvent) -> AuditEvent {
    let seq = head.seq + 1;
    let hash = event_hash(&head.hash, seq, &event);
    AuditEvent {
        seq,
        at: event.at,
        actor: event.actor,
        kind: event.kind,
        request_id: event.request_id,
        payload: event.payload,
        prev_hash: head.hash.clone(),
        hash,
    }
}

impl AuditEvent {
    /// The event without its chain fields.
    pub fn unsealed(&self) -> NewAuditEvent {
        NewAuditEvent {
            at: self.at,
            actor: self.actor.clone(),
            kind: self.kind.clone(),
            request_id: self.request_id,
            payload: self.payload.clone(),
        }
    }

    /// This event as a head.
    pub fn head(&self) -> AuditHead {
        AuditHead {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

/// What is wrong at a position of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum AuditFault {
    /// The event's content does not match its hash (edited).
    Altered,
    /// The event does not point at the previous event's hash (an event before
    /// it was removed, replaced or moved).
    BrokenLink,
    /// The expected event is missing; the next one present is `found`.
    Missing {
        /// The sequence number found instead.
        found: i64,
    },
    /// Events are not in ascending sequence order.
    OutOfOrder {
        /// The sequence number found.
        found: i64,
    },
    /// The chain ends before the kept head (the tail was truncated).
    Truncated {
        /// Last sequence number present (0 when empty).
        last: i64,
    },
    /// The event at the kept head's position has another hash (the tail was rewritten).
    HeadMismatch {
        /// The kept hash.
        expected: String,
        /// The hash found.
        found: String,
    },
}

/// The first bad event of a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("audit chain broken at event {seq}: {}", describe(.what))]
pub struct AuditViolation {
    /// Sequence number of the first bad event (or where the missing one should be).
    pub seq: i64,
    /// What is wrong there.
    pub what: AuditFault,
}

fn describe(f: &AuditFault) -> String {
    match f {
        AuditFault::Altered => "its content does not match its hash (altered)".into(),
        AuditFault::BrokenLink => {
            "it does not link to the previous event's hash (an event was removed, replaced or reordered)"
                .into()
        }
        AuditFault::Missing { found } => format!("missing (the next event present is {found})"),
        AuditFault::OutOfOrder { found } => format!("out of order (found {found})"),
        AuditFault::Truncated { last } => {
            format!("missing: the chain ends at {last}, before the kept head (tail truncated)")
        }
        AuditFault::HeadMismatch { expected, found } => {
            format!("hash {found} differs from the kept head {expected} (tail rewritten)")
        }
    }
}

/// Verifies a chain event by event (for paging through a large store).
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    last: AuditHead,
    expected: Option<AuditHead>,
    head_checked: bool,
}

impl ChainVerifier {
    /// Starts at the genesis; `expected_head` is a head kept elsewhere that the
    /// chain must still contain.
    pub fn new(expected_head: Option<AuditHead>) -> Self {
        ChainVerifier {
            last: AuditHead::genesis(),
            expected: expected_head,
            head_checked: false,
        }
    }

    /// The head of what was verified so far.
    pub fn head(&self) -> &AuditHead {
        &self.last
    }

    /// Checks the next event.
    pub fn push(&mut self, e: &AuditEvent) -> Result<(), AuditViolation> {
        let want = self.last.seq + 1;
        if e.seq < want {
            return Err(AuditViolation {
                seq: want,
                what: AuditFault::OutOfOrder { found: e.seq },
            });
        }
        if e.seq > want {
            return Err(AuditViolation {
                seq: want,
                what: AuditFault::Missing { found: e.seq },
            });
        }
        if e.prev_hash != self.last.hash {
            return Err(AuditViolation {
                seq: e.seq,
                what: AuditFault::BrokenLink,
            });
        }
        if event_hash(&e.prev_hash, e.seq, &e.unsealed()) != e.hash {
            return Err(AuditViolation {
                seq: e.seq,
                what: AuditFault::Altered,
            });
        }
        if let Some(kept) = &self.expected {
            if kept.seq == e.seq {
                self.head_checked = true;
                if kept.hash != e.hash {
                    return Err(AuditViolation {
                        seq: e.seq,
                        what: AuditFault::HeadMismatch {
                            expected: kept.hash.clone(),
                            found: e.hash.clone(),
                        },
                    });
                }
            }
        }
        self.last = e.head();
        Ok(())
    }

    /// Ends verification: the chain must reach the kept head. Returns the head.
    pub fn finish(self) -> Result<AuditHead, AuditViolation> {
        if let Some(kept) = &self.expected {
            if kept.seq > 0 && !self.head_checked {
                return Err(AuditViolation {
                    seq: self.last.seq + 1,
                    what: AuditFault::Truncated {
                        last: self.last.seq,
                    },
                });
            }
        }
        Ok(self.last)
    }
}

/// Verifies a whole chain, from its first event, in sequence order; with
/// `expected_head`, also that the chain still contains that head. Returns the
/// chain's head, or the first bad event.
pub fn verify_chain(
    events: &[AuditEvent],
    expected_head: Option<&AuditHead>,
) -> Result<AuditHead, AuditViolation> {
    let mut v = ChainVerifier::new(expected_head.cloned());
    for e in events {
        v.push(e)?;
    }
    v.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<AuditEvent> {
        let mut head = AuditHead::genesis();
        let mut out = Vec::new();
        for i in 0..n {
            let e = seal(
                &head,
                NewAuditEvent::new(
                    Timestamp(1000 + i as i64),
                    "alice",
                    "request.created",
                    Some(RequestId(i as i64 + 1)),
                    serde_json::json!({ "i": i }),
                ),
            );
            head = e.head();
            out.push(e);
        }
        out
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(5);
        let head = verify_chain(&c, None).expect("intact");
        assert_eq!(head.seq, 5);
        assert_eq!(verify_chain(&c, Some(&c[2].head())), Ok(head.clone()));
        assert_eq!(verify_chain(&c, Some(&head)), Ok(head));
        assert_eq!(verify_chain(&[], None), Ok(AuditHead::genesis()));
        assert_eq!(
            verify_chain(&[], Some(&AuditHead::genesis())),
            Ok(AuditHead::genesis())
        );
    }

    #[test]
    fn alteration_is_found_at_the_edited_event() {
        let mut c = chain(5);
        c[2].payload = r#"{"i":99}"#.into();
        let v = verify_chain(&c, None).expect_err("altered");
        assert_eq!((v.seq, v.what), (3, AuditFault::Altered));
        let mut c = chain(5);
        c[3].actor = "mallory".into();
        assert_eq!(verify_chain(&c, None).expect_err("altered").seq, 4);
    }

    #[test]
    fn a_recomputed_hash_breaks_the_next_link() {
        let mut c = chain(5);
        c[2].payload = r#"{"i":99}"#.into();
        c[2].hash = event_hash(&c[2].prev_hash, 3, &c[2].unsealed());
        let v = verify_chain(&c, None).expect_err("relinked");
        assert_eq!((v.seq, v.what), (4, AuditFault::BrokenLink));
    }

    #[test]
    fn deletion_and_reordering_are_found() {
        let mut c = chain(5);
        c.remove(1);
        let v = verify_chain(&c, None).expect_err("deleted");
        assert_eq!((v.seq, v.what), (2, AuditFault::Missing { found: 3 }));
        let mut c = chain(5);
        c.remove(0);
        assert_eq!(verify_chain(&c, None).expect_err("first deleted").seq, 1);
        // Swapping the sequence numbers of two rows: read back in seq order.
        let mut c = chain(5);
        c[1].seq = 3;
        c[2].seq = 2;
        c.swap(1, 2);
        let v = verify_chain(&c, None).expect_err("swapped");
        assert_eq!((v.seq, v.what), (2, AuditFault::BrokenLink));
        let mut c = chain(5);
        c.swap(1, 2);
        let v = verify_chain(&c, None).expect_err("out of order");
        assert_eq!(v.seq, 2);
    }

    #[test]
    fn truncation_and_rewrite_are_found_against_a_kept_head() {
        let c = chain(6);
        let kept = c[4].head();
        let v = verify_chain(&c[..3], Some(&kept)).expect_err("truncated");
        assert_eq!((v.seq, v.what), (4, AuditFault::Truncated { last: 3 }));
        // Without the kept head the truncated chain looks fine.
        assert!(verify_chain(&c[..3], None).is_ok());
        // A rewritten tail that is internally consistent.
        let mut head = c[2].head();
        let mut forged = c[..3].to_vec();
        for i in 0..3 {
            let e = seal(
                &head,
                NewAuditEvent::new(
                    Timestamp(5),
                    "x",
                    "forged",
                    None,
                    serde_json::json!({ "i": i }),
                ),
            );
            head = e.head();
            forged.push(e);
        }
        assert!(verify_chain(&forged, None).is_ok());
        let v = verify_chain(&forged, Some(&kept)).expect_err("rewritten");
        assert_eq!(v.seq, 5);
        assert!(matches!(v.what, AuditFault::HeadMismatch { .. }));
        assert!(v.to_string().contains("event 5"), "{v}");
    }

    #[test]
    fn heads_parse_and_print() {
        let h = chain(2)[1].head();
        let text = h.to_string();
        assert_eq!(text.parse::<AuditHead>(), Ok(h));
        assert!("12".parse::<AuditHead>().is_err());
        assert!("x:abc".parse::<AuditHead>().is_err());
        assert!(format!("-1:{GENESIS_HASH}").parse::<AuditHead>().is_err());
    }

    #[test]
    fn canonical_form_is_unambiguous() {
        let a = NewAuditEvent {
            at: Timestamp(1),
            actor: "a\n4:b".into(),
            kind: "k".into(),
            request_id: None,
            payload: "{}".into(),
        };
        let b = NewAuditEvent {
            actor: "a".into(),
            kind: "b\n1:k".into(),
            ..a.clone()
        };
        assert_ne!(canonical(1, &a), canonical(1, &b));
        let t = NewAuditEvent::transition(
            Timestamp(1),
            "bob",
            RequestId(3),
            RequestStatus::Pending,
            RequestStatus::Approved,
            serde_json::json!({"approvers": ["bob"]}),
        );
        assert_eq!(t.kind, "request.approved");
        let payload: serde_json::Value = serde_json::from_str(&t.payload).expect("json");
        assert_eq!(
            payload,
            serde_json::json!({"approvers": ["bob"], "from": "pending", "to": "approved"})
        );
    }
}
