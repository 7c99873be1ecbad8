//! Strings that do not parse as a whole: always held (fail closed), but split
//! into statements so that each gets a useful class and message, and so that
//! a few harmless forms sqlparser does not know can still pass:
//! `MOVE …` (same syntax as `FETCH`, returns nothing), `TABLE name` (same as
//! `SELECT * FROM name`), `x OPERATOR(pg_catalog.=) ANY (…)` (pg_dump), and
//! `[NOT] DEFERRABLE` in `BEGIN` / `START TRANSACTION` /
//! `SET [SESSION CHARACTERISTICS AS] TRANSACTION`, `EXPLAIN ANALYSE`, and
//! `SET SCHEMA` / `SET CONSTRAINTS` / `SET XML OPTION`.

use sqlparser::ast::{Set, Statement};
use sqlparser::parser::ParserError;
use sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::class::{Classification, StatementClass};
use crate::classify::{analyze, combine, Verdict};
use crate::keywords::keyword_class;
use crate::parse::{error_message, parse_tokens, tokenize};
use crate::settings::{check_setting, SettingValue};

/// Classify a string whose whole-string parse failed with `err`.
pub(crate) fn classify_unparsed(sql: &str, err: &ParserError) -> Classification {
    let whole = || {
        let (first, second) = leading_words_of(sql);
        let class = keyword_class(&first, &second);
        combine(vec![Verdict::held(
            class,
            format!("parse error: {}", error_message(err)),
        )])
    };
    let Ok(tokens) = tokenize(sql) else {
        return whole();
    };
    let Some(chunks) = split_statements(tokens) else {
        return whole();
    };
    let mut verdicts = Vec::new();
    let mut rewritten = false;
    for chunk in chunks {
        match parse_tokens(chunk.clone()) {
            Ok(stmts) => verdicts.extend(stmts.iter().map(analyze)),
            Err(chunk_err) => match rewrite(&chunk) {
                Some(vs) => {
                    rewritten = true;
                    verdicts.extend(vs);
                }
                None => {
                    let (first, second) = leading_words(&chunk);
                    let class = keyword_class(&first, &second);
                    let reason = if first.eq_ignore_ascii_case("do") {
                        "DO runs an anonymous code block, which cannot be analysed".to_string()
                    } else {
                        format!("parse error: {}", error_message(&chunk_err))
                    };
                    verdicts.push(Verdict::held(class, reason));
                }
            },
        }
    }
    if verdicts.iter().all(Verdict::read_only) && !rewritten {
        // Every piece parses alone but the whole did not: do not guess.
        return whole();
    }
    combine(verdicts)
}

fn is_trivia(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_))
}

/// Split tokens into statements at top-level semicolons. `None` if a
/// semicolon appears inside brackets (then the split cannot be trusted).
pub(crate) fn split_statements(tokens: Vec<TokenWithSpan>) -> Option<Vec<Vec<TokenWithSpan>>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut depth: i64 = 0;
    for t in tokens {
        match &t.token {
            Token::LParen | Token::LBracket | Token::LBrace => depth += 1,
            Token::RParen | Token::RBracket | Token::RBrace => depth -= 1,
            Token::SemiColon => {
                if depth != 0 {
                    return None;
                }
                if cur.iter().any(|t: &TokenWithSpan| !is_trivia(&t.token)) {
                    out.push(std::mem::take(&mut cur));
                } else {
                    cur.clear();
                }
                continue;
            }
            Token::EOF => continue,
            _ => {}
        }
        cur.push(t);
    }
    if cur.iter().any(|t| !is_trivia(&t.token)) {
        out.push(cur);
    }
    Some(out)
}

fn words(tokens: &[TokenWithSpan]) -> impl Iterator<Item = (usize, &TokenWithSpan)> {
    tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !is_trivia(&t.token))
}

fn word_is(t: &Token, w: &str) -> bool {
    matches!(t, Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case(w))
}

/// The first two words of a token list.
fn leading_words(tokens: &[TokenWithSpan]) -> (String, String) {
    let mut it = words(tokens).map(|(_, t)| match &t.token {
        Token::Word(w) => w.value.clone(),
        other => other.to_string(),
    });
    let first = it.next().unwrap_or_default();
    let second = it.next().unwrap_or_default();
    (first, second)
}

/// The first two words of a text that could not be tokenized, after any
/// leading comments.
pub(crate) fn leading_words_of(sql: &str) -> (String, String) {
    crate::keywords::first_two_words(skip_leading_comments(sql))
}

