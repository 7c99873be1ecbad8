//! Parsing with the Postgres dialect, strictly.
//!
//! `Parser::parse_statements` stops silently at a bare `END` where it expects
//! a statement delimiter (for other dialects' `BEGIN … END` blocks): with it,
//! `SELECT 1 END; DELETE FROM t` comes back as just `SELECT 1`, while Postgres
//! reads `END` as a column label and runs the DELETE. This module requires
//! every statement to be followed by `;` or the end of the input instead.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// The dialect every statement is parsed with.
pub(crate) const DIALECT: PostgreSqlDialect = PostgreSqlDialect {};

/// Tokenize with the Postgres dialect.
pub(crate) fn tokenize(sql: &str) -> Result<Vec<TokenWithSpan>, ParserError> {
    Tokenizer::new(&DIALECT, sql)
        .tokenize_with_location()
        .map_err(ParserError::from)
}

/// The message of a parser error, without the "sql parser error: " prefix.
pub(crate) fn error_message(e: &ParserError) -> String {
    match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => "nesting too deep".to_string(),
    }
}

/// Parse a whole string into statements.
pub(crate) fn parse_sql(sql: &str) -> Result<Vec<sqlparser::ast::Statement>, ParserError> {
    parse_tokens(tokenize(sql)?)
}

/// Parse already tokenized input into statements.
pub(crate) fn parse_tokens(
    tokens: Vec<TokenWithSpan>,
) -> Result<Vec<sqlparser::ast::Statement>, ParserError> {
    let mut parser = Parser::new(&DIALECT).with_tokens_with_locations(tokens);
    let mut out = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        if parser.peek_token_ref().token == Token::EOF {
            break;
        }
        out.push(parser.parse_statement()?);
        let next = parser.peek_token_ref();
        match next.token {
            Token::SemiColon | Token::EOF => {}
            _ => {
                return Err(ParserError::ParserError(format!(
                    "Expected: end of statement, found: {}{}",
                    next.token, next.span.start
                )))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_does_not_truncate() {
        assert!(parse_sql("SELECT 1 END; DELETE FROM t").is_err());
        assert_eq!(
            parse_sql("SELECT 1; DELETE FROM t").map(|v| v.len()).ok(),
            Some(2)
        );
        assert_eq!(parse_sql(";;SELECT 1;;").map(|v| v.len()).ok(), Some(1));
        assert_eq!(
            parse_sql("/* only */ -- comments").map(|v| v.len()).ok(),
            Some(0)
        );
    }
}
