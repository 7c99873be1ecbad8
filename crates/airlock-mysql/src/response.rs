//! Where a server's response to a command ends (pure): a small state
//! machine fed with each packet's length and first bytes, so the relay can
//! pass result sets through as raw bytes without decoding rows.

use crate::caps;
use crate::messages::{eof_status, OkPacket};
use crate::packet::MAX_PAYLOAD;

/// Command bytes.
pub mod com {
    /// COM_QUIT.
    pub const QUIT: u8 = 0x01;
    /// COM_INIT_DB.
    pub const INIT_DB: u8 = 0x02;
    /// COM_QUERY.
    pub const QUERY: u8 = 0x03;
    /// COM_FIELD_LIST.
    pub const FIELD_LIST: u8 = 0x04;
    /// COM_CREATE_DB (obsolete).
    pub const CREATE_DB: u8 = 0x05;
    /// COM_DROP_DB (obsolete).
    pub const DROP_DB: u8 = 0x06;
    /// COM_REFRESH.
    pub const REFRESH: u8 = 0x07;
    /// COM_SHUTDOWN.
    pub const SHUTDOWN: u8 = 0x08;
    /// COM_STATISTICS.
    pub const STATISTICS: u8 = 0x09;
    /// COM_PROCESS_INFO.
    pub const PROCESS_INFO: u8 = 0x0a;
    /// COM_PROCESS_KILL.
    pub const PROCESS_KILL: u8 = 0x0c;
    /// COM_DEBUG.
    pub const DEBUG: u8 = 0x0d;
    /// COM_PING.
    pub const PING: u8 = 0x0e;
    /// COM_CHANGE_USER.
    pub const CHANGE_USER: u8 = 0x11;
    /// COM_BINLOG_DUMP.
    pub const BINLOG_DUMP: u8 = 0x12;
    /// COM_STMT_PREPARE.
    pub const STMT_PREPARE: u8 = 0x16;
    /// COM_STMT_EXECUTE.
    pub const STMT_EXECUTE: u8 = 0x17;
    /// COM_STMT_SEND_LONG_DATA.
    pub const STMT_SEND_LONG_DATA: u8 = 0x18;
    /// COM_STMT_CLOSE.
    pub const STMT_CLOSE: u8 = 0x19;
    /// COM_STMT_RESET.
    pub const STMT_RESET: u8 = 0x1a;
    /// COM_SET_OPTION.
    pub const SET_OPTION: u8 = 0x1b;
    /// COM_STMT_FETCH.
    pub const STMT_FETCH: u8 = 0x1c;
    /// COM_RESET_CONNECTION.
    pub const RESET_CONNECTION: u8 = 0x1f;
    /// MariaDB's COM_STMT_BULK_EXECUTE.
    pub const STMT_BULK_EXECUTE: u8 = 0xfa;
}

/// Bytes of a packet's start the machine needs to judge it.
pub const HEAD: usize = 32;

/// What the relay should do after a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// More packets of this response follow.
    More,
    /// The response is complete.
    Done,
    /// The server asks for a local file (`LOAD DATA LOCAL`): the client
    /// sends it, ending with an empty packet, then the server answers.
    LocalInfile,
}

/// What a command's response looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// No response (COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA, COM_QUIT).
    None,
    /// One OK, ERR or EOF packet.
    Single,
    /// Result sets, OK or ERR, possibly several (COM_QUERY, COM_STMT_EXECUTE).
    Results,
    /// Rows of an open cursor (COM_STMT_FETCH).
    Fetch,
    /// COM_STMT_PREPARE's answer.
    Prepare,
    /// Column definitions until EOF (COM_FIELD_LIST).
    FieldList,
}

