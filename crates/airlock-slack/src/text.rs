//! Making untrusted text safe for Slack: nothing a developer, a client
//! application or an AI summary writes can mention anyone, link anywhere or
//! break out of its block.

/// Escapes the three characters Slack gives meaning to in any text
/// (`&`, `<`, `>`): with them escaped no `<!channel>`, `<@U…>` or `<url|…>`
/// can form.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes text for `mrkdwn` and also defuses its formatting characters by
/// following them with a zero-width space: every backtick, and `*`, `_`,
/// `~` where they could open or close a span (next to a space, punctuation
/// or the ends). So the text shows as written and cannot open bold, code or
/// strike spans that swallow what follows, while identifiers such as
/// `orders_prod` stay intact (Slack does not format inside a word).
pub fn escape_mrkdwn(s: &str) -> String {
    let escaped: Vec<char> = escape(s).chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    for (i, &c) in escaped.iter().enumerate() {
        out.push(c);
        let inside_word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric());
        let defuse = match c {
            '`' => true,
            '*' | '_' | '~' => {
                !(inside_word(i.checked_sub(1).and_then(|p| escaped.get(p)))
                    && inside_word(escaped.get(i + 1)))
            }
            _ => false,
        };
        if defuse {
            out.push('\u{200B}');
        }
    }
    out
}

/// A `mrkdwn` code block holding `code` verbatim: escaped, and with every
/// run of backticks broken up so the block cannot be closed from inside.
pub fn code_block(code: &str) -> String {
    let mut body = String::with_capacity(code.len() + 8);
    for c in escape(code).chars() {
        body.push(c);
        if c == '`' {
            body.push('\u{200B}');
        }
    }
    // A block that starts or ends with a newline renders the same; keep it tidy.
    format!("```{}```", body.trim_matches('\n'))
}

/// Block Kit's limits, in characters of the text as sent (after escaping:
/// an `&lt;` counts four). <https://api.slack.com/reference/block-kit/blocks>
pub mod limits {
    /// A section's text.
    pub const SECTION: usize = 3000;
    /// One of a section's fields.
    pub const FIELD: usize = 2000;
    /// A header's plain text.
    pub const HEADER: usize = 150;
    /// A context element's text.
    pub const CONTEXT: usize = 3000;
    /// A button's value.
    pub const BUTTON_VALUE: usize = 2000;
    /// Blocks in one message.
    pub const BLOCKS: usize = 50;
}

/// Already-escaped `text` cut to at most `max` characters, ending in `…`
/// when cut, never inside an entity (`&amp;`) or between a formatting
/// character and the zero-width space that defuses it.
pub fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(1);
    let mut end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    // An entity starts at most five bytes back: cut before its `&`.
    if let Some(amp) = text[..end].rfind('&') {
        if end - amp < 5 && !text[amp..end].contains(';') {
            end = amp;
        }
    }
    let mut out = text[..end].to_string();
    // A formatting character whose defusing space was cut off goes too.
    while out.ends_with(['`', '*', '_', '~']) {
        out.pop();
    }
    out.push('…');
    out
}

/// [`code_block`] of `code` that fits in `max` characters; the flag says
/// whether the code was cut.
pub fn code_block_within(code: &str, max: usize) -> (String, bool) {
    let block = code_block(code);
    if block.chars().count() <= max {
        return (block, false);
    }
    let inner = &block[3..block.len() - 3];
    let body = fit(inner, max.saturating_sub(6));
    // The cut body must not end inside a backtick run.
    (format!("```{}```", body.trim_end_matches('`')), true)
}

/// `s` cut to at most `max` characters (on a character boundary); the flag
/// says whether anything was cut.
pub fn cut(s: &str, max: usize) -> (&str, bool) {
    match s.char_indices().nth(max) {
        Some((at, _)) => (&s[..at], true),
        None => (s, false),
    }
}

/// A link in `mrkdwn` whose label is escaped.
pub fn link(url: &str, label: &str) -> String {
    // A URL cannot contain the separators unescaped; drop what would break it.
    let url: String = url
        .chars()
        .filter(|c| !matches!(c, '<' | '>' | '|' | ' '))
        .collect();
    format!("<{url}|{}>", escape(label).replace('|', "\u{2758}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_never_splits_an_entity_and_counts_after_escaping() {
        let escaped = escape(&"<&>".repeat(2000));
        let fitted = fit(&escaped, 3000);
        assert!(fitted.chars().count() <= 3000);
        assert!(fitted.ends_with('…'));
        let body = fitted.trim_end_matches('…');
        assert!(
            body.ends_with("&lt;") || body.ends_with("&amp;") || body.ends_with("&gt;"),
            "{}",
            &body[body.len() - 10..]
        );
        assert_eq!(fit("short", 10), "short");
        let defused = escape_mrkdwn(&"*a* ".repeat(1000));
        assert!(!fit(&defused, 11).trim_end_matches('…').ends_with('*'));
        let (block, cut) = code_block_within(&"<".repeat(10_000), 2900);
        assert!(cut && block.chars().count() <= 2900, "{}", block.len());
        assert!(block.starts_with("```") && block.ends_with("```"));
        let (small, cut) = code_block_within("SELECT 1", 2900);
        assert!(!cut && small == "```SELECT 1```");
    }

    #[test]
    fn mentions_and_links_cannot_form() {
        let hostile = "<!channel> <@U123> <!here> <https://evil.example|click> & more";
        for out in [escape(hostile), escape_mrkdwn(hostile), code_block(hostile)] {
            assert!(!out.contains('<') && !out.contains('>'), "{out}");
            assert!(out.contains("&lt;!channel&gt;"), "{out}");
            assert!(out.contains("&amp; more"), "{out}");
        }
    }

    #[test]
    fn formatting_is_defused() {
        let out = escape_mrkdwn("*bold* _it_ ~s~ `code` ```block```");
        assert!(!out.contains("**") && !out.contains("``"), "{out:?}");
        for c in ['*', '_', '~', '`'] {
            for (i, _) in out.match_indices(c) {
                assert_eq!(out[i + 1..].chars().next(), Some('\u{200B}'), "{out:?}");
            }
        }
    }

    #[test]
    fn identifiers_stay_intact() {
        assert_eq!(escape_mrkdwn("orders_prod a*b x~y"), "orders_prod a*b x~y");
        assert_eq!(escape_mrkdwn("_x_"), "_\u{200B}x_\u{200B}");
    }

    #[test]
    fn code_blocks_cannot_be_closed_from_inside() {
        let out = code_block("SELECT '```' || 1; -- ``` <@U1>");
        assert!(out.starts_with("```") && out.ends_with("```"));
        let inner = &out[3..out.len() - 3];
        assert!(!inner.contains("``"), "{inner:?}");
        assert!(inner.contains("&lt;@U1&gt;"));
    }

    #[test]
    fn cut_respects_characters() {
        assert_eq!(cut("héllo", 2), ("hé", true));
        assert_eq!(cut("héllo", 5), ("héllo", false));
        assert_eq!(cut("", 3), ("", false));
    }

    #[test]
    fn link_labels_are_escaped() {
        assert_eq!(
            link("https://a.example/requests/4", "<#4|x>"),
            "<https://a.example/requests/4|&lt;#4\u{2758}x&gt;>"
        );
    }
}
