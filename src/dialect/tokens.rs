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

/// `SUBSTRING(s SIMILAR p ESCAPE e)` → `KDA_SUBSTRING_SIMILAR(s, p, e)`, a form sqlparser
/// does not parse (`SIMILAR TO` inside the string expression is left alone).
fn substring_similar(toks: &mut [TokenWithSpan]) {
    for i in 0..toks.len().saturating_sub(1) {
        if !(word_is(&toks[i], "SUBSTRING") && matches!(toks[i + 1].token, Token::LParen)) {
            continue;
        }
        let Some(close) = matching_paren(toks, i + 1) else {
            continue;
        };
        let mut depth = 0usize;
        let (mut similar, mut escape) = (None, None);
        for j in i + 1..close {
            match toks[j].token {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                _ if depth == 1 && word_is(&toks[j], "SIMILAR") && !word_is(&toks[j + 1], "TO") => similar = Some(j),
                _ if depth == 1 && similar.is_some() && word_is(&toks[j], "ESCAPE") => escape = Some(j),
                _ => {}
            }
        }
        if let (Some(similar), Some(escape)) = (similar, escape) {
            toks[i] = with_span(Token::make_word("KDA_SUBSTRING_SIMILAR", None), &toks[i]);
            toks[similar] = with_span(Token::Comma, &toks[similar]);
            toks[escape] = with_span(Token::Comma, &toks[escape]);
        }
    }
}

/// `TRIM(LEADING FROM s)` (a side without characters) → `TRIM(LEADING ' ' FROM s)`:
/// the character defaults to a space, and sqlparser needs it spelled out.
fn trim_default_character(toks: &mut Vec<TokenWithSpan>) {
    let mut i = 0;
    while i + 3 < toks.len() {
        if word_is(&toks[i], "TRIM")
            && matches!(toks[i + 1].token, Token::LParen)
            && ["LEADING", "TRAILING", "BOTH"].iter().any(|w| word_is(&toks[i + 2], w))
            && matches!(&toks[i + 3].token, Token::Word(w) if w.keyword == Keyword::FROM)
        {
            let space = with_span(Token::SingleQuotedString(" ".into()), &toks[i + 3]);
            toks.insert(i + 3, space);
        }
        i += 1;
    }
}

/// Applies every rewrite. The result holds no whitespace or comment tokens.
pub fn rewrite(raw: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut toks = drop_whitespace_and_slash_comments(raw);
    upper_case_unquoted_words(&mut toks);
    remove_select_stream(&mut toks);
    remove_cursor_keyword(&mut toks);
    step_by_to_comma(&mut toks);
    stagger_to_group_by(&mut toks);
    interval_qualifiers(&mut toks);
    window_table_arguments(&mut toks);
    trim_default_character(&mut toks);
    substring_similar(&mut toks);
    // before join_windows_to_hints, which would take `FROM LAST OVER w` for a windowed FROM
    nth_value_from(&mut toks);
    join_windows_to_hints(&mut toks);
    t_sort_within(&mut toks);
    toks
}

/// Name of the marker function a T-sort's key becomes in `ORDER BY`.
pub const T_SORT_MARKER: &str = "T_SORT";

