//! `trusted_functions` of a protected target: user functions a DBA vouches
//! for as read-only, so calling them does not hold a statement. Only the
//! spelling is checked here; that each one exists is checked against the
//! target's catalog (by `airlock check-config` and when airlock starts).

/// Schemas whose functions are Postgres's own: judged by the allow-list,
/// never trusted by name.
const SYSTEM_SCHEMAS: [&str; 3] = ["pg_catalog", "information_schema", "pg_toast"];

/// A trusted function as the config names it: `schema.name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrustedFunction {
    /// The function's schema.
    pub schema: String,
    /// The function's name (every overload of it in that schema is trusted).
    pub name: String,
}

impl std::fmt::Display for TrustedFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Whether `s` is an identifier Postgres folds to itself when unquoted.
fn is_plain_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'$'))
        && s.len() <= 63
}

impl TrustedFunction {
    /// Parses `schema.name` (lowercase unquoted identifiers, a user schema).
    pub fn parse(entry: &str) -> Result<Self, String> {
        let Some((schema, name)) = entry.split_once('.') else {
            return Err(format!(
                "{entry:?}: name the function with its schema, as in \"public.{entry}\""
            ));
        };
        if !is_plain_identifier(schema) || !is_plain_identifier(name) {
            return Err(format!(
                "{entry:?}: schema and name must be lowercase unquoted identifiers (letters, digits, _ and $)"
            ));
        }
        if SYSTEM_SCHEMAS.contains(&schema) {
            return Err(format!(
                "{entry:?}: functions of {schema} are Postgres's own; only user functions can be trusted"
            ));
        }
        Ok(TrustedFunction {
            schema: schema.to_string(),
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schema_qualified_user_functions_only() {
        assert_eq!(
            TrustedFunction::parse("report.total_sales").map(|t| t.to_string()),
            Ok("report.total_sales".to_string())
        );
        for bad in [
            "total",
            "Public.total",
            "public.\"Total\"",
            "public.total(int)",
            "a.b.c",
            "pg_catalog.lower",
            "information_schema._pg_expandarray",
            "public.",
            ".total",
            "public.1x",
        ] {
            assert!(
                TrustedFunction::parse(bad).is_err(),
                "{bad} must be refused"
            );
        }
    }
}
