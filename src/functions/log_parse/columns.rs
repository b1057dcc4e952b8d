//! VARIABLE_COLUMN_LOG_PARSE (delimited fields) and FIXED_COLUMN_LOG_PARSE (fixed-width
//! fields).

use std::borrow::Cow;

use super::LineParser;
use super::pattern::REGEX_FIELD_TYPE;
use super::spec::{OutColumn, SpecRules, parse_columns};

/// The columns argument of VARIABLE_COLUMN_LOG_PARSE.
pub(crate) enum ColumnsArg<'a> {
    Count(i64),
    List(&'a str),
}

/// VARIABLE_COLUMN_LOG_PARSE(line, columns, delimiter [, escape, quote]).
#[derive(Debug)]
pub(crate) struct VariableColumnParser {
    columns: Vec<OutColumn>,
    delimiter: String,
    escape: Option<char>,
    /// Begin and end quote characters.
    quote: Option<(char, char)>,
}

/// Fields are split at every occurrence of `delimiter` (a character or a string).
/// * `escape` (one character, optional): the character after it is taken literally (an
///   embedded delimiter, quote or escape) and the escape itself is dropped: with `\`,
///   `a\,b` is one field `a,b`.
/// * `quote` (one or two characters, optional: begin and end quote, the same when one is
///   given): text between the quotes is taken literally, without the quotes; inside
///   quotes that begin and end with the same character, a doubled quote is one quote.
///   An unterminated quote runs to the end of the line.
/// * `columns`: a count N (fields `COLUMN1..N`, VARCHAR(1024) like the other parsers'
///   untyped fields) or a column list `'NAME TYPE type [NOT NULL], ...'`.
/// * Decision A22: missing trailing fields are NULL, surplus fields are ignored.
///   An empty field is `''` for CHAR/VARCHAR columns and NULL for other types.
pub(crate) fn compile_variable(
    columns: ColumnsArg,
    delimiter: &str,
    escape: Option<&str>,
    quote: Option<&str>,
) -> Result<VariableColumnParser, String> {
    let columns = match columns {
        ColumnsArg::Count(n) if (1..=10_000).contains(&n) => (1..=n as usize)
            .map(|k| OutColumn::numbered(k, REGEX_FIELD_TYPE))
            .collect(),
        ColumnsArg::Count(n) => return Err(format!("the number of columns must be 1 to 10000, got {n}")),
        ColumnsArg::List(spec) => parse_columns(
            spec,
            SpecRules {
                type_keyword: true,
                positions: false,
                default_varchar: None,
            },
        )?,
    };
    if delimiter.is_empty() {
        return Err("the delimiter must not be empty".to_string());
    }
    let single = |s: &str, what: &str| -> Result<char, String> {
        let mut it = s.chars();
        match (it.next(), it.next()) {
            (Some(c), None) => Ok(c),
            _ => Err(format!("the {what} must be one character, got '{s}'")),
        }
    };
    let escape = match escape {
        None | Some("") => None,
        Some(e) => Some(single(e, "escape")?),
    };
    let quote = match quote {
        None | Some("") => None,
        Some(q) => {
            let chars: Vec<char> = q.chars().collect();
            match chars.as_slice() {
                [c] => Some((*c, *c)),
                [b, e] => Some((*b, *e)),
                _ => return Err(format!("the quote must be one or two characters, got '{q}'")),
            }
        }
    };
    Ok(VariableColumnParser {
        columns,
        delimiter: delimiter.to_string(),
        escape,
        quote,
    })
}

impl VariableColumnParser {
    fn is_special(&self, c: char) -> bool {
        Some(c) == self.escape || self.quote.is_some_and(|(b, e)| c == b || c == e)
    }
}

impl LineParser for VariableColumnParser {
    fn columns(&self) -> &[OutColumn] {
        &self.columns
    }

