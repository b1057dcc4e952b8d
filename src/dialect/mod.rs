//! The KDA SQL dialect: parsing application code into statements.
//!
//! sqlparser (through DataFusion's re-export) does all the parsing. KDA's extensions are
//! handled in three thin layers around it, so no hand-written SQL parser exists:
//! - [`tokens`] rewrites a few KDA-only token shapes into standard SQL calls of sluice
//!   functions (`STEP(x BY i)` → `STEP(x, i)`, `(a - b) SECOND` → `interval_qualify(..)`,
//!   `SELECT STREAM` → `SELECT`, `WINDOWED BY STAGGER (...)` → a marked `GROUP BY`);
//! - [`script`] drives sqlparser statement by statement for `CREATE STREAM`/`CREATE PUMP`;
//! - [`normalize`] applies KDA's identifier rules and maps KDA functions onto sluice UDFs
//!   in the AST, before DataFusion plans it; [`select_names`] gives select items that
//!   share a name (which KDA allows) names of their own.

pub mod normalize;
pub mod output_rowtime;
pub mod script;
pub mod select_names;
pub mod tokens;
pub mod unsupported;

use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect};

pub use script::{PumpStatement, Statement, StreamStatement, parse_script};

/// KDA's lexical rules: `"quoted"` identifiers keep their case, unquoted ones are
/// upper-cased (done in [`tokens`]); otherwise SQL:2008 as sqlparser's generic dialect.
#[derive(Debug, Default)]
pub struct KdaDialect {
    generic: GenericDialect,
}

impl Dialect for KdaDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        self.generic.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        self.generic.is_identifier_part(ch)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '"'
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }

    fn supports_window_clause_named_window_reference(&self) -> bool {
        true
    }

    fn supports_named_fn_args_with_eq_operator(&self) -> bool {
        false
    }

    /// `U&'\0009'` (a tab delimiter for the log parsers, spec §1.5).
    fn supports_unicode_string_literal(&self) -> bool {
        true
    }
}