/// The text after leading whitespace and comments (`--…` lines, nested `/* */`).
fn skip_leading_comments(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix("--") {
            match rest.find(['\n', '\r']) {
                Some(i) => s = &rest[i..],
                None => return "",
            }
        } else if s.starts_with("/*") {
            let mut depth = 0usize;
            let mut i = 0;
            let bytes = s.as_bytes();
            while i + 1 < bytes.len() {
                match (bytes[i], bytes[i + 1]) {
                    (b'/', b'*') => {
                        depth += 1;
                        i += 2;
                    }
                    (b'*', b'/') => {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => i += 1,
                }
            }
            if depth != 0 {
                return "";
            }
            s = &s[i..];
        } else {
            return s;
        }
    }
}

/// Try the known harmless rewrites of an unparsable statement; `None` when
/// none applies or the rewritten text still does not parse.
fn rewrite(chunk: &[TokenWithSpan]) -> Option<Vec<Verdict>> {
    if let Some(v) = harmless_set(chunk) {
        return Some(vec![v]);
    }
    let (first_idx, first) = words(chunk).next()?;
    let mut tokens = chunk.to_vec();
    let mut changed = false;
    let expect_fetch = word_is(&first.token, "move");
    if expect_fetch {
        tokens[first_idx].token = Token::make_keyword("FETCH");
        changed = true;
    }
    let expect_transaction = ["begin", "start", "set"]
        .iter()
        .any(|w| word_is(&first.token, w))
        && chunk.iter().any(|t| word_is(&t.token, "deferrable"));
    if expect_transaction {
        tokens = strip_deferrable(&tokens);
        changed = true;
    }
    if word_is(&first.token, "explain") {
        // `EXPLAIN ANALYSE` is the British spelling of `EXPLAIN ANALYZE`.
        let second = words(&tokens)
            .nth(1)
            .filter(|(_, t)| word_is(&t.token, "analyse"))
            .map(|(i, _)| i);
        if let Some(i) = second {
            tokens[i].token = Token::make_keyword("ANALYZE");
            changed = true;
        }
    }
    if word_is(&first.token, "table") {
        // `TABLE name …` is exactly `SELECT * FROM name …` in Postgres.
        tokens.splice(
            first_idx..=first_idx,
            [
                Token::make_keyword("SELECT"),
                Token::Mul,
                Token::make_keyword("FROM"),
            ]
            .map(TokenWithSpan::wrap),
        );
        changed = true;
    }
    if let Some(t) = unqualify_operator_any(&tokens) {
        tokens = t;
        changed = true;
    }
    // `FOR NO KEY UPDATE` / `FOR KEY SHARE` are not known to sqlparser: read
    // them as `FOR UPDATE` / `FOR SHARE`, which are held just the same (this
    // only improves the class and message; the result must stay held).
    let expect_held = weaken_lock_clauses(&mut tokens);
    changed |= expect_held;
    if !changed {
        return None;
    }
    let stmts = parse_tokens(tokens).ok()?;
    if expect_fetch && !matches!(stmts.as_slice(), [Statement::Fetch { into: None, .. }]) {
        return None;
    }
    if expect_transaction
        && !matches!(
            stmts.as_slice(),
            [Statement::StartTransaction { .. } | Statement::Set(Set::SetTransaction { .. })]
        )
    {
        return None;
    }
    let verdicts: Vec<Verdict> = stmts.iter().map(analyze).collect();
    if expect_held && verdicts.iter().all(Verdict::read_only) {
        return None;
    }
    Some(verdicts)
}

/// Rewrite `FOR NO KEY UPDATE` to `FOR UPDATE` and `FOR KEY SHARE` to `FOR SHARE`.
fn weaken_lock_clauses(tokens: &mut Vec<TokenWithSpan>) -> bool {
    let mut changed = false;
    let mut i = 0;
    while i < tokens.len() {
        if word_is(&tokens[i].token, "for") {
            let next: Vec<usize> = (i + 1..tokens.len())
                .filter(|&j| !is_trivia(&tokens[j].token))
                .take(3)
                .collect();
            let at = |n: usize| next.get(n).map(|&j| &tokens[j].token);
            let is = |n: usize, w: &str| at(n).is_some_and(|t| word_is(t, w));
            if is(0, "no") && is(1, "key") && is(2, "update") {
                tokens.drain(next[0]..next[2]);
                changed = true;
            } else if is(0, "key") && (is(1, "share") || is(1, "update")) {
                tokens.drain(next[0]..next[1]);
                changed = true;
            }
        }
        i += 1;
    }
    changed
}