    fn parse<'a>(&self, line: &'a str, fields: &mut Vec<Option<Cow<'a, str>>>) -> bool {
        let wanted = self.columns.len();
        // Fast path: nothing to unescape or unquote, fields are slices of the line.
        if !line.chars().any(|c| self.is_special(c)) {
            fields.extend(
                line.split(self.delimiter.as_str())
                    .take(wanted)
                    .map(|f| Some(Cow::Borrowed(f))),
            );
            return true;
        }
        let mut cur = String::new();
        let mut in_quote = false;
        let mut rest = line;
        while let Some(c) = rest.chars().next() {
            if fields.len() == wanted {
                break;
            }
            let after = &rest[c.len_utf8()..];
            if Some(c) == self.escape {
                match after.chars().next() {
                    Some(n) => {
                        cur.push(n);
                        rest = &after[n.len_utf8()..];
                    }
                    None => {
                        cur.push(c);
                        rest = after;
                    }
                }
                continue;
            }
            if let Some((begin, end)) = self.quote {
                if in_quote {
                    if c == end {
                        if begin == end && after.starts_with(end) {
                            cur.push(end);
                            rest = &after[end.len_utf8()..];
                        } else {
                            in_quote = false;
                            rest = after;
                        }
                    } else {
                        cur.push(c);
                        rest = after;
                    }
                    continue;
                }
                if c == begin {
                    in_quote = true;
                    rest = after;
                    continue;
                }
            }
            if rest.starts_with(self.delimiter.as_str()) {
                fields.push(Some(Cow::Owned(std::mem::take(&mut cur))));
                rest = &rest[self.delimiter.len()..];
                continue;
            }
            cur.push(c);
            rest = after;
        }
        if fields.len() < wanted {
            fields.push(Some(Cow::Owned(cur)));
        }
        true
    }
}

/// FIXED_COLUMN_LOG_PARSE(line, 'NAME TYPE type [NOT NULL] [''format''] START n [FOR len], ...').
#[derive(Debug)]
pub(crate) struct FixedColumnParser {
    columns: Vec<OutColumn>,
}

/// Each column takes the characters `[START, START + len)` (0-based, in characters);
/// without FOR it runs to the end of the line. A line shorter than START gives NULL for
/// that column; a field cut short by the end of the line keeps what is there. Values of
/// non-text types are trimmed before conversion (a blank field is NULL); text keeps its
/// padding. DATE/TIME/TIMESTAMP columns may carry a SimpleDateFormat pattern, written
/// in quotes (doubled inside the SQL literal): `"ts" TYPE TIMESTAMP ''dd/MMM/yyyy:HH:mm:ss'' START 0 FOR 20`.
pub(crate) fn compile_fixed(spec: &str) -> Result<FixedColumnParser, String> {
    let columns = parse_columns(
        spec,
        SpecRules {
            type_keyword: true,
            positions: true,
            default_varchar: None,
        },
    )?;
    Ok(FixedColumnParser { columns })
}

impl LineParser for FixedColumnParser {
    fn columns(&self) -> &[OutColumn] {
        &self.columns
    }

