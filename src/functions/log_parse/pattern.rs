//! REGEX_LOG_PARSE, FAST_REGEX_LOG_PARSE(R), W3C_LOG_PARSE and SYS_LOG_PARSE: parsers
//! that match the whole line with one regular expression and take the fields from its
//! capture groups.
//!
//! Java regular expressions are translated for Rust's `regex` crate
//! ([`java_regex`]): `\d \w \s` (and `\D \W \S` outside classes) keep Java's ASCII
//! meaning, `\Q...\E` quoting and the POSIX classes `\p{Alpha}`, `\p{Digit}`, ... are
//! rewritten, and possessive quantifiers become greedy ones. Back-references and
//! look-around are not supported by the `regex` crate: such a pattern is a plan error.

use std::borrow::Cow;
use std::sync::Arc;

use regex::Regex;

use crate::types::SqlType;

use super::super::common::cached_regex;
use super::super::simple_date_format::tokenize;
use super::LineParser;
use super::spec::{OutColumn, SpecRules, check_unique, parse_columns};

/// REGEX_LOG_PARSE and FAST_REGEX_LOG_PARSE columns are VARCHAR(1024) (documented).
pub(crate) const REGEX_FIELD_TYPE: SqlType = SqlType::Varchar(1024);
/// Fields without a documented length (W3C_LOG_PARSE, SYS_LOG_PARSE's COLUMN2): the
/// longest KDA VARCHAR.
pub(crate) const TEXT_FIELD_TYPE: SqlType = SqlType::Varchar(65535);

/// A parser whose fields are the capture groups of a whole-line match.
#[derive(Debug)]
pub(crate) struct RegexParser {
    re: Arc<Regex>,
    columns: Vec<OutColumn>,
}

impl LineParser for RegexParser {
    fn columns(&self) -> &[OutColumn] {
        &self.columns
    }

    fn parse<'a>(&self, line: &'a str, fields: &mut Vec<Option<Cow<'a, str>>>) -> bool {
        let Some(caps) = self.re.captures(line) else {
            return false;
        };
        fields.extend((1..caps.len()).map(|i| caps.get(i).map(|m| Cow::Borrowed(m.as_str()))));
        true
    }
}

fn posix_class(name: &str) -> Option<&'static str> {
    Some(match name {
        "Lower" => "lower",
        "Upper" => "upper",
        "ASCII" => "ascii",
        "Alpha" => "alpha",
        "Digit" => "digit",
        "Alnum" => "alnum",
        "Punct" => "punct",
        "Graph" => "graph",
        "Print" => "print",
        "Blank" => "blank",
        "Cntrl" => "cntrl",
        "XDigit" => "xdigit",
        "Space" => "space",
        _ => return None,
    })
}

