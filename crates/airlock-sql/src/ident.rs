//! Identifier normalization, the way Postgres folds names.

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};

/// The name an identifier denotes: unquoted identifiers fold to lower case
/// (ASCII only, as Postgres does in a UTF-8 database), quoted ones are exact.
pub(crate) fn ident_name(ident: &Ident) -> String {
    match ident.quote_style {
        None => ident.value.to_ascii_lowercase(),
        Some(_) => ident.value.clone(),
    }
}

/// The normalized parts of a dotted name; `None` if a part is not a plain identifier.
pub(crate) fn object_name_parts(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Some(ident_name(ident)),
            ObjectNamePart::Function(_) => None,
        })
        .collect()
}

/// The normalized dotted form of a name (best effort: unusual parts are rendered as written).
pub(crate) fn object_name_string(name: &ObjectName) -> String {
    match object_name_parts(name) {
        Some(parts) => parts.join("."),
        None => name.to_string().to_ascii_lowercase(),
    }
}
