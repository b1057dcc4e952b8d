//! Token-level rewrites that turn KDA-only syntax into standard SQL that sqlparser
//! parses, each into a call of a sluice function that carries the KDA meaning.
//!
//! Working on tokens (not text) keeps string literals, quoted identifiers and comments
//! intact, and keeps every token's source location for error messages.

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace};

/// Name of the marker function a stagger window's range becomes in `GROUP BY`.
pub const STAGGER_MARKER: &str = "STAGGER_WINDOW";
/// Name of the function an interval qualifier `(a - b) SECOND` becomes.
pub const INTERVAL_QUALIFY: &str = "INTERVAL_QUALIFY";

const INTERVAL_UNITS: [&str; 6] = ["YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND"];

/// Applies every rewrite. The result holds no whitespace or comment tokens.
pub fn rewrite(raw: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut toks = drop_whitespace_and_slash_comments(raw);
    upper_case_unquoted_words(&mut toks);
    remove_select_stream(&mut toks);
    remove_cursor_keyword(&mut toks);
    step_by_to_comma(&mut toks);
    stagger_to_group_by(&mut toks);
    interval_qualifiers(&mut toks);
    toks
}

fn word_is(t: &TokenWithSpan, upper: &str) -> bool {
    matches!(&t.token, Token::Word(w) if w.quote_style.is_none() && w.value == upper)
}

fn with_span(token: Token, like: &TokenWithSpan) -> TokenWithSpan {
    TokenWithSpan::new(token, like.span)
}

/// Drops whitespace and comments, including `// ...` line comments that appear in the
/// reference's CREATE PUMP example (decision in the spec, §1.1: accept them).
fn drop_whitespace_and_slash_comments(raw: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let t = &raw[i];
        if matches!(t.token, Token::Div) && matches!(raw.get(i + 1).map(|n| &n.token), Some(Token::Div)) {
            // skip to the end of the line
            while i < raw.len() && !matches!(raw[i].token, Token::Whitespace(Whitespace::Newline)) {
                i += 1;
            }
            continue;
        }
        if !matches!(t.token, Token::Whitespace(_)) {
            out.push(t.clone());
        }
        i += 1;
    }
    out
}

/// KDA upper-cases unquoted identifiers before storing or looking them up (spec §1.6).
/// Keywords are matched case-insensitively anyway, so upper-casing every unquoted word
/// is exact.
fn upper_case_unquoted_words(toks: &mut [TokenWithSpan]) {
    for t in toks.iter_mut() {
        if let Token::Word(w) = &mut t.token
            && w.quote_style.is_none()
        {
            w.value = w.value.to_uppercase();
        }
    }
}

/// `SELECT STREAM` produces a stream; sluice infers streaming from the sources (A6), so
/// the keyword only needs to go.
fn remove_select_stream(toks: &mut Vec<TokenWithSpan>) {
    let mut i = 0;
    while i + 1 < toks.len() {
        if matches!(&toks[i].token, Token::Word(w) if w.keyword == Keyword::SELECT) && word_is(&toks[i + 1], "STREAM") {
            toks.remove(i + 1);
        }
        i += 1;
    }
}

/// `CURSOR(SELECT STREAM ...)` is a stream argument of a table function; without the
/// keyword it is a parenthesised subquery, which sqlparser accepts as an argument.
fn remove_cursor_keyword(toks: &mut Vec<TokenWithSpan>) {
    let mut i = 0;
    while i + 1 < toks.len() {
        if word_is(&toks[i], "CURSOR") && matches!(toks[i + 1].token, Token::LParen) {
            toks.remove(i);
        }
        i += 1;
    }
}

/// Index of the token that closes the parenthesis opened at `open`.
fn matching_paren(toks: &[TokenWithSpan], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, t) in toks.iter().enumerate().skip(open) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

