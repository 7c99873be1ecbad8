//! Postgres v3 framing and the message decoders of `airlock-pg` on arbitrary
//! bytes, as the relays meet them: frames split off a read buffer
//! (`frame::split_frame`, and `splice::Walker` fed in chunks), every typed
//! decoder of `frame.rs` on every frame, the protected-target judge
//! (`gate::Gate`) on the client messages it sees, the `application_name`
//! rewrites (`plain::client_frame`, `appname::ShowRows`) and the encoders
//! decoded back. Nothing may panic, and:
//! - `split_frame` and the chunked `Walker` hand over the same frames;
//! - every encoder's output is one well-formed frame that decodes back to
//!   what was put in (NULs dropped);
//! - a Parse whose SQL is replaced keeps its name and parameter types.
//!
//! Input: byte 0 sets the Walker's chunk size, the rest is the byte stream.
#![no_main]

use std::sync::Arc;

use airlock_pg::appname::{self, AppName, ShowRows};
use airlock_pg::frame::{self, Report};
use airlock_pg::gate::{Gate, Judgement};
use airlock_pg::plain;
use airlock_pg::relay::RelayError;
use airlock_pg::splice::{FrameHandler, Splices, Walker};
use airlock_sql::Classifier;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

/// Collects the frames a relay direction is handed.
struct Collect {
    wants: fn(u8) -> bool,
    seen: Vec<Vec<u8>>,
}

impl FrameHandler for Collect {
    fn wants(&self, tag: u8) -> bool {
        (self.wants)(tag)
    }

    fn on_frame(&mut self, tag: u8, f: &[u8]) -> Result<Option<BytesMut>, RelayError> {
        assert_eq!(f.first(), Some(&tag), "a handed frame starts with its tag");
        self.seen.push(f.to_vec());
        Ok(None)
    }
}

/// Walks `stream` as a relay does, reading `chunk` bytes at a time; returns
/// the frames handed to the handler.
fn walk_in_chunks(stream: &[u8], chunk: usize, wants: fn(u8) -> bool) -> Vec<Vec<u8>> {
    let mut walker = Walker::default();
    let mut handler = Collect {
        wants,
        seen: Vec::new(),
    };
    let mut splices = Splices::new();
    let mut buf: Vec<u8> = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        match walker.walk(&buf, &mut handler, &mut splices) {
            Ok(n) => {
                assert!(n <= buf.len(), "walk passes at most what it has");
                buf.drain(..n);
            }
            Err(_) => break,
        }
    }
    assert!(splices.is_empty(), "the handler replaced nothing");
    handler.seen
}

fn all(_: u8) -> bool {
    true
}

fn client_sql_frames(t: u8) -> bool {
    matches!(t, b'Q' | b'P' | b'B')
}

/// One frame made by an encoder: its header matches its length.
fn one_frame(b: &[u8], tag: u8) {
    let h = frame::peek_header(b)
        .expect("an encoded frame has a valid length")
        .expect("an encoded frame has a header");
    assert_eq!(h.tag, tag);
    assert_eq!(h.frame_len, b.len(), "the length field covers the frame");
}

fn no_nul(b: &[u8]) -> Vec<u8> {
    b.iter().copied().filter(|&c| c != 0).collect()
}

/// Every decoder on one frame, whatever its tag.
fn decode_all(f: &[u8]) {
    let _ = frame::query_sql(f);
    let _ = frame::parse_message(f);
    let _ = frame::bind_statement(f);
    let types = frame::parse_types(f).unwrap_or_default();
    let _ = frame::bind_params(f, &types);
    let _ = frame::bind_params(f, &[]);
    let _ = frame::execute_portal(f);
    let _ = frame::close_target(f);
    if let Ok(call) = frame::function_call(f) {
        for i in 0..=call.args.len() {
            let _ = call.int_arg(i);
        }
    }
    let _ = frame::ready_status(f);
    let _ = frame::backend_key(f);
    for field in [b'S', b'V', b'C', b'M', b'D', b'H', b'P', 0] {
        let _ = frame::error_field(f, field);
        let _ = frame::error_text(f, field);
    }
    let _ = frame::error_summary(f);
    let _ = frame::command_tag(f);
    let _ = frame::sasl_initial(f);
    let _ = frame::cstr(frame::body(f));
}

