//! Which setting changes may pass on a protected target.
//!
//! Ordinary settings (search_path, statement_timeout, DateStyle, work_mem…)
//! pass. Held: changes that lift read-only mode or change identity, and
//! changes that would make Postgres tokenize later statements differently
//! from this classifier (a bypass of the classifier itself).

use crate::class::StatementClass;
use sqlparser::ast::{Expr, UnaryOperator, Value};

/// The value a statement gives a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SettingValue {
    /// Literal values, in order (`SET x = a, b`).
    Values(Vec<String>),
    /// Back to the default (`SET x TO DEFAULT`, `RESET x`).
    Default,
    /// Not a literal (an expression, a parameter): cannot be checked.
    Unknown,
}

impl SettingValue {
    /// Build from the expressions of a SET statement.
    pub(crate) fn from_exprs(values: &[Expr]) -> SettingValue {
        if let [Expr::Identifier(id)] = values {
            if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default") {
                return SettingValue::Default;
            }
        }
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            match literal_text(v) {
                Some(s) => out.push(s),
                None => return SettingValue::Unknown,
            }
        }
        SettingValue::Values(out)
    }
}

/// The text of a literal or bare word, as Postgres would hand it to the setting.
pub(crate) fn literal_text(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(id) => Some(match id.quote_style {
            None => id.value.to_ascii_lowercase(),
            Some(_) => id.value.clone(),
        }),
        Expr::Value(v) => value_text(&v.value),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => Some(format!("-{n}")),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// The text of a literal value (strings, numbers, booleans).
pub(crate) fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::SingleQuotedString(s)
        | Value::EscapedStringLiteral(s)
        | Value::UnicodeStringLiteral(s)
        | Value::NationalStringLiteral(s) => Some(s.clone()),
        Value::DollarQuotedString(d) => Some(d.value.clone()),
        Value::Number(n, _) => Some(n.to_string()),
        Value::Boolean(b) => Some(if *b { "on".into() } else { "off".into() }),
        _ => None,
    }
}

/// Postgres' boolean spellings that mean true (strict subset of parse_bool).
fn is_true(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "on" | "true" | "yes" | "1" | "t" | "tr" | "tru" | "y" | "ye"
    )
}

/// Client encodings where every byte below 0x80 is an ASCII character, so the
/// proxy (which reads the text as UTF-8) and Postgres agree on where quotes
/// and backslashes are. The multibyte client-only encodings (SJIS, BIG5, GBK,
/// UHC, GB18030, JOHAB) can hide a `\` or `'` in a second byte: held.
fn is_safe_encoding(name: &str) -> bool {
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    const SAFE: &[&str] = &[
        "abc",
        "alt",
        "euccn",
        "eucjis2004",
        "eucjp",
        "euckr",
        "euctw",
        "koi8",
        "koi8r",
        "koi8u",
        "muleinternal",
        "sqlascii",
        "tcvn",
        "tcvn5712",
        "unicode",
        "utf8",
        "vscii",
        "win",
        "win866",
        "win874",
        "windows866",
        "windows874",
    ];
    if SAFE.contains(&clean.as_str()) {
        return true;
    }
    let numbered = |prefix: &str, lo: u32, hi: u32| {
        clean
            .strip_prefix(prefix)
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (lo..=hi).contains(&n))
    };
    numbered("latin", 1, 10)
        || numbered("iso8859", 1, 16)
        || numbered("win", 1250, 1258)
        || numbered("windows", 1250, 1258)
}

/// Whether a search_path puts `pg_catalog` after another schema, which lets
/// same-named user functions shadow the built-ins this classifier trusts.
fn search_path_shadows_catalog(values: &[String]) -> bool {
    let mut position = 0;
    for v in values {
        for item in v.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let name = match item.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(quoted) => quoted.to_string(),
                None => item.to_ascii_lowercase(),
            };
            if name == "pg_catalog" && position > 0 {
                return true;
            }
            position += 1;
        }
    }
    false
}