/// Is `chars[i..]` a counted repetition `{n}`, `{n,}` or `{n,m}`? Returns its length.
fn counted_repetition(chars: &[char], i: usize) -> Option<usize> {
    let close = chars[i..].iter().position(|&c| c == '}')?;
    let body: String = chars[i + 1..i + close].iter().collect();
    let (min, max) = match body.split_once(',') {
        Some((a, b)) => (a, b),
        None => (body.as_str(), "0"),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    (!min.is_empty() && digits(min) && digits(max)).then_some(close + 1)
}

/// Translates a Java regular expression into Rust `regex` syntax. With `lazy`, every
/// quantifier becomes reluctant (FAST_REGEX_LOG_PARSE's "lazy semantics").
pub(crate) fn java_regex(pattern: &str, lazy: bool) -> Result<String, String> {
    const WORD: &str = "0-9A-Za-z_";
    const SPACE: &str = "\\t\\n\\x0B\\f\\r ";
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut class_depth = 0usize;
    // The previous token opened a group, so a `?` is a group flag, not a quantifier.
    let mut after_open = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let was_after_open = std::mem::replace(&mut after_open, false);
        if c == '\\' {
            let Some(&next) = chars.get(i + 1) else {
                return Err("the pattern ends with a backslash".to_string());
            };
            let in_class = class_depth > 0;
            i += 2;
            match next {
                'd' if in_class => out.push_str("0-9"),
                'd' => out.push_str("[0-9]"),
                'D' if !in_class => out.push_str("[^0-9]"),
                'w' if in_class => out.push_str(WORD),
                'w' => out.push_str(&format!("[{WORD}]")),
                'W' if !in_class => out.push_str(&format!("[^{WORD}]")),
                's' if in_class => out.push_str(SPACE),
                's' => out.push_str(&format!("[{SPACE}]")),
                'S' if !in_class => out.push_str(&format!("[^{SPACE}]")),
                'Z' if !in_class => out.push_str("(?:\\n?\\z)"),
                'Q' => {
                    let rest: String = chars[i..].iter().collect();
                    let (quoted, consumed) = match rest.find("\\E") {
                        Some(end) => (&rest[..end], rest[..end].chars().count() + 2),
                        None => (rest.as_str(), rest.chars().count()),
                    };
                    for q in quoted.chars() {
                        let mut buf = [0u8; 4];
                        out.push_str(&regex::escape(q.encode_utf8(&mut buf)));
                    }
                    i += consumed;
                }
                'p' | 'P' if chars.get(i) == Some(&'{') => {
                    let close = chars[i..]
                        .iter()
                        .position(|&c| c == '}')
                        .ok_or("unterminated \\p{...}")?;
                    let name: String = chars[i + 1..i + close].iter().collect();
                    let negated = next == 'P';
                    match posix_class(&name) {
                        Some(p) if in_class => out.push_str(&format!("[:{}{p}:]", if negated { "^" } else { "" })),
                        Some(p) => out.push_str(&format!("[[:{}{p}:]]", if negated { "^" } else { "" })),
                        None => out.push_str(&format!("\\{next}{{{name}}}")),
                    }
                    i += close + 1;
                }
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
            continue;
        }
        if class_depth > 0 {
            match c {
                '[' => {
                    class_depth += 1;
                    out.push('[');
                    i += 1;
                    i = class_start(&chars, i, &mut out);
                }
                ']' => {
                    class_depth -= 1;
                    out.push(']');
                    i += 1;
                }
                _ => {
                    out.push(c);
                    i += 1;
                }
            }
            continue;
        }
        match c {
            '[' => {
                class_depth = 1;
                out.push('[');
                i = class_start(&chars, i + 1, &mut out);
            }
            '(' => {
                out.push('(');
                after_open = true;
                i += 1;
            }
            '?' if was_after_open => {
                out.push('?');
                i += 1;
            }
            '*' | '+' | '?' | '{' => {
                let len = if c == '{' {
                    match counted_repetition(&chars, i) {
                        Some(len) => len,
                        None => return Err(format!("illegal repetition at position {}", i + 1)),
                    }
                } else {
                    1
                };
                out.extend(&chars[i..i + len]);
                i += len;
                match chars.get(i) {
                    // Already reluctant.
                    Some('?') => {
                        out.push('?');
                        i += 1;
                    }
                    // Possessive: no such thing in a non-backtracking engine.
                    Some('+') => {
                        if lazy {
                            out.push('?');
                        }
                        i += 1;
                    }
                    _ if lazy => out.push('?'),
                    _ => {}
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    if class_depth > 0 {
        return Err("unclosed character class".to_string());
    }
    Ok(out)
}

/// After a `[`: copies a leading `^` and a leading literal `]`.
fn class_start(chars: &[char], mut i: usize, out: &mut String) -> usize {
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    if chars.get(i) == Some(&']') {
        out.push_str("\\]");
        i += 1;
    }
    i
}

/// Compiles an anchored (whole-string) regex.
fn whole_line_regex(body: &str) -> Result<Arc<Regex>, String> {
    cached_regex(&format!("\\A(?:{body})\\z"))
}

/// REGEX_LOG_PARSE (`lazy = false`) and FAST_REGEX_LOG_PARSE (`lazy = true`): one field
/// per capture group, `COLUMN1..n` VARCHAR(1024), or named and typed by `columns`
/// (`name [TYPE] [type] [NOT NULL], ...`, default type VARCHAR(1024); groups beyond the
/// list keep their `COLUMNk` name).
pub(crate) fn compile_regex(pattern: &str, columns: Option<&str>, lazy: bool) -> Result<RegexParser, String> {
    let translated = java_regex(pattern, lazy).map_err(|e| format!("invalid regular expression '{pattern}': {e}"))?;
    let re = whole_line_regex(&translated).map_err(|e| format!("invalid regular expression '{pattern}': {e}"))?;
    let groups = re.captures_len() - 1;
    if groups == 0 {
        return Err(format!("the regular expression '{pattern}' has no capture group"));
    }
    let mut out: Vec<OutColumn> = match columns {
        None => Vec::new(),
        Some(spec) => parse_regex_columns(spec)?,
    };
    if out.len() > groups {
        return Err(format!(
            "{} columns are named but the regular expression has {groups} capture groups",
            out.len()
        ));
    }
    for n in out.len() + 1..=groups {
        let c = OutColumn::numbered(n, REGEX_FIELD_TYPE);
        check_unique(&out, &c.name)?;
        out.push(c);
    }
    Ok(RegexParser { re, columns: out })
}

/// REGEX_LOG_PARSE's optional column list: the type (and the TYPE keyword) may be left
/// out, meaning VARCHAR(1024).
fn parse_regex_columns(spec: &str) -> Result<Vec<OutColumn>, String> {
    parse_columns(
        spec,
        SpecRules {
            type_keyword: false,
            positions: false,
            default_varchar: Some(1024),
        },
    )
}

// ---------------------------------------------------------------------------------------
// W3C_LOG_PARSE
// ---------------------------------------------------------------------------------------

/// The predefined formats (KDA SQL reference, W3C_LOG_PARSE). IIS is Microsoft's IIS log
/// file format: 15 comma-separated fields (client IP, user name, date, time, service,
/// server name, server IP, time taken, bytes received, bytes sent, status, Windows
/// status, method, target, parameters), each line ending with a comma.
fn predefined_format(name: &str) -> Option<&'static str> {
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ").to_uppercase();
    Some(match name.as_str() {
        "COMMON" => "%h %l %u %t \"%r\" %>s %b",
        "COMMON WITH VHOST" => "%v %h %l %u %t \"%r\" %>s %b",
        "NCSA EXTENDED" => "%h %l %u %t \"%r\" %>s %b \"%[Referer]i\" \"%[User-agent]i\"",
        "REFERER" => "%[Referer]i ---> %U",
        "AGENT" => "%[User-agent]i",
        "IIS" => "%a, %u, %[date]x, %[time]x, %[service]x, %v, %A, %T, %I, %O, %s, %[win32]x, %m, %U, %q,",
        _ => return None,
    })
}

#[derive(Debug, PartialEq)]
enum Item {
    Literal(String),
    /// A format specifier: its letter and its `{...}`/`[...]` argument.
    Spec(char, Option<String>),
}

/// Splits an Apache `LogFormat` string: `%[conditions][<|>][{arg}|[arg]]letter`, `%%`.
fn format_items(format: &str) -> Result<Vec<Item>, String> {
    let chars: Vec<char> = format.chars().collect();
    let mut items = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            lit.push(chars[i]);
            i += 1;
            continue;
        }
        let at = i + 1;
        i += 1;
        if chars.get(i) == Some(&'%') {
            lit.push('%');
            i += 1;
            continue;
        }
        while matches!(chars.get(i), Some(c) if *c == '!' || *c == ',' || c.is_ascii_digit()) {
            i += 1;
        }
        if matches!(chars.get(i), Some('<' | '>')) {
            i += 1;
        }
        let mut arg = None;
        if let Some(&open @ ('{' | '[')) = chars.get(i) {
            let close = if open == '{' { '}' } else { ']' };
            let end = chars[i..]
                .iter()
                .position(|&c| c == close)
                .ok_or_else(|| format!("unterminated '{open}' in the format specifier at position {at}"))?;
            arg = Some(chars[i + 1..i + end].iter().collect());
            i += end + 1;
        }
        match chars.get(i) {
            Some(&c) if c.is_ascii_alphabetic() => {
                if !lit.is_empty() {
                    items.push(Item::Literal(std::mem::take(&mut lit)));
                }
                items.push(Item::Spec(c, arg));
                i += 1;
            }
            _ => return Err(format!("incomplete format specifier at position {at}")),
        }
    }
    if !lit.is_empty() {
        items.push(Item::Literal(lit));
    }
    Ok(items)
}

/// W3C_LOG_PARSE: one VARCHAR field `COLUMNk` per format specifier (decision A21: the
/// `[...]` around `%t` and the quotes around quoted specifiers such as `"%r"` are not
/// part of the value; `-` stays `-`).
///
/// The line must match the whole format. `%t` matches `[...]`; a specifier written
/// between double quotes matches up to the closing unescaped quote; any other specifier
/// matches as little as possible before the literal text that follows it (the last one
/// takes the rest of the line).
pub(crate) fn compile_w3c(format: &str) -> Result<RegexParser, String> {
    let format = predefined_format(format).unwrap_or(format);
    let items = format_items(format).map_err(|e| format!("invalid log format '{format}': {e}"))?;
    let mut body = String::from("(?s)");
    let mut fields = 0;
    for (k, item) in items.iter().enumerate() {
        match item {
            Item::Literal(l) => body.push_str(&regex::escape(l)),
            Item::Spec(letter, arg) => {
                fields += 1;
                let quoted = k > 0
                    && matches!(&items[k - 1], Item::Literal(l) if l.ends_with('"'))
                    && matches!(items.get(k + 1), Some(Item::Literal(l)) if l.starts_with('"'));
                if *letter == 't' && arg.is_none() {
                    body.push_str(r"\[([^\]]*)\]");
                } else if quoted {
                    body.push_str(r#"((?:[^"\\]|\\.)*)"#);
                } else {
                    body.push_str("(.*?)");
                }
            }
        }
    }
    if fields == 0 {
        return Err(format!("the log format '{format}' has no format specifier"));
    }
    let re = whole_line_regex(&body)?;
    let columns = (1..=fields).map(|n| OutColumn::numbered(n, TEXT_FIELD_TYPE)).collect();
    Ok(RegexParser { re, columns })
}

// ---------------------------------------------------------------------------------------
// SYS_LOG_PARSE
// ---------------------------------------------------------------------------------------

/// SYS_LOG_PARSE: `Mon DD HH:MM:SS message` (RFC 3164 timestamp, day possibly
/// space-padded) → COLUMN1 TIMESTAMP, COLUMN2 VARCHAR (the rest after one space; NULL
/// when there is none). The syslog timestamp has no year: it is parsed like
/// `CHAR_TO_TIMESTAMP('MMM d HH:mm:ss', ...)`, whose absent year is 1970 (documented
/// SimpleDateFormat default). A line that does not start with such a timestamp is a
/// NULL row; an impossible date (`Feb 30`, `25:00:00`) is a row error.
pub(crate) fn compile_sys_log() -> Result<RegexParser, String> {
    let re = whole_line_regex(
        r"(?s)((?i:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +[0-9]{1,2} [0-9]{1,2}:[0-9]{2}:[0-9]{2})(?: (.*))?",
    )?;
    let mut ts = OutColumn::numbered(1, SqlType::Timestamp);
    ts.format = Some(Arc::new(tokenize("MMM d HH:mm:ss")?));
    let columns = vec![ts, OutColumn::numbered(2, TEXT_FIELD_TYPE)];
    Ok(RegexParser { re, columns })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(p: &RegexParser, line: &str) -> Option<Vec<Option<String>>> {
        let mut out = Vec::new();
        p.parse(line, &mut out)
            .then(|| out.into_iter().map(|f| f.map(|s| s.into_owned())).collect())
    }

    fn some(v: &[&str]) -> Option<Vec<Option<String>>> {
        Some(v.iter().map(|s| Some(s.to_string())).collect())
    }

    #[test]
    fn translates_java_syntax() {
        assert_eq!(
            java_regex(r"(\d+)\s\w", false).unwrap(),
            r"([0-9]+)[\t\n\x0B\f\r ][0-9A-Za-z_]"
        );
        assert_eq!(java_regex(r"[\d.]+\S", false).unwrap(), r"[0-9.]+[^\t\n\x0B\f\r ]");
        assert_eq!(java_regex(r"\Qa.b\E+", false).unwrap(), r"a\.b+");
        assert_eq!(
            java_regex(r"\p{Alpha}[\p{Digit}x]", false).unwrap(),
            "[[:alpha:]][[:digit:]x]"
        );
        assert_eq!(java_regex(r"a*+b", false).unwrap(), "a*b");
        assert_eq!(java_regex(r"(?:a*)(b+?)c{2,3}", true).unwrap(), "(?:a*?)(b+?)c{2,3}?");
        assert_eq!(java_regex(r"[]a]", false).unwrap(), r"[\]a]");
        assert!(java_regex(r"a\", false).is_err());
        assert!(java_regex(r"[abc", false).is_err());
        assert!(java_regex(r"a{x}", false).is_err());
    }

    #[test]
    fn regex_log_parse_matches_whole_line() {
        // Decision A5: Matcher.matches() semantics.
        let p = compile_regex(r"(\w+) (\d+)", None, false).unwrap();
        assert_eq!(fields(&p, "abc 123"), some(&["abc", "123"]));
        assert_eq!(fields(&p, "abc 123 tail"), None);
        assert_eq!(fields(&p, "x abc 123"), None);
        let names: Vec<_> = p.columns().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["COLUMN1", "COLUMN2"]);
        assert_eq!(p.columns()[0].sql_type, SqlType::Varchar(1024));
        // A group that does not take part is NULL.
        let p = compile_regex(r"(a)|(b)", None, false).unwrap();
        assert_eq!(fields(&p, "b"), Some(vec![None, Some("b".to_string())]));
    }

    #[test]
    fn regex_log_parse_developer_guide_example() {
        // dev/examples-transforming-strings-regexlogparse: greedy groups.
        let p = compile_regex(r"(\w.+) (\d.+) (\w.+) (\w.+)", None, false).unwrap();
        let line = r#"203.0.113.24 - - [25/Mar/2018:15:25:37 -0700] "GET /index.php HTTP/1.1" 200 125 "-" "Mozilla/5.0 [en] Gecko/20100101 Firefox/52.0""#;
        assert_eq!(
            fields(&p, line),
            // Group 1 is as long as possible: group 2 must start with a digit after a
            // space, and the last such place is `125`; groups 3 and 4 need a word
            // character after a space, which `[en]` and `"-"` do not have.
            some(&[
                r#"203.0.113.24 - - [25/Mar/2018:15:25:37 -0700] "GET /index.php HTTP/1.1" 200"#,
                r#"125 "-" "Mozilla/5.0 [en]"#,
                "Gecko/20100101",
                r#"Firefox/52.0""#,
            ])
        );
    }

    #[test]
    fn regex_log_parse_named_columns() {
        let p = compile_regex(r"(\w+)=(\d+);(.*)", Some("KEY, VAL INTEGER NOT NULL"), false).unwrap();
        let c = p.columns();
        assert_eq!((c[0].name.as_str(), &c[0].sql_type), ("KEY", &SqlType::Varchar(1024)));
        assert_eq!(
            (c[1].name.as_str(), &c[1].sql_type, c[1].not_null),
            ("VAL", &SqlType::Integer, true)
        );
        assert_eq!(c[2].name, "COLUMN3");
        let p = compile_regex(
            r"(\d+\.\d+) (\w+)",
            Some("AMOUNT DECIMAL(10, 2), \"unit of x\" NOT NULL"),
            false,
        )
        .unwrap();
        assert_eq!(
            p.columns()[0].sql_type,
            SqlType::Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(
            (p.columns()[1].name.as_str(), p.columns()[1].not_null),
            ("unit of x", true)
        );
        assert!(compile_regex(r"(\w+)", Some("A, B"), false).is_err());
        assert!(compile_regex(r"\w+", None, false).is_err());
        assert!(compile_regex(r"(a)\1", None, false).is_err());
        assert!(compile_regex(r"(?<=a)(b)", None, false).is_err());
    }

    #[test]
    fn fast_regex_is_lazy_and_consumes_everything() {
        let p = compile_regex(r"(.*)_(._.*)_.*", None, true).unwrap();
        assert_eq!(fields(&p, "Mary_had_a_little_lamb"), some(&["Mary_had", "a_little"]));
        let greedy = compile_regex(r"(.*)_(._.*)_.*", None, false).unwrap();
        assert_eq!(
            fields(&greedy, "Mary_had_a_little_lamb"),
            some(&["Mary_had", "a_little"])
        );
        let p = compile_regex(r"(.+) (.+)", None, true).unwrap();
        assert_eq!(fields(&p, "a b c"), some(&["a", "b c"]));
        let greedy = compile_regex(r"(.+) (.+)", None, false).unwrap();
        assert_eq!(fields(&greedy, "a b c"), some(&["a b", "c"]));
        let p = compile_regex(r"([0-9]+) ", None, true).unwrap();
        assert_eq!(fields(&p, "12 x"), None);
    }

    #[test]
    fn w3c_common_format() {
        let p = compile_w3c("COMMON").unwrap();
        assert_eq!(p.columns().len(), 7);
        assert_eq!(
            fields(
                &p,
                r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#
            ),
            some(&[
                "127.0.0.1",
                "-",
                "frank",
                "10/Oct/2000:13:55:36 -0700",
                "GET /apache_pb.gif HTTP/1.0",
                "200",
                "2326"
            ])
        );
        // dev/examples-transforming-strings-w3clogparse
        assert_eq!(
            fields(
                &p,
                r#"192.168.254.30 - John [24/May/2004:22:01:02 -0700] "GET /icons/apache_pb.gif HTTP/1.1" 304 0"#
            ),
            some(&[
                "192.168.254.30",
                "-",
                "John",
                "24/May/2004:22:01:02 -0700",
                "GET /icons/apache_pb.gif HTTP/1.1",
                "304",
                "0"
            ])
        );
        assert_eq!(fields(&p, "not a log line"), None);
    }

    #[test]
    fn w3c_other_formats() {
        let p = compile_w3c("ncsa  extended").unwrap();
        assert_eq!(
            fields(
                &p,
                r#"203.0.113.24 - - [25/Mar/2018:15:25:37 -0700] "GET /index.php HTTP/1.1" 200 125 "-" "Mozilla/5.0 [en] \"x\" Firefox/52.0""#
            ),
            some(&[
                "203.0.113.24",
                "-",
                "-",
                "25/Mar/2018:15:25:37 -0700",
                "GET /index.php HTTP/1.1",
                "200",
                "125",
                "-",
                r#"Mozilla/5.0 [en] \"x\" Firefox/52.0"#
            ])
        );
        let p = compile_w3c("COMMON WITH VHOST").unwrap();
        assert_eq!(p.columns().len(), 8);
        let p = compile_w3c("REFERER").unwrap();
        assert_eq!(
            fields(&p, "http://example.com/a ---> /b.html"),
            some(&["http://example.com/a", "/b.html"])
        );
        let p = compile_w3c("AGENT").unwrap();
        assert_eq!(
            fields(&p, "Mozilla/4.08 [en] (Win98)"),
            some(&["Mozilla/4.08 [en] (Win98)"])
        );
        let p = compile_w3c("IIS").unwrap();
        assert_eq!(p.columns().len(), 15);
        let f = fields(
            &p,
            "192.168.114.201, -, 03/20/01, 7:55:20, W3SVC2, SALES1, 172.21.13.45, 4502, 163, 3223, 200, 0, GET, /DeptLogo.gif, -,",
        )
        .unwrap();
        assert_eq!(f[0].as_deref(), Some("192.168.114.201"));
        assert_eq!(f[13].as_deref(), Some("/DeptLogo.gif"));
        assert_eq!(f[14].as_deref(), Some("-"));
        // A custom Apache format, with %% and a conditional specifier.
        let p = compile_w3c("%!200,304{Host}i %% %D").unwrap();
        assert_eq!(fields(&p, "h.example % 1234"), some(&["h.example", "1234"]));
        assert!(compile_w3c("%h %").is_err());
        assert!(compile_w3c("no specifiers").is_err());
        assert!(compile_w3c("%{x").is_err());
    }

    #[test]
    fn sys_log() {
        let p = compile_sys_log().unwrap();
        assert_eq!(
            fields(&p, "Oct  5 14:03:01 myhost sshd[42]: Accepted publickey"),
            some(&["Oct  5 14:03:01", "myhost sshd[42]: Accepted publickey"])
        );
        assert_eq!(
            fields(&p, "Mar 17 04:05:06"),
            Some(vec![Some("Mar 17 04:05:06".to_string()), None])
        );
        assert_eq!(fields(&p, "2024-03-17 04:05:06 x"), None);
    }
}