/// `ORDER BY key WITHIN INTERVAL '1' MINUTE` (a T-sort: rows up to that late are put back
/// in key order) → `ORDER BY T_SORT(key, INTERVAL '1' MINUTE)`.
fn t_sort_within(toks: &mut Vec<TokenWithSpan>) {
    let mut i = 0;
    while i < toks.len() {
        if !word_is(&toks[i], "WITHIN") {
            i += 1;
            continue;
        }
        // The ORDER BY this WITHIN closes, at the same parenthesis depth.
        let mut depth = 0usize;
        let mut by = None;
        for j in (1..i).rev() {
            match toks[j].token {
                Token::RParen => depth += 1,
                Token::LParen if depth == 0 => break,
                Token::LParen => depth -= 1,
                Token::SemiColon => break,
                _ => {}
            }
            if depth == 0 && word_is(&toks[j], "BY") && word_is(&toks[j - 1], "ORDER") {
                by = Some(j);
                break;
            }
        }
        // The interval: INTERVAL 'n' UNIT [(p)] [TO UNIT [(p)]].
        let mut end = i + 1;
        let is_interval = toks.get(end).is_some_and(|t| word_is(t, "INTERVAL"));
        let (Some(by), true) = (by, is_interval) else {
            i += 1;
            continue;
        };
        end += 1;
        if matches!(toks.get(end).map(|t| &t.token), Some(Token::SingleQuotedString(_))) {
            end += 1;
        }
        let skip_unit = |end: &mut usize, toks: &[TokenWithSpan]| {
            if toks
                .get(*end)
                .is_some_and(|t| INTERVAL_UNITS.iter().any(|u| word_is(t, u)))
            {
                *end += 1;
                if matches!(toks.get(*end).map(|t| &t.token), Some(Token::LParen))
                    && let Some(close) = matching_paren(toks, *end)
                {
                    *end = close + 1;
                }
            }
        };
        skip_unit(&mut end, toks);
        if toks.get(end).is_some_and(|t| word_is(t, "TO")) {
            end += 1;
            skip_unit(&mut end, toks);
        }
        let key: Vec<TokenWithSpan> = toks[by + 1..i].to_vec();
        let interval: Vec<TokenWithSpan> = toks[i + 1..end].to_vec();
        let at = &toks[i];
        let mut call = vec![
            with_span(Token::make_word(T_SORT_MARKER, None), at),
            with_span(Token::LParen, at),
        ];
        call.extend(key);
        call.push(with_span(Token::Comma, at));
        call.extend(interval);
        call.push(with_span(Token::RParen, at));
        let len = call.len();
        toks.splice(by + 1..end, call);
        i = by + 1 + len;
    }
}