    fn parse<'a>(&self, line: &'a str, fields: &mut Vec<Option<Cow<'a, str>>>) -> bool {
        // Byte offset of every character, plus the end.
        let offsets: Option<Vec<usize>> = (!line.is_ascii()).then(|| {
            line.char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(line.len()))
                .collect()
        });
        let chars = offsets.as_ref().map_or(line.len(), |o| o.len() - 1);
        let byte = |k: usize| offsets.as_ref().map_or(k, |o| o[k]);
        for c in &self.columns {
            let start = c.start.unwrap_or(0);
            if start >= chars {
                fields.push(None);
                continue;
            }
            let end = c.len.map_or(chars, |l| start.saturating_add(l).min(chars));
            fields.push(Some(Cow::Borrowed(&line[byte(start)..byte(end)])));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(p: &dyn LineParser, line: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        assert!(p.parse(line, &mut out));
        out.into_iter().map(|f| f.map(|s| s.into_owned())).collect()
    }

    fn s(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|x| x.map(str::to_string)).collect()
    }

    #[test]
    fn variable_columns_documented_examples() {
        // dev/examples-transforming-strings-variablecolumnlogparse
        let p = compile_variable(
            ColumnsArg::List("COL_1 TYPE VARCHAR(16), COL_2 TYPE VARCHAR(16), COL_3 TYPE VARCHAR(16)"),
            ",",
            None,
            None,
        )
        .unwrap();
        assert_eq!(split(&p, "x,y,z"), s(&[Some("x"), Some("y"), Some("z")]));
        // ref: with escape '\', "a,b" is two fields and "a\,b" one field "a,b".
        let p = compile_variable(ColumnsArg::Count(2), ",", Some("\\"), None).unwrap();
        assert_eq!(split(&p, "a,b"), s(&[Some("a"), Some("b")]));
        assert_eq!(split(&p, "a\\,b"), s(&[Some("a,b")]));
        // Tab delimiter (u&'\0009').
        let p = compile_variable(ColumnsArg::Count(3), "\t", None, None).unwrap();
        assert_eq!(split(&p, "1\t2\t3"), s(&[Some("1"), Some("2"), Some("3")]));
    }

    #[test]
    fn variable_columns_missing_surplus_and_strings() {
        let p = compile_variable(ColumnsArg::Count(3), "||", None, None).unwrap();
        assert_eq!(split(&p, "a||b"), s(&[Some("a"), Some("b")]));
        assert_eq!(split(&p, "a||b||c||d"), s(&[Some("a"), Some("b"), Some("c")]));
        assert_eq!(split(&p, "a|b||||c"), s(&[Some("a|b"), Some(""), Some("c")]));
        assert_eq!(split(&p, ""), s(&[Some("")]));
    }

    #[test]
    fn variable_columns_quotes() {
        let p = compile_variable(ColumnsArg::Count(3), ",", None, Some("\"")).unwrap();
        assert_eq!(split(&p, r#"a,"b,c",d"#), s(&[Some("a"), Some("b,c"), Some("d")]));
        assert_eq!(split(&p, r#""say ""hi""",x"#), s(&[Some(r#"say "hi""#), Some("x")]));
        assert_eq!(split(&p, r#"a,"open,end"#), s(&[Some("a"), Some("open,end")]));
        let p = compile_variable(ColumnsArg::Count(2), " ", Some("\\"), Some("[]")).unwrap();
        assert_eq!(
            split(&p, r"[10/Oct/2000:13:55:36 -0700] x\ y"),
            s(&[Some("10/Oct/2000:13:55:36 -0700"), Some("x y")])
        );
    }

    #[test]
    fn variable_columns_bad_arguments() {
        assert!(compile_variable(ColumnsArg::Count(0), ",", None, None).is_err());
        assert!(compile_variable(ColumnsArg::Count(2), "", None, None).is_err());
        assert!(compile_variable(ColumnsArg::Count(2), ",", Some("ab"), None).is_err());
        assert!(compile_variable(ColumnsArg::Count(2), ",", None, Some("abc")).is_err());
        assert!(compile_variable(ColumnsArg::List("A VARCHAR(2)"), ",", None, None).is_err());
    }

    #[test]
    fn fixed_columns() {
        let p = compile_fixed(
            "\"ts\" TYPE TIMESTAMP 'dd/MMM/yyyy:HH:mm:ss' START 0 FOR 20, CODE TYPE INTEGER START 21 FOR 3, \
             MSG TYPE VARCHAR(100) START 25",
        )
        .unwrap();
        assert_eq!(
            split(&p, "10/Oct/2000:13:55:36 404 not found"),
            s(&[Some("10/Oct/2000:13:55:36"), Some("404"), Some("not found")])
        );
        assert_eq!(
            split(&p, "10/Oct/2000:13:55:36 40"),
            s(&[Some("10/Oct/2000:13:55:36"), Some("40"), None])
        );
        let p = compile_fixed("A TYPE VARCHAR(3) START 1 FOR 2, B TYPE VARCHAR(3) START 3").unwrap();
        assert_eq!(split(&p, "äöüß"), s(&[Some("öü"), Some("ß")]));
        assert!(compile_fixed("A TYPE VARCHAR(3) FOR 2").is_err());
    }
}
