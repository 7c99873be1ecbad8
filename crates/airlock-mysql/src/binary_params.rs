//! The parameters of a COM_STMT_EXECUTE (pure), and the text a held
//! prepared change becomes: each `?` replaced by a typed literal of its
//! value, so the request is reviewed, matched on re-send and run as the
//! text it means. What cannot be written exactly (a string in a character
//! set airlock does not know, NaN) is refused, never guessed.

use crate::wire::Reader;
use airlock_sql::mysql_lexer::{self, SqlModes, TokenKind};
use std::collections::HashMap;

/// Column types of the binary protocol.
mod ty {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

/// One parameter's type: the type byte and the unsigned flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamType {
    /// The column type.
    pub code: u8,
    /// The unsigned flag (0x80 of the second byte).
    pub unsigned: bool,
}

/// One parameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL.
    Null,
    /// An integer, in decimal.
    Int(String),
    /// A floating-point number.
    Float(f64),
    /// A DECIMAL as the client wrote it.
    Decimal(String),
    /// Text in the connection's character set.
    Text(Vec<u8>),
    /// Bytes (BLOB, BIT, GEOMETRY).
    Bytes(Vec<u8>),
    /// A date, time or datetime, written as MySQL reads it.
    Temporal(String),
}

/// The parameters of an execute, with the types it bound (or reused).
#[derive(Debug)]
pub struct Execute {
    /// One value per `?`.
    pub values: Vec<Value>,
    /// The types in force (for the next execute that binds none).
    pub types: Vec<ParamType>,
}

/// Decodes COM_STMT_EXECUTE `payload` of a statement with `count`
/// parameters; `prior` are the types bound by an earlier execute, `long`
/// the COM_STMT_SEND_LONG_DATA values by parameter.
pub fn decode_execute(
    payload: &[u8],
    count: usize,
    prior: Option<&[ParamType]>,
    long: &HashMap<u16, Vec<u8>>,
) -> Result<Execute, String> {
    let mut r = Reader::new(payload.get(1..).ok_or("empty")?);
    let bad = |e: crate::wire::Malformed| format!("malformed COM_STMT_EXECUTE ({})", e.0);
    r.bytes(4, "parameter").map_err(bad)?; // statement id
    r.bytes(1, "parameter").map_err(bad)?; // cursor flags
    r.bytes(4, "parameter").map_err(bad)?; // iteration count
    if count == 0 {
        return Ok(Execute {
            values: Vec::new(),
            types: Vec::new(),
        });
    }
    let nulls = r
        .bytes(count.div_ceil(8), "parameter")
        .map_err(bad)?
        .to_vec();
    let bound = r.bytes(1, "parameter").map_err(bad)?[0];
    let types: Vec<ParamType> = if bound == 1 {
        let mut t = Vec::with_capacity(count);
        for _ in 0..count {
            let b = r.bytes(2, "parameter").map_err(bad)?;
            t.push(ParamType {
                code: b[0],
                unsigned: b[1] & 0x80 != 0,
            });
        }
        t
    } else {
        prior
            .filter(|p| p.len() == count)
            .ok_or("an execute that binds no parameter types before any did")?
            .to_vec()
    };
    let mut values = Vec::with_capacity(count);
    for (i, t) in types.iter().enumerate() {
        if nulls[i / 8] & (1 << (i % 8)) != 0 {
            values.push(Value::Null);
            continue;
        }
        if let Some(data) = u16::try_from(i).ok().and_then(|i| long.get(&i)) {
            values.push(
                bytes_value(t.code, data.clone())
                    .ok_or_else(|| format!("long data for a parameter of type {}", t.code))?,
            );
            continue;
        }
        values.push(value(&mut r, *t).map_err(bad)?);
    }
    Ok(Execute { values, types })
}

/// A length-prefixed value of type `code`; `None` for a type that does
/// not carry bytes (or that airlock does not know).
fn bytes_value(code: u8, data: Vec<u8>) -> Option<Value> {
    match code {
        ty::TINY_BLOB | ty::MEDIUM_BLOB | ty::LONG_BLOB | ty::BLOB | ty::BIT | ty::GEOMETRY => {
            Some(Value::Bytes(data))
        }
        ty::VARCHAR | ty::VAR_STRING | ty::STRING | ty::JSON | ty::ENUM | ty::SET => {
            Some(Value::Text(data))
        }
        ty::DECIMAL | ty::NEWDECIMAL => {
            Some(Value::Decimal(String::from_utf8_lossy(&data).into_owned()))
        }
        _ => None,
    }
}

fn int_le(b: &[u8], unsigned: bool) -> String {
    let mut buf = [0u8; 8];
    buf[..b.len()].copy_from_slice(b);
    let raw = u64::from_le_bytes(buf);
    if unsigned {
        return raw.to_string();
    }
    let shift = 64 - 8 * b.len() as u32;
    (((raw << shift) as i64) >> shift).to_string()
}

