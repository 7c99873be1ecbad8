//! The binary prepared statements of a protected session, as the gate
//! knows them: each id's SQL and judgement, the parameter types its last
//! execute bound and the long data sent for it (bounded), so that an
//! execute of a change becomes the text it means.

use crate::binary_params::{self, ParamType};
use airlock_sql::mysql_lexer::SqlModes;
use std::collections::HashMap;

/// Long data kept per statement for a change's request; more is refused.
pub const LONG_DATA_LIMIT: usize = 1 << 20;

/// One prepared statement.
#[derive(Debug)]
struct Statement {
    sql: String,
    passes: bool,
    params: u16,
    types: Option<Vec<ParamType>>,
    long: HashMap<u16, Vec<u8>>,
    long_bytes: usize,
    overflowed: bool,
}

/// What an execute is.
#[derive(Debug, PartialEq, Eq)]
pub enum Execution {
    /// A read: relay it.
    Read,
    /// A change: this text, with its parameters as literals.
    Change(String),
    /// Neither can be told; the reason.
    Refused(String),
}

/// The prepared statements of one session.
#[derive(Debug, Default)]
pub struct Prepared {
    by_id: HashMap<u32, Statement>,
    pending: Option<(String, bool)>,
}

fn id_of(payload: &[u8]) -> Option<u32> {
    let b = payload.get(1..5)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl Prepared {
    /// A COM_STMT_PREPARE of `sql`, judged `passes`, is on its way.
    pub fn preparing(&mut self, sql: &str, passes: bool) {
        self.pending = Some((sql.to_string(), passes));
    }

    /// The upstream answered the prepare: statement `id` with `params`.
    pub fn prepared(&mut self, answer: Option<(u32, u16)>) {
        if let (Some((sql, passes)), Some((id, params))) = (self.pending.take(), answer) {
            self.by_id.insert(
                id,
                Statement {
                    sql,
                    passes,
                    params,
                    types: None,
                    long: HashMap::new(),
                    long_bytes: 0,
                    overflowed: false,
                },
            );
        }
    }

    /// Forgets the prepare on its way (it failed or another command came).
    pub fn abandon(&mut self) {
        self.pending = None;
    }

    /// COM_STMT_SEND_LONG_DATA: kept for a change (bounded), not for a read.
    pub fn long_data(&mut self, payload: &[u8]) {
        let (Some(id), Some(p)) = (id_of(payload), payload.get(5..7)) else {
            return;
        };
        let param = u16::from_le_bytes([p[0], p[1]]);
        let Some(st) = self.by_id.get_mut(&id).filter(|s| !s.passes) else {
            return;
        };
        let data = &payload[7..];
        if st.long_bytes + data.len() > LONG_DATA_LIMIT {
            st.overflowed = true;
            return;
        }
        st.long_bytes += data.len();
        st.long.entry(param).or_default().extend_from_slice(data);
    }

    /// COM_STMT_RESET: the long data is gone.
    pub fn reset(&mut self, payload: &[u8]) {
        if let Some(st) = id_of(payload).and_then(|id| self.by_id.get_mut(&id)) {
            st.long.clear();
            st.long_bytes = 0;
            st.overflowed = false;
        }
    }

    /// COM_STMT_CLOSE.
    pub fn close(&mut self, payload: &[u8]) {
        if let Some(id) = id_of(payload) {
            self.by_id.remove(&id);
        }
    }

    /// Every statement is gone (COM_RESET_CONNECTION).
    pub fn clear(&mut self) {
        self.by_id.clear();
        self.pending = None;
    }

    /// Whether the statement a command's payload names (its id after the
    /// command byte) is a read airlock saw prepared.
    pub fn passes(&self, payload: &[u8]) -> bool {
        id_of(payload)
            .and_then(|id| self.by_id.get(&id))
            .is_some_and(|s| s.passes)
    }

    /// What COM_STMT_EXECUTE `payload` is; `utf8` says whether the
    /// session's text parameters are UTF-8.
    pub fn execute(&mut self, payload: &[u8], modes: SqlModes, utf8: bool) -> Execution {
        let Some(st) = id_of(payload).and_then(|id| self.by_id.get_mut(&id)) else {
            return Execution::Refused("a prepared statement airlock did not see prepared".into());
        };
        if st.passes {
            return Execution::Read;
        }
        if st.overflowed {
            return Execution::Refused(format!(
                "more than {LONG_DATA_LIMIT} bytes of long data for a change"
            ));
        }
        let decoded = binary_params::decode_execute(
            payload,
            usize::from(st.params),
            st.types.as_deref(),
            &st.long,
        );
        // Long data counts for one execute.
        st.long.clear();
        st.long_bytes = 0;
        let e = match decoded {
            Ok(e) => e,
            Err(why) => return Execution::Refused(why),
        };
        st.types = Some(e.types);
        match binary_params::render(&st.sql, modes, &e.values, utf8) {
            Ok(text) => Execution::Change(text),
            Err(why) => Execution::Refused(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn execute_packet(id: u32, long: bool) -> Vec<u8> {
        let mut p = vec![0x17];
        p.extend_from_slice(&id.to_le_bytes());
        p.extend_from_slice(&[0, 1, 0, 0, 0]);
        p.push(0); // no NULLs
        p.push(1); // types bound
        p.extend_from_slice(&[3, 0, 252, 0]); // LONG, BLOB
        p.extend_from_slice(&7i32.to_le_bytes());
        if !long {
            p.extend_from_slice(&[2, 0xAB, 0xCD]);
        }
        p
    }

    #[test]
    fn a_change_becomes_its_text_and_a_read_passes() {
        let mut p = Prepared::default();
        p.preparing("UPDATE t SET b = ? WHERE id = ?", false);
        p.prepared(Some((5, 2)));
        p.preparing("SELECT ?", true);
        p.prepared(Some((6, 1)));
        let m = SqlModes::default();
        // Types LONG then BLOB, bound to b and id in that order.
        assert_eq!(
            p.execute(&execute_packet(5, false), m, true),
            Execution::Change("UPDATE t SET b = 7 WHERE id = X'ABCD'".into())
        );
        assert_eq!(
            p.execute(&execute_packet(6, false), m, true),
            Execution::Read
        );
        assert!(p.passes(&execute_packet(6, false)) && !p.passes(&execute_packet(5, false)));
        let mut long = vec![0x18];
        long.extend_from_slice(&5u32.to_le_bytes());
        long.extend_from_slice(&1u16.to_le_bytes());
        long.extend_from_slice(b"xy");
        p.long_data(&long);
        assert_eq!(
            p.execute(&execute_packet(5, true), m, true),
            Execution::Change("UPDATE t SET b = 7 WHERE id = X'7879'".into())
        );
        p.close(&execute_packet(5, false));
        assert!(matches!(
            p.execute(&execute_packet(5, false), m, true),
            Execution::Refused(_)
        ));
    }

    #[test]
    fn long_data_is_bounded() {
        let mut p = Prepared::default();
        p.preparing("UPDATE t SET b = ? WHERE id = ?", false);
        p.prepared(Some((1, 2)));
        let mut long = vec![0x18];
        long.extend_from_slice(&1u32.to_le_bytes());
        long.extend_from_slice(&1u16.to_le_bytes());
        long.extend(std::iter::repeat_n(0u8, LONG_DATA_LIMIT + 1));
        p.long_data(&long);
        assert!(matches!(
            p.execute(&execute_packet(1, true), SqlModes::default(), true),
            Execution::Refused(_)
        ));
    }
}