/// The encoders, decoded back.
fn round_trips(f: &[u8]) {
    let text = String::from_utf8_lossy(frame::body(f));
    let text: &str = &text;
    let mut b = BytesMut::new();

    frame::put_query(&mut b, text);
    one_frame(&b, b'Q');
    assert_eq!(frame::query_sql(&b), Ok(&no_nul(text.as_bytes())[..]));

    b.clear();
    frame::put_bind(&mut b, text);
    one_frame(&b, b'B');
    assert_eq!(frame::bind_statement(&b), Ok(&no_nul(text.as_bytes())[..]));
    assert_eq!(frame::bind_params(&b, &[]), Ok(Vec::new()));

    b.clear();
    frame::put_command_complete(&mut b, text);
    one_frame(&b, b'C');
    assert_eq!(
        frame::command_tag(&b).into_bytes(),
        no_nul(text.as_bytes()),
        "CommandComplete tag"
    );

    let (head, tail) = text.split_at(
        text.char_indices()
            .nth(text.chars().count() / 2)
            .map_or(text.len(), |(i, _)| i),
    );
    let report = Report {
        severity: "ERROR",
        code: "AL001",
        message: head,
        detail: Some(tail),
        hint: (!tail.is_empty()).then_some(text),
    };
    b.clear();
    frame::put_error(&mut b, &report);
    one_frame(&b, b'E');
    assert_eq!(
        frame::error_field(&b, b'M'),
        Some(&no_nul(head.as_bytes())[..])
    );
    assert_eq!(
        frame::error_field(&b, b'D'),
        Some(&no_nul(tail.as_bytes())[..])
    );
    assert_eq!(frame::error_field(&b, b'C'), Some(&b"AL001"[..]));
    b.clear();
    frame::put_notice(&mut b, text);
    one_frame(&b, b'N');

    b.clear();
    frame::put_row_description(&mut b, &[head, tail]);
    one_frame(&b, b'T');
    b.clear();
    frame::put_data_row(&mut b, &[Some(head), None, Some(tail)]);
    one_frame(&b, b'D');
    b.clear();
    frame::put_negotiate_protocol(&mut b, 0, &[head, tail]);
    one_frame(&b, b'v');

    let body = frame::body(f);
    if body.len() >= 8 {
        let pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let key = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
        b.clear();
        frame::put_backend_key(&mut b, pid, key);
        one_frame(&b, b'K');
        assert_eq!(frame::backend_key(&b), Ok((pid, key)));
    }
    b.clear();
    frame::put_auth(&mut b, 11, body);
    one_frame(&b, b'R');
    assert_eq!(&frame::body(&b)[4..], body);
    b.clear();
    frame::put_auth_sasl(&mut b);
    one_frame(&b, b'R');

    // A Parse with its SQL replaced (the application_name rewrite) keeps
    // its statement name and declared parameter types.
    if let Ok((name, _)) = frame::parse_message(f) {
        let replaced = appname::replace_parse_sql(f, "SET application_name TO 'x'")
            .expect("a Parse that decodes can be rewritten");
        one_frame(&replaced, b'P');
        assert_eq!(
            frame::parse_message(&replaced),
            Ok((name, &b"SET application_name TO 'x'"[..]))
        );
        assert_eq!(frame::parse_types(&replaced), frame::parse_types(f));
    }
}

/// The client messages as the protected relay judges them.
fn judge(gate: &mut Gate, app: &AppName, tag: u8, f: &[u8], last_types: &mut Vec<u32>) {
    let verdict = match tag {
        b'Q' => match frame::query_sql(f) {
            Ok(sql) => gate.query(sql),
            Err(_) => return,
        },
        b'P' => match frame::parse_message(f) {
            Ok((name, sql)) => {
                *last_types = frame::parse_types(f).unwrap_or_default();
                gate.parse_typed(name, sql, last_types)
            }
            Err(_) => return,
        },
        b'B' => match frame::bind_statement(f) {
            Ok(name) => {
                let _ = frame::bind_params(f, last_types);
                gate.bind(name)
            }
            Err(_) => return,
        },
        b'F' => gate.function_call(frame::function_call(f).ok().as_ref()),
        b'C' => {
            if let Ok((b'S', name)) = frame::close_target(f) {
                gate.close_statement(name);
            }
            return;
        }
        b'E' | b'D' | b'H' | b'S' | b'X' | b'd' | b'c' | b'f' => return,
        other => gate.unknown_message(other),
    };
    if verdict == Judgement::Pass {
        // Passed frames go upstream with application_name labelled.
        if let Ok(Some(out)) = plain::client_frame(app, tag, f) {
            one_frame(&out, tag);
        }
    } else if tag == b'Q' {
        assert!(
            matches!(&verdict, Judgement::Hold { reasons, .. } if !reasons.is_empty()),
            "a held Query says why: {verdict:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&knob, stream)) = data.split_first() else {
        return;
    };

    // Frames split off whole, as the protected relay does.
    let mut buf = BytesMut::from(stream);
    let mut frames: Vec<(u8, Bytes)> = Vec::new();
    while let Ok(Some((tag, f))) = frame::split_frame(&mut buf) {
        let h = frame::peek_header(&f)
            .expect("a split frame has a valid header")
            .expect("a split frame has 5 bytes");
        assert_eq!((h.tag, h.frame_len), (tag, f.len()));
        assert_eq!(frame::body(&f).len(), f.len() - 5);
        frames.push((tag, f));
    }
    let split: usize = frames.iter().map(|(_, f)| f.len()).sum();
    assert_eq!(split + buf.len(), stream.len(), "split_frame loses no byte");

    // The same frames, walked in chunks as the streaming relays do.
    let chunk = usize::from(knob % 64) + 1;
    let expected: Vec<Vec<u8>> = frames.iter().map(|(_, f)| f.to_vec()).collect();
    assert_eq!(
        walk_in_chunks(stream, chunk, all),
        expected,
        "chunk {chunk}"
    );
    let wanted: Vec<Vec<u8>> = frames
        .iter()
        .filter(|(t, _)| client_sql_frames(*t))
        .map(|(_, f)| f.to_vec())
        .collect();
    assert_eq!(
        walk_in_chunks(stream, chunk, client_sql_frames),
        wanted,
        "chunk {chunk}, streamed frames skipped by length"
    );

    let classifier = Arc::new(Classifier::new(64));
    let mut gate = Gate::new(classifier);
    let app = AppName::new("fuzz");
    let mut rows = ShowRows::default();
    let mut last_types = Vec::new();
    for (tag, f) in &frames {
        decode_all(f);
        round_trips(f);
        judge(&mut gate, &app, *tag, f, &mut last_types);
        // The same bytes as an upstream frame towards the client.
        let _ = app.parameter_status(f);
        if rows.wants(&app, *tag) {
            if let Some(out) = rows.on_frame(&app, *tag, f) {
                one_frame(&out, *tag);
            }
        }
    }
    // A stream that is not frames at all: the decoders on the raw bytes.
    decode_all(stream);
});