fn value(r: &mut Reader<'_>, t: ParamType) -> Result<Value, crate::wire::Malformed> {
    Ok(match t.code {
        ty::NULL => Value::Null,
        ty::TINY => Value::Int(int_le(r.bytes(1, "parameter")?, t.unsigned)),
        ty::SHORT | ty::YEAR => Value::Int(int_le(r.bytes(2, "parameter")?, t.unsigned)),
        ty::LONG | ty::INT24 => Value::Int(int_le(r.bytes(4, "parameter")?, t.unsigned)),
        ty::LONGLONG => Value::Int(int_le(r.bytes(8, "parameter")?, t.unsigned)),
        ty::FLOAT => {
            let b = r.bytes(4, "parameter")?;
            Value::Float(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        }
        ty::DOUBLE => {
            let b = r.bytes(8, "parameter")?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Value::Float(f64::from_le_bytes(a))
        }
        ty::DATE | ty::DATETIME | ty::TIMESTAMP => {
            let n = usize::from(r.bytes(1, "parameter")?[0]);
            Value::Temporal(datetime(r.bytes(n, "parameter")?))
        }
        ty::TIME => {
            let n = usize::from(r.bytes(1, "parameter")?[0]);
            Value::Temporal(time(r.bytes(n, "parameter")?))
        }
        code => {
            let data = r.lenenc_bytes("value")?.to_vec();
            bytes_value(code, data).ok_or(crate::wire::Malformed("parameter type"))?
        }
    })
}

fn datetime(b: &[u8]) -> String {
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let year = u16::from_le_bytes([at(0), at(1)]);
    let mut s = format!("{year:04}-{:02}-{:02}", at(2), at(3));
    if b.len() >= 7 {
        s.push_str(&format!(" {:02}:{:02}:{:02}", at(4), at(5), at(6)));
    } else if b.is_empty() {
        s.push_str(" 00:00:00");
    }
    if b.len() >= 11 {
        let micro = u32::from_le_bytes([at(7), at(8), at(9), at(10)]);
        s.push_str(&format!(".{micro:06}"));
    }
    s
}

fn time(b: &[u8]) -> String {
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let sign = if at(0) == 1 { "-" } else { "" };
    let days = u32::from_le_bytes([at(1), at(2), at(3), at(4)]);
    let hours = u64::from(days) * 24 + u64::from(at(5));
    let mut s = format!("{sign}{hours:02}:{:02}:{:02}", at(6), at(7));
    if b.len() >= 12 {
        let micro = u32::from_le_bytes([at(8), at(9), at(10), at(11)]);
        s.push_str(&format!(".{micro:06}"));
    }
    s
}

/// Whether the handshake collation `id` is a UTF-8 one (utf8mb3 or
/// utf8mb4): the only character sets whose text airlock writes as
/// literals. (0 means "unknown" and is not.)
pub fn is_utf8_collation(id: u8) -> bool {
    matches!(id, 33 | 45 | 46 | 76 | 83 | 192..=215 | 224..=247 | 255)
}

/// `sql` with each `?` (as MySQL lexes it under `modes`) replaced by the
/// literal of its value; text is written only when `utf8` (the session's
/// character set is UTF-8) and it is valid UTF-8.
pub fn render(sql: &str, modes: SqlModes, values: &[Value], utf8: bool) -> Result<String, String> {
    let tokens = mysql_lexer::scan(sql, modes).map_err(|e| e.to_string())?;
    let marks: Vec<_> = tokens
        .iter()
        .filter(|t| t.kind == TokenKind::Other && &sql[t.start..t.end] == "?")
        .collect();
    if marks.len() != values.len() {
        return Err(format!(
            "the statement has {} placeholders and {} parameters",
            marks.len(),
            values.len()
        ));
    }
    let mut out = String::with_capacity(sql.len() + 16 * values.len());
    let mut at = 0;
    for (mark, v) in marks.iter().zip(values) {
        out.push_str(&sql[at..mark.start]);
        out.push_str(&literal(v, modes, utf8)?);
        at = mark.end;
    }
    out.push_str(&sql[at..]);
    Ok(out)
}

fn literal(v: &Value, modes: SqlModes, utf8: bool) -> Result<String, String> {
    Ok(match v {
        Value::Null => "NULL".into(),
        Value::Int(n) => n.clone(),
        Value::Float(f) if f.is_finite() => format!("{f:e}"),
        Value::Float(_) => return Err("a NaN or infinite number has no literal".into()),
        Value::Decimal(d) => {
            let ok = !d.is_empty()
                && d
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
            if !ok {
                return Err(format!("{d:?} is not a decimal number"));
            }
            d.clone()
        }
        Value::Temporal(t) => quoted(t, modes),
        Value::Bytes(b) => format!("X'{}'", hex::encode_upper(b)),
        Value::Text(_) if !utf8 => {
            return Err("text parameters of a session whose character set is not known to be UTF-8 (or that changed it) have no exact literal".into())
        }
        // Text that is not UTF-8 the server cannot read as characters
        // either: the same bytes, as a binary string.
        Value::Text(b) => match std::str::from_utf8(b) {
            Ok(s) if !s.contains('\0') => quoted(s, modes),
            Ok(_) => format!("_utf8mb4 X'{}'", hex::encode_upper(b)),
            Err(_) => format!("X'{}'", hex::encode_upper(b)),
        },
    })
}

/// A single-quoted literal that reads back as `s` under `modes`.
fn quoted(s: &str, modes: SqlModes) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' if !modes.no_backslash_escapes => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn execute(count: usize, types: &[(u8, u8)], nulls: u8, values: &[u8]) -> Vec<u8> {
        let mut p = vec![0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0];
        if count > 0 {
            p.push(nulls);
            p.push(1);
            for (t, f) in types {
                p.push(*t);
                p.push(*f);
            }
        }
        p.extend_from_slice(values);
        p
    }

    #[test]
    fn decodes_every_kind() {
        let mut v = vec![];
        v.push(0xFF); // TINY -1
        v.extend_from_slice(&300u16.to_le_bytes()); // SHORT unsigned 300
        v.extend_from_slice(&(-5i64).to_le_bytes()); // LONGLONG
        v.extend_from_slice(&1.5f64.to_le_bytes()); // DOUBLE
        v.extend_from_slice(&[4, b'1', b'.', b'2', b'5']); // NEWDECIMAL
        v.extend_from_slice(&[3, b'a', b'\'', b'\\']); // VAR_STRING
        v.extend_from_slice(&[2, 0x00, 0xFF]); // BLOB
        v.extend_from_slice(&[7, 0xE8, 0x07, 12, 31, 23, 59, 58]); // DATETIME
        v.extend_from_slice(&[8, 1, 1, 0, 0, 0, 2, 3, 4]); // TIME -26:03:04
        let types = [
            (ty::TINY, 0),
            (ty::SHORT, 0x80),
            (ty::LONGLONG, 0),
            (ty::DOUBLE, 0),
            (ty::NEWDECIMAL, 0),
            (ty::VAR_STRING, 0),
            (ty::BLOB, 0),
            (ty::DATETIME, 0),
            (ty::TIME, 0),
            (ty::LONG, 0),
        ];
        // The tenth is NULL: bit 9 of the bitmap (second byte).
        let mut p = execute(10, &types, 0, &v);
        p.insert(11, 0b10);
        p.remove(10);
        p.insert(10, 0);
        let e = decode_execute(&p, 10, None, &HashMap::new()).unwrap();
        assert_eq!(
            e.values,
            vec![
                Value::Int("-1".into()),
                Value::Int("300".into()),
                Value::Int("-5".into()),
                Value::Float(1.5),
                Value::Decimal("1.25".into()),
                Value::Text(b"a'\\".to_vec()),
                Value::Bytes(vec![0, 0xFF]),
                Value::Temporal("2024-12-31 23:59:58".into()),
                Value::Temporal("-26:03:04".into()),
                Value::Null,
            ]
        );
        let sql =
            "UPDATE t SET a=?, b=?, c=?, d=?, e=?, f=?, g=?, h=?, i=?, j=? WHERE x = '?' -- ?";
        assert_eq!(
            render(sql, SqlModes::default(), &e.values, true).unwrap(),
            "UPDATE t SET a=-1, b=300, c=-5, d=1.5e0, e=1.25, f='a''\\\\', g=X'00FF', h='2024-12-31 23:59:58', i='-26:03:04', j=NULL WHERE x = '?' -- ?"
        );
        // A later execute may bind no types: the earlier ones hold.
        let again = [0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0];
        assert!(decode_execute(&again, 1, None, &HashMap::new()).is_err());
    }

    #[test]
    fn long_data_and_refusals() {
        let p = execute(1, &[(ty::BLOB, 0)], 0, &[]);
        let long = HashMap::from([(0u16, b"big".to_vec())]);
        let e = decode_execute(&p, 1, None, &long).unwrap();
        assert_eq!(e.values, vec![Value::Bytes(b"big".to_vec())]);
        let latin1 = [Value::Text(vec![0xE9]), Value::Text(b"a\0b".to_vec())];
        assert_eq!(
            render("SELECT ?, ?", SqlModes::default(), &latin1, true).unwrap(),
            "SELECT X'E9', _utf8mb4 X'610062'"
        );
        let text = [Value::Text("é".as_bytes().to_vec())];
        assert!(render("SELECT ?", SqlModes::default(), &text, false).is_err());
        assert!(render("SELECT ?", SqlModes::default(), &latin1[..1], false).is_err());
        assert!(render("SELECT ?, ?", SqlModes::default(), &text, true).is_err());
        assert!(render(
            "SELECT ?",
            SqlModes::default(),
            &[Value::Float(f64::NAN)],
            true
        )
        .is_err());
        assert!(render(
            "SELECT ?",
            SqlModes::default(),
            &[Value::Decimal("1; DROP".into())],
            true
        )
        .is_err());
        let nbe = SqlModes {
            no_backslash_escapes: true,
            ..SqlModes::default()
        };
        let back = [Value::Text(b"a\\".to_vec())];
        assert_eq!(
            render("SELECT ?", nbe, &back, true).unwrap(),
            "SELECT 'a\\'"
        );
        assert!(decode_execute(&[0x17, 1, 0], 1, None, &HashMap::new()).is_err());
    }
}
