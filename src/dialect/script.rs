//! Statement-level parsing of application code: `CREATE [OR REPLACE] STREAM`,
//! `CREATE [OR REPLACE] PUMP ... AS INSERT INTO ...`, and bare queries (for the REPL and
//! for clear errors). Everything inside a statement is parsed by sqlparser itself.

use datafusion::sql::sqlparser::ast::{self, ColumnOption, ObjectName, Query, TableObject};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};

use super::{KdaDialect, normalize, tokens, unsupported};
use crate::error::{Result, SluiceError};
use crate::types::{ColumnDef, SqlType};

#[derive(Debug, Clone)]
pub struct StreamStatement {
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// `CREATE OR REPLACE`: a stream of the same name defined earlier is replaced;
    /// without it, an earlier definition makes this one an error.
    pub or_replace: bool,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub struct PumpStatement {
    pub name: String,
    pub target: String,
    /// Explicit target column list; None means positional over all columns.
    pub columns: Option<Vec<String>>,
    pub query: Box<Query>,
    /// `CREATE OR REPLACE`, as for a stream.
    pub or_replace: bool,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub enum Statement {
    CreateStream(StreamStatement),
    CreatePump(PumpStatement),
    /// A query outside a pump (the REPL runs these; an application may not).
    Query {
        query: Box<Query>,
        location: Location,
    },
}

/// Parses a whole application script.
pub fn parse_script(sql: &str) -> Result<Vec<Statement>> {
    let dialect = KdaDialect::default();
    let sql = lone_carriage_returns_as_newlines(sql);
    let raw = Tokenizer::new(&dialect, &sql)
        .tokenize_with_location()
        .map_err(|e| SluiceError::Sql {
            line: e.location.line,
            column: e.location.column,
            message: e.message.clone(),
        })?;
    let toks = tokens::rewrite(raw);
    let all_tokens = toks.clone();
    // An error at the end of input has no token of its own: point after the last one.
    let end = toks
        .last()
        .map(|t| t.span.end)
        .unwrap_or(Location { line: 1, column: 1 });
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(toks);
    let mut statements = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        if parser.peek_token().token == Token::EOF {
            break;
        }
        let location = parser.peek_token().span.start;
        let start = parser.index();
        let statement = parse_statement(&mut parser, location).map_err(|e| {
            // Name a KDA construct that sluice cannot parse yet, rather than a syntax error.
            let upto = (parser.index() + 4).min(all_tokens.len());
            match unsupported::explain_parse_failure(&all_tokens[start.min(upto)..upto]) {
                Some((at, feature)) => SluiceError::Unsupported {
                    line: at.line,
                    column: at.column,
                    feature,
                },
                None => sql_error(&parser, e, end),
            }
        })?;
        statements.push(statement);
        let next = parser.peek_token();
        if !matches!(next.token, Token::SemiColon | Token::EOF) {
            let upto = (parser.index() + 4).min(all_tokens.len());
            if let Some((at, feature)) = unsupported::explain_parse_failure(&all_tokens[start.min(upto)..upto]) {
                return Err(SluiceError::Unsupported {
                    line: at.line,
                    column: at.column,
                    feature,
                });
            }
            return Err(sql_error(
                &parser,
                ParserError::ParserError(format!("Expected: ; or end of statement, found: {}", next.token)),
                end,
            ));
        }
    }
    Ok(statements)
}

fn parse_statement(parser: &mut Parser, location: Location) -> Result<Statement, ParserError> {
    if parser.parse_keyword(Keyword::CREATE) {
        let or_replace = parser.parse_keywords(&[Keyword::OR, Keyword::REPLACE]);
        let next = parser.next_token();
        match &next.token {
            Token::Word(w) if w.value == "STREAM" => return parse_create_stream(parser, or_replace, location),
            Token::Word(w) if w.value == "PUMP" => return parse_create_pump(parser, or_replace, location),
            Token::Word(w) if w.value == "FUNCTION" => {
                return Err(ParserError::ParserError(format!(
                    "unsupported: CREATE FUNCTION (SQL-bodied functions are not supported by sluice){}",
                    next.span.start
                )));
            }
            _ => return parser.expected("STREAM or PUMP after CREATE [OR REPLACE]", next),
        }
    }
    let statement = parser.parse_statement()?;
    match statement {
        ast::Statement::Query(query) => Ok(Statement::Query { query, location }),
        ast::Statement::Insert(_) => Err(ParserError::ParserError(format!(
            "INSERT is only allowed inside a pump: CREATE OR REPLACE PUMP name AS INSERT INTO ...{location}"
        ))),
        other => Err(ParserError::ParserError(format!(
            "Expected: CREATE STREAM, CREATE PUMP or a query, found statement: {}{location}",
            first_words(&other.to_string())
        ))),
    }
}

/// Old Mac line endings (CR alone) end lines too. The tokenizer ends a `--` comment only
/// at LF, so a script saved that way would otherwise be one long comment after its first
/// `--`, and every line number would be 1.
fn lone_carriage_returns_as_newlines(sql: &str) -> std::borrow::Cow<'_, str> {
    if !sql.contains('\r') {
        return std::borrow::Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() != Some(&'\n') {
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn parse_create_stream(parser: &mut Parser, or_replace: bool, location: Location) -> Result<Statement, ParserError> {
    let name = object_name(&parser.parse_object_name(false)?);
    let (defs, _constraints) = parser.parse_columns()?;
    if defs.is_empty() {
        return parser.expected("a column list for the stream", parser.peek_token());
    }
    let mut columns = Vec::with_capacity(defs.len());
    for def in defs {
        let sql_type = SqlType::parse(&def.data_type.to_string())
            .map_err(|e| ParserError::ParserError(format!("{e}{location}")))?;
        let not_null = def.options.iter().any(|o| matches!(o.option, ColumnOption::NotNull));
        columns.push(ColumnDef {
            name: def.name.value.clone(),
            sql_type,
            not_null,
        });
    }
    skip_description(parser)?;
    Ok(Statement::CreateStream(StreamStatement {
        name,
        columns,
        or_replace,
        location,
    }))
}

fn parse_create_pump(parser: &mut Parser, or_replace: bool, location: Location) -> Result<Statement, ParserError> {
    let name = parser.parse_identifier()?.value;
    skip_description(parser)?;
    parser.expect_keyword(Keyword::AS)?;
    let at = parser.peek_token();
    let statement = parser.parse_statement()?;
    let ast::Statement::Insert(insert) = statement else {
        return parser.expected("INSERT INTO after CREATE PUMP ... AS", at);
    };
    let target = match &insert.table {
        TableObject::TableName(n) => object_name(n),
        _ => return parser.expected("a stream name after INSERT INTO", at),
    };
    let columns = if insert.columns.is_empty() {
        None
    } else {
        Some(insert.columns.iter().map(object_name).collect())
    };
    let Some(query) = insert.source else {
        return parser.expected("a SELECT STREAM query in the pump", at);
    };
    Ok(Statement::CreatePump(PumpStatement {
        name,
        target,
        columns,
        query,
        or_replace,
        location,
    }))
}

/// `DESCRIPTION 'text'` (documented on CREATE STREAM/PUMP) carries no semantics.
fn skip_description(parser: &mut Parser) -> Result<(), ParserError> {
    if matches!(&parser.peek_token().token, Token::Word(w) if w.value == "DESCRIPTION") {
        parser.next_token();
        parser.parse_literal_string()?;
    }
    Ok(())
}

/// The stored name of a (possibly qualified) object: its last part, exactly.
pub fn object_name(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.clone())
        .unwrap_or_else(|| name.to_string())
}

/// Turns a sqlparser error into a positioned [`SluiceError::Sql`]. sqlparser appends
/// " at Line: L, Column: C" to its messages; that position wins over the parser's
/// current token when present.
fn sql_error(parser: &Parser, e: ParserError, end: Location) -> SluiceError {
    let message = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => "statement nested too deeply".to_string(),
    };
    let mut here = parser.peek_token().span.start;
    if here.line == 0 {
        here = end;
    }
    let (message, line, column) =
        split_location(&message)
            .filter(|(_, line, _)| *line > 0)
            .unwrap_or((message.clone(), here.line, here.column));
    if let Some(feature) = message.strip_prefix("unsupported: ") {
        return SluiceError::Unsupported {
            line,
            column,
            feature: feature.to_string(),
        };
    }
    SluiceError::Sql { line, column, message }
}

pub(crate) fn split_location(message: &str) -> Option<(String, u64, u64)> {
    let at = message.rfind(" at Line: ")?;
    let rest = &message[at + " at Line: ".len()..];
    let (line, col) = rest.split_once(", Column: ")?;
    let col: String = col.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((message[..at].to_string(), line.trim().parse().ok()?, col.parse().ok()?))
}

/// Parses a single query (REPL, tests) with the same rewrites and normalisation.
pub fn parse_query(sql: &str) -> Result<Box<Query>> {
    let statements = parse_script(sql)?;
    match statements.into_iter().next() {
        Some(Statement::Query { mut query, .. }) => {
            normalize::normalize_query(&mut query);
            Ok(query)
        }
        _ => Err(SluiceError::Sql {
            line: 1,
            column: 1,
            message: "Expected: a query".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_streams_and_pumps() {
        let sql = r#"
            CREATE OR REPLACE STREAM "DEST" (ticker VARCHAR(4), "price" REAL NOT NULL) DESCRIPTION 'x';
            CREATE OR REPLACE PUMP "P1" AS INSERT INTO "DEST" (ticker) SELECT STREAM ticker FROM "SRC";
        "#;
        let st = parse_script(sql).unwrap();
        let Statement::CreateStream(s) = &st[0] else { panic!() };
        assert_eq!(s.name, "DEST");
        assert_eq!(s.columns[0].name, "TICKER");
        assert_eq!(s.columns[1].name, "price");
        assert!(s.columns[1].not_null);
        let Statement::CreatePump(p) = &st[1] else { panic!() };
        assert_eq!((p.name.as_str(), p.target.as_str()), ("P1", "DEST"));
        assert_eq!(p.columns.as_deref(), Some(&["TICKER".to_string()][..]));
    }

    #[test]
    fn reports_line_and_column() {
        let err = parse_script(
            "CREATE STREAM s (a INTEGER);\nCREATE PUMP p AS INSERT INTO s\n  SELECT STREAM a FROM s WHERE",
        )
        .unwrap_err();
        match err {
            SluiceError::Sql { line, column, message } => {
                assert_eq!(line, 3, "{message}");
                assert!(column > 1, "{message}");
                assert!(message.contains("Expected"), "{message}");
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn a_script_with_cr_line_endings_is_read_line_by_line() {
        let sql = "-- the first line is a comment\rCREATE OR REPLACE STREAM S (A INTEGER);\r\
                   CREATE OR REPLACE PUMP P AS INSERT INTO S SELECT STREAM A FROM S WHERE;\r";
        match parse_script(sql).unwrap_err() {
            SluiceError::Sql { line, message, .. } => assert_eq!(line, 3, "{message}"),
            other => panic!("unexpected {other}"),
        }
        let fixed = sql.replace(" WHERE;", ";");
        assert_eq!(parse_script(&fixed).unwrap().len(), 2);
    }

    #[test]
    fn or_replace_is_kept_on_streams_and_pumps() {
        let st = parse_script(
            "CREATE STREAM S (A INTEGER); CREATE OR REPLACE STREAM T (A INTEGER);\
             CREATE PUMP P AS INSERT INTO T SELECT STREAM A FROM S;\
             CREATE OR REPLACE PUMP Q AS INSERT INTO T SELECT STREAM A FROM S;",
        )
        .unwrap();
        let replace: Vec<bool> = st
            .iter()
            .map(|s| match s {
                Statement::CreateStream(s) => s.or_replace,
                Statement::CreatePump(p) => p.or_replace,
                Statement::Query { .. } => panic!("no query here"),
            })
            .collect();
        assert_eq!(replace, [false, true, false, true]);
    }

    #[test]
    fn create_function_is_named_unsupported() {
        let err = parse_script("CREATE FUNCTION f(p TIMESTAMP) RETURNS TIMESTAMP RETURN p;").unwrap_err();
        assert!(matches!(err, SluiceError::Unsupported { .. }), "{err}");
    }
}