/// Index of the token that opens the parenthesis closed at `close`.
fn matching_open(toks: &[TokenWithSpan], close: usize) -> Option<usize> {
    let mut depth = 0usize;
    for j in (0..=close).rev() {
        match toks[j].token {
            Token::RParen => depth += 1,
            Token::LParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

/// `STEP(x BY INTERVAL '10' SECOND)` → `STEP(x, INTERVAL '10' SECOND)`.
fn step_by_to_comma(toks: &mut [TokenWithSpan]) {
    for i in 0..toks.len().saturating_sub(1) {
        if !(word_is(&toks[i], "STEP") && matches!(toks[i + 1].token, Token::LParen)) {
            continue;
        }
        let Some(close) = matching_paren(toks, i + 1) else {
            continue;
        };
        let mut depth = 0usize;
        for tok in &mut toks[i + 1..close] {
            match tok.token {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                _ if depth == 1 && matches!(&tok.token, Token::Word(w) if w.keyword == Keyword::BY) => {
                    *tok = with_span(Token::Comma, tok);
                    break;
                }
                _ => {}
            }
        }
    }
}

/// `WINDOWED BY STAGGER (PARTITION BY k1, k2 RANGE INTERVAL '1' MINUTE)` →
/// `GROUP BY STAGGER_WINDOW(INTERVAL '1' MINUTE), k1, k2`. The marker call keeps the
/// window's range in the plan, where the planner finds it among the grouping keys.
fn stagger_to_group_by(toks: &mut Vec<TokenWithSpan>) {
    let mut i = 0;
    while i + 4 < toks.len() {
        let is_stagger = word_is(&toks[i], "WINDOWED")
            && matches!(&toks[i + 1].token, Token::Word(w) if w.keyword == Keyword::BY)
            && word_is(&toks[i + 2], "STAGGER")
            && matches!(toks[i + 3].token, Token::LParen);
        if !is_stagger {
            i += 1;
            continue;
        }
        let Some(close) = matching_paren(toks, i + 3) else {
            return;
        };
        let body = &toks[i + 4..close];
        // PARTITION BY <keys> RANGE <interval>
        let mut depth = 0usize;
        let mut range_at = None;
        for (k, t) in body.iter().enumerate() {
            match t.token {
                Token::LParen => depth += 1,
                Token::RParen => depth = depth.saturating_sub(1),
                _ if depth == 0 && word_is(t, "RANGE") => {
                    range_at = Some(k);
                    break;
                }
                _ => {}
            }
        }
        let (Some(range_at), true) = (range_at, body.len() > 2 && word_is(&body[0], "PARTITION")) else {
            // leave it for the parser to report at the right place
            return;
        };
        let keys: Vec<TokenWithSpan> = body[2..range_at].to_vec();
        let range: Vec<TokenWithSpan> = body[range_at + 1..].to_vec();
        let anchor = toks[i].clone();
        let mut replacement = vec![
            with_span(Token::make_keyword("GROUP"), &anchor),
            with_span(Token::make_keyword("BY"), &anchor),
            with_span(Token::make_word(STAGGER_MARKER, None), &anchor),
            with_span(Token::LParen, &anchor),
        ];
        replacement.extend(range);
        replacement.push(with_span(Token::RParen, &anchor));
        if !keys.is_empty() {
            replacement.push(with_span(Token::Comma, &anchor));
            replacement.extend(keys);
        }
        let n = replacement.len();
        toks.splice(i..=close, replacement);
        i += n;
    }
}

/// `(a - b) SECOND`, `(a - b) MINUTE TO SECOND`: an interval qualifier after a
/// parenthesised datetime difference → `INTERVAL_QUALIFY((a - b), 'SECOND')`.
fn interval_qualifiers(toks: &mut Vec<TokenWithSpan>) {
    let mut i = 0;
    while i + 1 < toks.len() {
        let unit_follows =
            matches!(toks[i].token, Token::RParen) && INTERVAL_UNITS.iter().any(|u| word_is(&toks[i + 1], u));
        if !unit_follows {
            i += 1;
            continue;
        }
        let Some(open) = matching_open(toks, i) else {
            i += 1;
            continue;
        };
        // the qualifier: UNIT [(p)] [TO UNIT [(p)]]; the finest unit decides
        let mut end = i + 2;
        let mut unit = match &toks[i + 1].token {
            Token::Word(w) => w.value.clone(),
            _ => unreachable!("checked above"),
        };
        let skip_precision = |toks: &[TokenWithSpan], at: usize| -> usize {
            if matches!(toks.get(at).map(|t| &t.token), Some(Token::LParen)) {
                matching_paren(toks, at).map(|c| c + 1).unwrap_or(at)
            } else {
                at
            }
        };
        end = skip_precision(toks, end);
        if toks
            .get(end)
            .is_some_and(|t| matches!(&t.token, Token::Word(w) if w.keyword == Keyword::TO))
            && toks
                .get(end + 1)
                .is_some_and(|t| INTERVAL_UNITS.iter().any(|u| word_is(t, u)))
        {
            if let Token::Word(w) = &toks[end + 1].token {
                unit = w.value.clone();
            }
            end = skip_precision(toks, end + 2);
        }
        // wrap a whole function call `f(...) SECOND`, otherwise just the parentheses
        let start = match open.checked_sub(1).map(|p| &toks[p].token) {
            Some(Token::Word(w)) if w.keyword == Keyword::NoKeyword || w.quote_style.is_some() => open - 1,
            _ => open,
        };
        let anchor = toks[i + 1].clone();
        let tail = vec![
            with_span(Token::Comma, &anchor),
            with_span(Token::SingleQuotedString(unit), &anchor),
            with_span(Token::RParen, &anchor),
        ];
        toks.splice(i + 1..end, tail);
        toks.splice(
            start..start,
            vec![
                with_span(Token::make_word(INTERVAL_QUALIFY, None), &anchor),
                with_span(Token::LParen, &anchor),
            ],
        );
        i += 5;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::KdaDialect;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;

    fn rewritten(sql: &str) -> String {
        let toks = Tokenizer::new(&KdaDialect::default(), sql)
            .tokenize_with_location()
            .unwrap();
        rewrite(toks)
            .iter()
            .map(|t| t.token.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn select_stream_and_step() {
        assert_eq!(
            rewritten("select stream step(s.rowtime by interval '10' second) from s"),
            "SELECT STEP ( S . ROWTIME , INTERVAL '10' SECOND ) FROM S"
        );
    }

    #[test]
    fn interval_qualifier_idiom() {
        assert_eq!(
            rewritten("FLOOR((s.ROWTIME - TIMESTAMP '1970-01-01 00:00:00') SECOND / 10 TO SECOND)"),
            "FLOOR ( INTERVAL_QUALIFY ( ( S . ROWTIME - TIMESTAMP '1970-01-01 00:00:00' ) , 'SECOND' ) / 10 TO SECOND )"
        );
        assert_eq!(
            rewritten("(a - b) MINUTE TO SECOND"),
            "INTERVAL_QUALIFY ( ( A - B ) , 'SECOND' )"
        );
    }

    #[test]
    fn stagger_becomes_marked_group_by() {
        assert_eq!(
            rewritten("WINDOWED BY STAGGER (PARTITION BY FLOOR(t TO MINUTE), p RANGE INTERVAL '1' MINUTE)"),
            "GROUP BY STAGGER_WINDOW ( INTERVAL '1' MINUTE ) , FLOOR ( T TO MINUTE ) , P"
        );
    }

    #[test]
    fn quoted_names_and_strings_keep_case_and_slash_comments_go() {
        assert_eq!(
            rewritten("\"sensorId\" LIKE 'gh-%' // note\n x"),
            "\"sensorId\" LIKE 'gh-%' X"
        );
    }
}