impl Shape {
    /// The shape of the answer to command byte `cmd`.
    pub fn of(cmd: u8) -> Shape {
        match cmd {
            com::QUIT | com::STMT_CLOSE | com::STMT_SEND_LONG_DATA => Shape::None,
            com::QUERY | com::STMT_EXECUTE | com::STMT_BULK_EXECUTE => Shape::Results,
            com::STMT_FETCH => Shape::Fetch,
            com::STMT_PREPARE => Shape::Prepare,
            com::FIELD_LIST => Shape::FieldList,
            _ => Shape::Single,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// First packet of a result (OK, ERR, local infile or column count).
    Start,
    /// Column definitions still to come.
    Columns(u64),
    /// The EOF after column definitions (without `CLIENT_DEPRECATE_EOF`).
    ColumnsEof,
    /// Rows until the terminator.
    Rows,
    /// COM_STMT_PREPARE: parameter definitions, then columns.
    Params { params: u64, columns: u64 },
    /// The EOF after parameter definitions.
    ParamsEof { columns: u64 },
    /// Prepare's column definitions.
    PrepColumns(u64),
    /// The EOF after prepare's columns.
    PrepColumnsEof,
    /// One packet.
    Single,
    /// COM_FIELD_LIST's definitions.
    FieldList,
    /// After the local file: the server's OK or ERR.
    AfterInfile,
    /// Complete.
    Done,
}

/// Follows one response.
#[derive(Debug, Clone)]
pub struct Response {
    state: State,
    deprecate_eof: bool,
    /// A continued (16 MiB) packet: the next packet is the rest of it.
    continued: bool,
    /// Status flags of the last OK or EOF seen.
    pub status: u16,
    /// Prepare's statement id, columns and parameters, once seen.
    pub prepared: Option<(u32, u16, u16)>,
    /// Whether the response included an ERR packet.
    pub failed: bool,
    /// The last OK packet's affected rows, when the response ended with one.
    pub affected_rows: Option<u64>,
    /// Affected rows summed over every OK packet (all statements of a text).
    pub affected_total: u64,
}

impl Response {
    /// The response to a command of `shape`, under the session's
    /// `CLIENT_DEPRECATE_EOF` choice.
    pub fn new(shape: Shape, capabilities: u32) -> Self {
        let state = match shape {
            Shape::None => State::Done,
            Shape::Single => State::Single,
            Shape::Results => State::Start,
            Shape::Fetch => State::Rows,
            Shape::Prepare => State::Start,
            Shape::FieldList => State::FieldList,
        };
        let mut r = Self {
            state,
            deprecate_eof: capabilities & caps::DEPRECATE_EOF != 0,
            continued: false,
            status: 0,
            prepared: None,
            failed: false,
            affected_rows: None,
            affected_total: 0,
        };
        if shape == Shape::Prepare {
            r.prepared = Some((0, 0, 0));
        }
        r
    }

    /// The server's OK or ERR after a local file was sent.
    pub fn after_infile(&mut self) {
        self.state = State::AfterInfile;
    }

    /// Whether the response is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Takes one packet: its payload length and its first bytes (at least
    /// `min(len, HEAD)` of them).
    pub fn packet(&mut self, len: usize, head: &[u8]) -> Step {
        if self.continued {
            self.continued = len == MAX_PAYLOAD;
            return self.step();
        }
        self.continued = len == MAX_PAYLOAD;
        let first = head.first().copied();
        // ERR can end a response in any state but a row (whose first byte
        // is a length, never 0xFF) — 0xFF is ERR in every state here.
        if first == Some(0xff) && self.state != State::Done {
            self.failed = true;
            self.state = State::Done;
            return Step::Done;
        }
        let is_terminator = first == Some(0xfe)
            && if self.deprecate_eof {
                len < MAX_PAYLOAD
            } else {
                len < 9
            };
        self.state = match self.state {
            State::Done => State::Done,
            State::Single => {
                if first == Some(0x00) {
                    self.note_ok(head);
                }
                State::Done
            }
            State::Start if self.prepared.is_some() => match first {
                Some(0x00) => {
                    let id = le32(head, 1);
                    let columns = le16(head, 5);
                    let params = le16(head, 7);
                    self.prepared = Some((id, columns, params));
                    self.prep_after_ok(u64::from(params), u64::from(columns))
                }
                _ => State::Done,
            },
            State::Start => match first {
                Some(0x00) => {
                    self.note_ok(head);
                    self.after_end()
                }
                Some(0xfb) => return Step::LocalInfile,
                _ => match column_count(head) {
                    Some(0) | None => State::Done,
                    Some(n) => State::Columns(n),
                },
            },
            State::Columns(n) => {
                if n > 1 {
                    State::Columns(n - 1)
                } else if self.deprecate_eof {
                    State::Rows
                } else {
                    State::ColumnsEof
                }
            }
            State::ColumnsEof => {
                self.status = eof_status(head);
                if self.status & caps::STATUS_CURSOR_EXISTS != 0 {
                    State::Done
                } else {
                    State::Rows
                }
            }
            State::Rows if is_terminator => {
                if self.deprecate_eof {
                    self.note_ok(head);
                } else {
                    self.status = eof_status(head);
                }
                self.after_end()
            }
            State::Rows => State::Rows,
            State::Params { params, columns } => {
                if params > 1 {
                    State::Params {
                        params: params - 1,
                        columns,
                    }
                } else if self.deprecate_eof {
                    self.prep_columns(columns)
                } else {
                    State::ParamsEof { columns }
                }
            }
            State::ParamsEof { columns } => self.prep_columns(columns),
            State::PrepColumns(n) => {
                if n > 1 {
                    State::PrepColumns(n - 1)
                } else if self.deprecate_eof {
                    State::Done
                } else {
                    State::PrepColumnsEof
                }
            }
            State::PrepColumnsEof => State::Done,
            State::FieldList if is_terminator => State::Done,
            State::FieldList => State::FieldList,
            State::AfterInfile => {
                if first == Some(0x00) {
                    self.note_ok(head);
                }
                self.after_end()
            }
        };
        self.step()
    }

    fn step(&self) -> Step {
        if self.state == State::Done && !self.continued {
            Step::Done
        } else {
            Step::More
        }
    }

    fn note_ok(&mut self, head: &[u8]) {
        if let Ok(ok) = OkPacket::decode(head) {
            self.status = ok.status;
            self.affected_rows = Some(ok.affected_rows);
            self.affected_total = self.affected_total.saturating_add(ok.affected_rows);
        }
    }

    fn after_end(&self) -> State {
        if self.status & caps::STATUS_MORE_RESULTS != 0 {
            State::Start
        } else {
            State::Done
        }
    }

    fn prep_after_ok(&self, params: u64, columns: u64) -> State {
        if params > 0 {
            State::Params { params, columns }
        } else {
            self.prep_columns(columns)
        }
    }

    fn prep_columns(&self, columns: u64) -> State {
        if columns > 0 {
            State::PrepColumns(columns)
        } else {
            State::Done
        }
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

fn column_count(head: &[u8]) -> Option<u64> {
    crate::wire::Reader::new(head).lenenc("column count").ok()?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{eof, OkPacket};

    fn ok(status: u16) -> Vec<u8> {
        OkPacket {
            status,
            ..Default::default()
        }
        .encode(0)
        .to_vec()
    }

    fn feed(r: &mut Response, packets: &[Vec<u8>]) -> Vec<Step> {
        packets.iter().map(|p| r.packet(p.len(), p)).collect()
    }

    #[test]
    fn result_set_with_and_without_eof() {
        use Step::*;
        let row = vec![1, b'x'];
        let col = vec![3, b'd', b'e', b'f'];
        let mut r = Response::new(Shape::Results, 0);
        let steps = feed(
            &mut r,
            &[
                vec![1],
                col.clone(),
                eof(0, 2).to_vec(),
                row.clone(),
                eof(0, 2).to_vec(),
            ],
        );
        assert_eq!(steps, [More, More, More, More, Done]);
        let mut r = Response::new(Shape::Results, caps::DEPRECATE_EOF);
        let mut end = OkPacket {
            status: 2,
            ..Default::default()
        }
        .encode(0xfe)
        .to_vec();
        let steps = feed(&mut r, &[vec![1], col.clone(), row.clone(), end.clone()]);
        assert_eq!(steps, [More, More, More, Done]);
        // More results: a second result follows.
        end = OkPacket {
            status: caps::STATUS_MORE_RESULTS,
            ..Default::default()
        }
        .encode(0xfe)
        .to_vec();
        let mut r = Response::new(Shape::Results, caps::DEPRECATE_EOF);
        let steps = feed(&mut r, &[vec![1], col, row, end, ok(0)]);
        assert_eq!(steps, [More, More, More, More, Done]);
    }

    #[test]
    fn ok_err_infile_and_none() {
        let mut r = Response::new(Shape::Results, 0);
        assert_eq!(r.packet(7, &ok(caps::STATUS_MORE_RESULTS)), Step::More);
        assert_eq!(r.packet(3, &[0xff, 1, 2]), Step::Done);
        assert!(r.failed);
        let mut r = Response::new(Shape::Results, 0);
        assert_eq!(r.packet(5, b"\xfbfile"), Step::LocalInfile);
        r.after_infile();
        assert_eq!(r.packet(7, &ok(0)), Step::Done);
        assert!(Response::new(Shape::None, 0).is_done());
    }

    #[test]
    fn prepare_and_cursor() {
        use Step::*;
        // id 1, 2 columns, 1 param.
        let prep_ok = vec![0, 1, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0];
        let def = vec![3, b'd', b'e', b'f'];
        let mut r = Response::new(Shape::Prepare, 0);
        let steps = feed(
            &mut r,
            &[
                prep_ok.clone(),
                def.clone(),
                eof(0, 2).to_vec(),
                def.clone(),
                def.clone(),
                eof(0, 2).to_vec(),
            ],
        );
        assert_eq!(steps, [More, More, More, More, More, Done]);
        assert_eq!(r.prepared, Some((1, 2, 1)));
        let mut r = Response::new(Shape::Prepare, caps::DEPRECATE_EOF);
        let steps = feed(&mut r, &[prep_ok, def.clone(), def.clone(), def.clone()]);
        assert_eq!(steps, [More, More, More, Done]);
        // Execute with a cursor: definitions, EOF with CURSOR_EXISTS, no rows.
        let mut r = Response::new(Shape::Results, 0);
        let steps = feed(
            &mut r,
            &[vec![1], def, eof(0, caps::STATUS_CURSOR_EXISTS).to_vec()],
        );
        assert_eq!(steps, [More, More, Done]);
        let mut r = Response::new(Shape::Fetch, 0);
        let steps = feed(
            &mut r,
            &[vec![0, 0, 1], eof(0, caps::STATUS_LAST_ROW_SENT).to_vec()],
        );
        assert_eq!(steps, [More, Done]);
    }

    #[test]
    fn continued_rows_are_not_terminators() {
        let mut r = Response::new(Shape::Fetch, 0);
        assert_eq!(r.packet(MAX_PAYLOAD, &[0xfe, 0, 0]), Step::More);
        // The continuation may start with anything.
        assert_eq!(r.packet(3, &[0xfe, 0, 0]), Step::More);
        assert_eq!(r.packet(5, &eof(0, 0)), Step::Done);
    }
}