/// `x OPERATOR(pg_catalog.=) ANY (…)` (pg_dump's pattern matching) is not
/// understood by sqlparser; for analysis it is the same as `x = ANY (…)`:
/// a built-in comparison. Returns the rewritten tokens if anything changed.
fn unqualify_operator_any(tokens: &[TokenWithSpan]) -> Option<Vec<TokenWithSpan>> {
    let significant: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !is_trivia(&t.token))
        .map(|(i, _)| i)
        .collect();
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut changed = false;
    let mut next_copy = 0;
    let mut k = 0;
    while k + 6 < significant.len() {
        let at = |n: usize| &tokens[significant[k + n]].token;
        let is_catalog =
            matches!(at(2), Token::Word(w) if w.value.eq_ignore_ascii_case("pg_catalog"));
        let quantifier = ["any", "all", "some"].iter().any(|q| word_is(at(6), q));
        if word_is(at(0), "operator")
            && *at(1) == Token::LParen
            && is_catalog
            && *at(3) == Token::Period
            && *at(5) == Token::RParen
            && quantifier
        {
            out.extend_from_slice(&tokens[next_copy..significant[k]]);
            out.push(tokens[significant[k + 4]].clone());
            next_copy = significant[k + 5] + 1;
            changed = true;
            k += 6;
        } else {
            k += 1;
        }
    }
    if !changed {
        return None;
    }
    out.extend_from_slice(&tokens[next_copy..]);
    Some(out)
}

/// SET forms sqlparser does not know, recognized token by token:
/// `SET [LOCAL|SESSION] SCHEMA 'name'` (an alias of search_path),
/// `SET CONSTRAINTS {ALL | name, …} {DEFERRED | IMMEDIATE}` and
/// `SET XML OPTION {DOCUMENT | CONTENT}` (neither changes data or identity).
fn harmless_set(chunk: &[TokenWithSpan]) -> Option<Verdict> {
    let toks: Vec<&Token> = words(chunk).map(|(_, t)| &t.token).collect();
    let (first, mut rest) = toks.split_first()?;
    if !word_is(first, "set") {
        return None;
    }
    if let Some((scope, after)) = rest.split_first() {
        if word_is(scope, "local") || word_is(scope, "session") {
            rest = after;
        }
    }
    match rest {
        [kw, Token::SingleQuotedString(schema)] if word_is(kw, "schema") => {
            let mut v = Verdict::new(StatementClass::Session);
            if let Some((class, reason)) =
                check_setting("search_path", &SettingValue::Values(vec![schema.clone()]))
            {
                v.hold(class, reason);
            }
            Some(v)
        }
        [kw, names @ .., mode]
            if word_is(kw, "constraints")
                && (word_is(mode, "deferred") || word_is(mode, "immediate"))
                && !names.is_empty()
                && names
                    .iter()
                    .all(|t| matches!(t, Token::Word(_) | Token::Period | Token::Comma)) =>
        {
            Some(Verdict::new(StatementClass::Session))
        }
        [xml, option, value]
            if word_is(xml, "xml")
                && word_is(option, "option")
                && (word_is(value, "document") || word_is(value, "content")) =>
        {
            Some(Verdict::new(StatementClass::Session))
        }
        _ => None,
    }
}

/// Remove `[NOT] DEFERRABLE` transaction modes and the comma that separates them.
fn strip_deferrable(chunk: &[TokenWithSpan]) -> Vec<TokenWithSpan> {
    let mut tokens: Vec<TokenWithSpan> = chunk
        .iter()
        .filter(|t| !is_trivia(&t.token))
        .cloned()
        .collect();
    while let Some(i) = tokens.iter().position(|t| word_is(&t.token, "deferrable")) {
        let mut start = i;
        if start > 0 && word_is(&tokens[start - 1].token, "not") {
            start -= 1;
        }
        let mut end = i + 1;
        if start > 0 && tokens[start - 1].token == Token::Comma {
            start -= 1;
        } else if end < tokens.len() && tokens[end].token == Token::Comma {
            end += 1;
        }
        tokens.drain(start..end);
    }
    tokens
}