/// Check a change of setting `name` to `value`; `None` when it may pass,
/// otherwise the class and reason for holding it.
pub(crate) fn check_setting(name: &str, value: &SettingValue) -> Option<(StatementClass, String)> {
    let name = name.trim().to_ascii_lowercase();
    if name.starts_with("airlock.") {
        return None;
    }
    let single_true = matches!(value, SettingValue::Values(v) if v.len() == 1 && is_true(&v[0]));
    match name.as_str() {
        "role" | "session_authorization" => Some((
            StatementClass::Privilege,
            format!("setting {name} changes the session's identity"),
        )),
        "default_transaction_read_only" | "transaction_read_only" if !single_true => Some((
            StatementClass::Privilege,
            format!("setting {name} to anything but on would lift read-only mode"),
        )),
        "standard_conforming_strings" if !single_true => Some((
            StatementClass::Session,
            "standard_conforming_strings must stay on (it changes how later statements are tokenized)"
                .to_string(),
        )),
        "client_encoding" => match value {
            SettingValue::Default => None,
            SettingValue::Values(v) if v.len() == 1 && is_safe_encoding(&v[0]) => None,
            _ => Some((
                StatementClass::Session,
                "client_encoding may only be set to an ASCII-safe encoding such as UTF8".to_string(),
            )),
        },
        "search_path" => match value {
            SettingValue::Default => None,
            SettingValue::Values(v) if !search_path_shadows_catalog(v) => None,
            SettingValue::Values(_) => Some((
                StatementClass::Session,
                "search_path puts pg_catalog after another schema (user functions could shadow built-ins)"
                    .to_string(),
            )),
            SettingValue::Unknown => Some((
                StatementClass::Session,
                "search_path set to a value that is not a literal".to_string(),
            )),
        },
        "zero_damaged_pages" | "allow_system_table_mods" => Some((
            StatementClass::Admin,
            format!("setting {name} allows changes to data files or system catalogs"),
        )),
        _ => None,
    }
}

/// True if `SET name = value` (a single literal value; `DEFAULT` for a reset)
/// may pass unreviewed on a protected target.
pub fn is_read_only_setting_change(name: &str, value: &str) -> bool {
    let v = if value.trim().eq_ignore_ascii_case("default") {
        SettingValue::Default
    } else {
        SettingValue::Values(vec![value.to_string()])
    };
    check_setting(name, &v).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_flags() {
        assert!(is_read_only_setting_change(
            "default_transaction_read_only",
            "on"
        ));
        assert!(is_read_only_setting_change(
            "Default_Transaction_Read_Only",
            "TRUE"
        ));
        assert!(!is_read_only_setting_change(
            "default_transaction_read_only",
            "off"
        ));
        assert!(!is_read_only_setting_change(
            "default_transaction_read_only",
            "0"
        ));
        assert!(!is_read_only_setting_change(
            "transaction_read_only",
            "false"
        ));
        assert!(!is_read_only_setting_change(
            "transaction_read_only",
            "DEFAULT"
        ));
        assert!(!is_read_only_setting_change("role", "postgres"));
        assert!(!is_read_only_setting_change("session_authorization", "x"));
    }

    #[test]
    fn ordinary_settings() {
        for (n, v) in [
            ("search_path", "public"),
            ("search_path", ""),
            ("search_path", "pg_catalog, public"),
            ("statement_timeout", "5s"),
            ("DateStyle", "ISO, MDY"),
            ("extra_float_digits", "3"),
            ("application_name", "psql"),
            ("client_encoding", "UTF8"),
            ("client_encoding", "latin1"),
            ("client_encoding", "WIN1252"),
            ("default_transaction_deferrable", "on"),
            ("airlock.reason", "because"),
            ("work_mem", "DEFAULT"),
        ] {
            assert!(is_read_only_setting_change(n, v), "{n}={v}");
        }
    }

    #[test]
    fn tokenizer_affecting_settings() {
        assert!(!is_read_only_setting_change(
            "standard_conforming_strings",
            "off"
        ));
        assert!(is_read_only_setting_change(
            "standard_conforming_strings",
            "on"
        ));
        assert!(!is_read_only_setting_change("client_encoding", "SJIS"));
        assert!(!is_read_only_setting_change("client_encoding", "big5"));
        assert!(!is_read_only_setting_change("client_encoding", "GBK"));
        assert!(!is_read_only_setting_change(
            "search_path",
            "public, pg_catalog"
        ));
        assert!(!is_read_only_setting_change(
            "search_path",
            "public,\"pg_catalog\""
        ));
    }
}