/// `NTH_VALUE(x, n) FROM FIRST | FROM LAST [RESPECT | IGNORE NULLS] OVER w`: FROM FIRST is
/// the default and goes; FROM LAST becomes the call `NTH_VALUE_FROM_LAST(x, n)` (see
/// `operators::analytic::markers`). Only a FROM followed by FIRST/LAST and then OVER or a
/// null treatment is taken, so `NTH_VALUE(x, n) FROM last_stream` stays a FROM clause.
fn nth_value_from(toks: &mut Vec<TokenWithSpan>) {
    let mut i = 0;
    while i + 1 < toks.len() {
        if word_is(&toks[i], "NTH_VALUE")
            && matches!(toks[i + 1].token, Token::LParen)
            && let Some(close) = matching_paren(toks, i + 1)
            && toks.get(close + 1).is_some_and(|t| word_is(t, "FROM"))
            && let Some(which) = toks
                .get(close + 2)
                .filter(|t| word_is(t, "FIRST") || word_is(t, "LAST"))
            && toks
                .get(close + 3)
                .is_some_and(|t| word_is(t, "OVER") || word_is(t, "RESPECT") || word_is(t, "IGNORE"))
        {
            if word_is(which, "LAST") {
                toks[i] = with_span(Token::make_word("NTH_VALUE_FROM_LAST", None), &toks[i]);
            }
            toks.drain(close + 1..close + 3);
        }
        i += 1;
    }
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
        let well_formed = body.len() > 2 && word_is(&body[0], "PARTITION") && word_is(&body[1], "BY");
        let (Some(range_at), true) = (range_at.filter(|&r| r >= 2), well_formed) else {
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

/// Flink's window table functions take a table, and SESSION its partitioning:
/// `TUMBLE(TABLE s, ...)`, `SESSION(TABLE s PARTITION BY k1, k2, DESCRIPTOR(t), ...)`.
/// `TABLE s` becomes the subquery `(SELECT * FROM s)` and `PARTITION BY keys` (also
/// `PARTITION BY (k1, k2)`) the argument `PARTITION_BY(keys)`, which
/// `planner::window_tvf` takes apart again.
fn window_table_arguments(toks: &mut Vec<TokenWithSpan>) {
    let mut i = 0;
    while i + 1 < toks.len() {
        let is_call = ["TUMBLE", "HOP", "CUMULATE", "SESSION"]
            .iter()
            .any(|f| word_is(&toks[i], f))
            && matches!(toks[i + 1].token, Token::LParen);
        i += 1;
        if !is_call {
            continue;
        }
        let Some(close) = matching_paren(toks, i) else {
            return;
        };
        let Some(t) = (i + 1..close).find(|&j| {
            word_is(&toks[j], "TABLE")
                && matches!(toks[j - 1].token, Token::LParen | Token::Comma | Token::RArrow)
                && matches!(toks[j + 1].token, Token::Word(_))
        }) else {
            continue;
        };
        let mut end = t + 2; // past the name, `a` or `a.b`
        while end + 1 < close
            && matches!(toks[end].token, Token::Period)
            && matches!(toks[end + 1].token, Token::Word(_))
        {
            end += 2;
        }
        let anchor = toks[t].clone();
        let mut replacement = vec![
            with_span(Token::LParen, &anchor),
            with_span(Token::make_keyword("SELECT"), &anchor),
            with_span(Token::Mul, &anchor),
            with_span(Token::make_keyword("FROM"), &anchor),
        ];
        replacement.extend(toks[t + 1..end].iter().cloned());
        replacement.push(with_span(Token::RParen, &anchor));
        let mut stop = end;
        if end + 1 < close
            && word_is(&toks[end], "PARTITION")
            && matches!(&toks[end + 1].token, Token::Word(w) if w.keyword == Keyword::BY)
        {
            // the keys run to the comma before DESCRIPTOR or a named argument
            let (mut k, mut depth) = (end + 2, 0usize);
            while k < close {
                match toks[k].token {
                    Token::LParen => depth += 1,
                    Token::RParen => depth = depth.saturating_sub(1),
                    Token::Comma
                        if depth == 0
                            && (word_is(&toks[k + 1], "DESCRIPTOR")
                                || toks.get(k + 2).is_some_and(|t| matches!(t.token, Token::RArrow))) =>
                    {
                        break;
                    }
                    _ => {}
                }
                k += 1;
            }
            let mut keys = toks[end + 2..k].to_vec();
            if matches!(keys.first().map(|t| &t.token), Some(Token::LParen))
                && matching_paren(&keys, 0) == Some(keys.len() - 1)
            {
                keys = keys[1..keys.len() - 1].to_vec();
            }
            replacement.push(with_span(Token::Comma, &anchor));
            replacement.push(with_span(Token::make_word("PARTITION_BY", None), &anchor));
            replacement.push(with_span(Token::LParen, &anchor));
            replacement.extend(keys);
            replacement.push(with_span(Token::RParen, &anchor));
            stop = k;
        }
        toks.splice(t..stop, replacement);
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
        // the qualifier: UNIT [(p)] [TO UNIT [(p)]], passed whole (the finest unit and
        // its fractional precision decide the value's precision)
        let mut end = i + 2;
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
            end = skip_precision(toks, end + 2);
        }
        let qualifier = toks[i + 1..end]
            .iter()
            .map(|t| t.token.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        // wrap a whole function call `f(...) SECOND`, otherwise just the parentheses
        let start = match open.checked_sub(1).map(|p| &toks[p].token) {
            Some(Token::Word(w)) if w.keyword == Keyword::NoKeyword || w.quote_style.is_some() => open - 1,
            _ => open,
        };
        let anchor = toks[i + 1].clone();
        let tail = vec![
            with_span(Token::Comma, &anchor),
            with_span(Token::SingleQuotedString(qualifier), &anchor),
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

/// Name of the hint function a join side's window becomes (see `planner::stream_join`).
pub const JOIN_WINDOW_HINT: &str = "SLUICE_JOIN_WINDOW";

/// `JOIN s OVER (RANGE ...) [AS] t` (also `FROM s OVER w AS t`): a join side's window →
/// `JOIN s [AS] t WITH (SLUICE_JOIN_WINDOW() OVER (RANGE ...))`, a table hint sqlparser
/// parses, window specification included; the planner takes it out of the AST again.
fn join_windows_to_hints(toks: &mut Vec<TokenWithSpan>) {
    let is_kw = |t: &TokenWithSpan, k: Keyword| matches!(&t.token, Token::Word(w) if w.keyword == k);
    let is_name = |t: &TokenWithSpan| matches!(&t.token, Token::Word(w) if w.quote_style.is_some() || w.keyword == Keyword::NoKeyword);
    let mut i = 2;
    while i < toks.len() {
        let at_table_window = is_kw(&toks[i], Keyword::OVER)
            && matches!(toks[i - 1].token, Token::Word(_))
            && (is_kw(&toks[i - 2], Keyword::JOIN) || is_kw(&toks[i - 2], Keyword::FROM));
        if !at_table_window {
            i += 1;
            continue;
        }
        // OVER (spec) or OVER name
        let end = match toks.get(i + 1).map(|t| &t.token) {
            Some(Token::LParen) => matching_paren(toks, i + 1),
            Some(Token::Word(_)) => Some(i + 1),
            _ => None,
        };
        let Some(end) = end else {
            i += 1;
            continue;
        };
        let window: Vec<TokenWithSpan> = toks.drain(i..=end).collect();
        // the alias, if any, stays right after the table name
        let mut insert_at = i;
        if toks.get(i).is_some_and(|t| is_kw(t, Keyword::AS)) {
            insert_at = (i + 2).min(toks.len());
        } else if toks.get(i).is_some_and(is_name) {
            insert_at = i + 1;
        }
        let anchor = window[0].clone();
        let mut hint = vec![
            with_span(Token::make_keyword("WITH"), &anchor),
            with_span(Token::LParen, &anchor),
            with_span(Token::make_word(JOIN_WINDOW_HINT, None), &anchor),
            with_span(Token::LParen, &anchor),
            with_span(Token::RParen, &anchor),
        ];
        hint.extend(window);
        hint.push(with_span(Token::RParen, &anchor));
        let n = hint.len();
        toks.splice(insert_at..insert_at, hint);
        i = insert_at + n;
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
            "INTERVAL_QUALIFY ( ( A - B ) , 'MINUTE TO SECOND' )"
        );
        assert_eq!(
            rewritten("(a - b) second(2, 0) + (a - b) day(3) to hour"),
            "INTERVAL_QUALIFY ( ( A - B ) , 'SECOND ( 2 , 0 )' ) + INTERVAL_QUALIFY ( ( A - B ) , 'DAY ( 3 ) TO HOUR' )"
        );
    }

    #[test]
    fn t_sort_becomes_a_marked_order_by_key() {
        assert_eq!(
            rewritten("select stream e as rowtime from s order by e within interval '1' minute;"),
            "SELECT E AS ROWTIME FROM S ORDER BY T_SORT ( E , INTERVAL '1' MINUTE ) ;"
        );
        assert_eq!(
            rewritten(
                "(select x from s order by floor(s.t to second) within interval '1:30' minute to second(3)) as q"
            ),
            "( SELECT X FROM S ORDER BY T_SORT ( FLOOR ( S . T TO SECOND ) , INTERVAL '1:30' MINUTE TO SECOND ( 3 ) ) ) AS Q"
        );
        assert_eq!(rewritten("select within from s"), "SELECT WITHIN FROM S");
    }

    #[test]
    fn window_table_functions_take_a_table_and_partitioning() {
        assert_eq!(
            rewritten("FROM TABLE(TUMBLE(TABLE \"S\", DESCRIPTOR(t), INTERVAL '1' MINUTE))"),
            "FROM TABLE ( TUMBLE ( ( SELECT * FROM \"S\" ) , DESCRIPTOR ( T ) , INTERVAL '1' MINUTE ) )"
        );
        assert_eq!(
            rewritten("TABLE(SESSION(TABLE s PARTITION BY (a, b), DESCRIPTOR(t), INTERVAL '5' SECOND))"),
            "TABLE ( SESSION ( ( SELECT * FROM S ) , PARTITION_BY ( A , B ) , DESCRIPTOR ( T ) , INTERVAL '5' SECOND ) )"
        );
        assert_eq!(
            rewritten("SESSION(DATA => TABLE s PARTITION BY k, TIMECOL => DESCRIPTOR(t), GAP => x)"),
            "SESSION ( DATA => ( SELECT * FROM S ) , PARTITION_BY ( K ) , TIMECOL => DESCRIPTOR ( T ) , GAP => X )"
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
