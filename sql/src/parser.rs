//! Weir's SQL dialect: Flink SQL's statements over sqlparser's tokens.
//!
//! A script is tokenized once and split at top-level `;`. Statements that
//! sqlparser lacks or spells differently (`CREATE TABLE` with computed
//! columns, `WATERMARK FOR`, `ROW<…>` types and `WITH` options; `SET 'k' = 'v'`;
//! `RESET`; `SHOW TABLES`; `DESCRIBE`) are parsed here with sqlparser's
//! parser primitives; queries and `INSERT` are kept as tokens, because their
//! window table functions are rewritten before sqlparser parses them.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::error::{Result, SqlError};
use weir_engine::connectors::{METADATA_KEY, METADATA_VIRTUAL};

/// The dialect used to tokenize and parse Weir SQL.
pub fn dialect() -> GenericDialect {
    GenericDialect {}
}

/// One statement of a script, as parsed by Weir.
#[derive(Debug, Clone)]
pub enum FlinkStatement {
    /// `CREATE TABLE`.
    CreateTable(CreateTable),
    /// `CREATE [TEMPORARY] VIEW name AS query`.
    CreateView {
        /// View name.
        name: String,
        /// Tokens of the query.
        query: Vec<TokenWithSpan>,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
    },
    /// `DROP TABLE|VIEW [IF EXISTS] name`.
    Drop {
        /// Name.
        name: String,
        /// `IF EXISTS`.
        if_exists: bool,
        /// A view rather than a table.
        view: bool,
    },
    /// `SHOW TABLES`.
    ShowTables,
    /// `SHOW [USER] FUNCTIONS`: built-in and registered functions, or only
    /// the registered ones.
    ShowFunctions {
        /// `USER`: only functions registered by the user.
        user: bool,
    },
    /// `SHOW CREATE TABLE|VIEW name`.
    ShowCreate {
        /// The table or view.
        name: String,
        /// `VIEW` rather than `TABLE`.
        view: bool,
    },
    /// `SHOW CATALOGS`.
    ShowCatalogs,
    /// `SHOW DATABASES`.
    ShowDatabases,
    /// `SHOW CURRENT CATALOG`.
    ShowCurrentCatalog,
    /// `SHOW CURRENT DATABASE`.
    ShowCurrentDatabase,
    /// `SHOW COLUMNS FROM|IN t [[NOT] LIKE 'pattern']`.
    ShowColumns {
        /// The table or view.
        name: String,
        /// The `LIKE` pattern and whether it is negated (`NOT LIKE`).
        like: Option<(String, bool)>,
    },
    /// `USE [CATALOG] name`.
    Use {
        /// The catalog or database.
        name: String,
        /// `USE CATALOG` rather than a database.
        catalog: bool,
    },
    /// `SHOW VIEWS`.
    ShowViews,
    /// `SHOW JOBS`: the jobs this session started, with their state size.
    ShowJobs,
    /// `SHOW CHECKPOINTS [FOR JOB '<id>']`: checkpoints of the session's jobs.
    ShowCheckpoints(Option<String>),
    /// `DESCRIBE name`.
    Describe(String),
    /// `SET` (list) or `SET 'key' = 'value'`.
    Set(Option<(String, String)>),
    /// `RESET` (all) or `RESET 'key'`.
    Reset(Option<String>),
    /// `EXPLAIN <statement>`.
    Explain(Box<FlinkStatement>),
    /// `EXPLAIN RESTORE FROM '<path>' <statement>`: what a restore of the
    /// snapshot into the statement's job would do, operator by operator.
    ExplainRestore {
        /// The savepoint or checkpoint.
        path: String,
        /// The `INSERT` to restore into.
        statement: Box<FlinkStatement>,
    },
    /// `STOP JOB '<id>' [WITH SAVEPOINT] [WITH DRAIN]`.
    StopJob {
        /// The job's id.
        id: String,
        /// Take a savepoint before stopping (else the job is cancelled).
        savepoint: bool,
        /// Fire every window first (implies a savepoint).
        drain: bool,
    },
    /// `TRIGGER SAVEPOINT '<id>' [TO '<dir>']`: a savepoint of a running job.
    TriggerSavepoint {
        /// The job's id.
        id: String,
        /// The directory (default: `execution.checkpointing.savepoint-dir`).
        target: Option<String>,
    },
    /// `DISPOSE SAVEPOINT '<path>'`: deletes a savepoint.
    DisposeSavepoint(String),
    /// `INSERT INTO …` (tokens, parsed after window rewriting).
    Insert(Vec<TokenWithSpan>),
    /// A query (tokens, parsed after window rewriting).
    Query(Vec<TokenWithSpan>),
    /// `EXECUTE STATEMENT SET BEGIN INSERT …; … END` or `BEGIN STATEMENT
    /// SET; INSERT …; … END`: the INSERTs' tokens, run as one job.
    StatementSet(Vec<Vec<TokenWithSpan>>),
}

/// A parsed `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct CreateTable {
    /// Table name.
    pub name: String,
    /// `IF NOT EXISTS`.
    pub if_not_exists: bool,
    /// Physical columns (`Field`) and computed ones (name, expression SQL).
    pub columns: Vec<ColumnSpec>,
    /// `WATERMARK FOR column AS expression`.
    pub watermark: Option<(String, String)>,
    /// `PRIMARY KEY (…) NOT ENFORCED`.
    pub primary_key: Vec<String>,
    /// `WITH (…)`.
    pub options: BTreeMap<String, String>,
}

/// A column of `CREATE TABLE`.
#[derive(Debug, Clone)]
pub enum ColumnSpec {
    /// `name TYPE [NOT NULL]`.
    Physical(Field),
    /// `name AS expr`.
    Computed(String, String),
}

/// Tokenizes `sql` and splits it into statements (empty ones dropped).
pub fn split_statements(sql: &str) -> Result<Vec<Vec<TokenWithSpan>>> {
    Ok(group_statement_sets(split_raw(sql)?).0)
}

/// Splits at each `;` outside parentheses.
fn split_raw(sql: &str) -> Result<Vec<Vec<TokenWithSpan>>> {
    let d = dialect();
    let tokens = Tokenizer::new(&d, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::Parse(e.to_string()))?;
    let mut statements = Vec::new();
    let mut current = Vec::new();
    let mut depth = 0i32;
    for t in tokens {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::SemiColon if depth <= 0 => {
                if current.iter().any(is_significant) {
                    statements.push(std::mem::take(&mut current));
                } else {
                    current.clear();
                }
                depth = 0;
                continue;
            }
            _ => {}
        }
        current.push(t);
    }
    if current.iter().any(is_significant) {
        statements.push(current);
    }
    Ok(statements)
}

/// The first `n` words of a statement, upper-cased (`None` for a token that
/// is not a bare word).
fn leading_words(tokens: &[TokenWithSpan], n: usize) -> Vec<Option<String>> {
    tokens
        .iter()
        .filter(|t| is_significant(t))
        .take(n)
        .map(|t| word_upper(&t.token))
        .collect()
}

fn words(list: &[&str]) -> Vec<Option<String>> {
    list.iter().map(|w| Some(w.to_string())).collect()
}

/// Whether a statement opens a statement set.
fn opens_statement_set(tokens: &[TokenWithSpan]) -> bool {
    let w = leading_words(tokens, 4);
    w == words(&["EXECUTE", "STATEMENT", "SET", "BEGIN"])
        || w[..w.len().min(3)] == words(&["BEGIN", "STATEMENT", "SET"])
}

/// Joins each statement set (from its opening to its `END`) into one unit,
/// its statements separated by `;` tokens; `true` when the last set is not
/// closed yet.
fn group_statement_sets(statements: Vec<Vec<TokenWithSpan>>) -> (Vec<Vec<TokenWithSpan>>, bool) {
    let mut out = Vec::new();
    let mut open: Option<Vec<TokenWithSpan>> = None;
    for statement in statements {
        match open.as_mut() {
            Some(set) => {
                let end = leading_words(&statement, 2) == words(&["END"]);
                set.push(TokenWithSpan::wrap(Token::SemiColon));
                set.extend(statement);
                if end {
                    out.extend(open.take());
                }
            }
            // `EXECUTE STATEMENT SET BEGIN END`: opened and closed at once.
            None if leading_words(&statement, 6)
                == words(&["EXECUTE", "STATEMENT", "SET", "BEGIN", "END"]) =>
            {
                out.push(statement)
            }
            None if opens_statement_set(&statement) => open = Some(statement),
            None => out.push(statement),
        }
    }
    let unclosed = open.is_some();
    // An unclosed set is still a unit: parsing it says what is missing.
    out.extend(open);
    (out, unclosed)
}

/// The INSERTs of a statement set's unit (see [`group_statement_sets`]).
fn parse_statement_set(tokens: &[TokenWithSpan]) -> Result<FlinkStatement> {
    let opening = tokens
        .iter()
        .find(|t| is_significant(t))
        .cloned()
        .unwrap_or_else(TokenWithSpan::new_eof);
    let header = if word_upper(&opening.token).as_deref() == Some("EXECUTE") {
        4
    } else {
        3
    };
    // The body: everything after the header's words.
    let mut body: Vec<TokenWithSpan> = Vec::new();
    let mut seen = 0;
    for t in tokens.iter() {
        if seen < header {
            if is_significant(t) {
                seen += 1;
            }
            continue;
        }
        body.push(t.clone());
    }
    let mut members: Vec<Vec<TokenWithSpan>> = vec![Vec::new()];
    for t in body {
        if t.token == Token::SemiColon {
            members.push(Vec::new());
        } else if let Some(last) = members.last_mut() {
            last.push(t);
        }
    }
    members.retain(|m| m.iter().any(is_significant));
    let closed = members
        .last()
        .is_some_and(|m| leading_words(m, 2) == words(&["END"]));
    if !closed {
        return Err(error_at(
            &opening,
            "this statement set has no END; (close it after its last INSERT)",
        ));
    }
    members.pop();
    if members.is_empty() {
        return Err(error_at(
            &opening,
            "the statement set has no INSERT statement",
        ));
    }
    for m in &members {
        let first = m
            .iter()
            .find(|t| is_significant(t))
            .cloned()
            .unwrap_or_else(TokenWithSpan::new_eof);
        if keyword(&first.token) != Some(Keyword::INSERT) {
            return Err(error_at(
                &first,
                format!(
                    "only INSERT statements can be in a statement set, found {}",
                    first.token
                ),
            ));
        }
    }
    Ok(FlinkStatement::StatementSet(members))
}

/// Whether every statement of the text is closed by `;`, and every
/// statement set by `END;` (for the shell).
pub fn is_complete(sql: &str) -> bool {
    let d = dialect();
    match Tokenizer::new(&d, sql).tokenize() {
        Ok(tokens) => {
            let last = tokens
                .iter()
                .rev()
                .find(|t| !matches!(t, Token::Whitespace(_)));
            matches!(last, None | Some(Token::SemiColon))
                && !split_raw(sql).is_ok_and(|s| group_statement_sets(s).1)
        }
        // An unterminated string or comment: keep reading.
        Err(_) => false,
    }
}

fn is_significant(t: &TokenWithSpan) -> bool {
    !matches!(t.token, Token::Whitespace(_) | Token::EOF)
}

fn keyword(t: &Token) -> Option<Keyword> {
    match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    }
}

fn word_upper(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_uppercase()),
        _ => None,
    }
}

/// Position of a token, as "line L, column C".
pub fn position(t: &TokenWithSpan) -> String {
    format!("line {}, column {}", t.span.start.line, t.span.start.column)
}

fn error_at(t: &TokenWithSpan, message: impl std::fmt::Display) -> SqlError {
    if matches!(t.token, Token::EOF) {
        SqlError::Parse(format!("{message} at end of statement"))
    } else {
        SqlError::Parse(format!("{message} at {}", position(t)))
    }
}

/// Parses one statement's tokens.
pub fn parse_statement(tokens: Vec<TokenWithSpan>) -> Result<FlinkStatement> {
    let significant: Vec<&TokenWithSpan> = tokens.iter().filter(|t| is_significant(t)).collect();
    let first = significant
        .first()
        .map(|t| t.token.clone())
        .unwrap_or(Token::EOF);
    let kw = keyword(&first);
    let d = dialect();
    let mut p = Parser::new(&d).with_tokens_with_locations(tokens.clone());
    match kw {
        Some(Keyword::CREATE) => {
            p.expect_keyword(Keyword::CREATE)?;
            let _temporary = p.parse_keyword(Keyword::TEMPORARY);
            if p.parse_keyword(Keyword::TABLE) {
                Ok(FlinkStatement::CreateTable(parse_create_table(&mut p)?))
            } else if p.parse_keyword(Keyword::VIEW) {
                let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
                let name = p.parse_object_name(false)?.to_string();
                if p.peek_token().token == Token::LParen {
                    return Err(error_at(&p.peek_token(), "column lists in CREATE VIEW are not supported; alias the columns in the query"));
                }
                p.expect_keyword(Keyword::AS)?;
                let rest = remaining_tokens(&tokens, &p);
                Ok(FlinkStatement::CreateView {
                    name,
                    query: rest,
                    if_not_exists,
                })
            } else {
                let t = p.peek_token();
                Err(error_at(
                    &t,
                    format!("expected TABLE or VIEW after CREATE, found {}", t.token),
                ))
            }
        }
        Some(Keyword::DROP) => {
            p.expect_keyword(Keyword::DROP)?;
            let _temporary = p.parse_keyword(Keyword::TEMPORARY);
            let view = if p.parse_keyword(Keyword::VIEW) {
                true
            } else if p.parse_keyword(Keyword::TABLE) {
                false
            } else {
                let t = p.peek_token();
                return Err(error_at(
                    &t,
                    format!("expected TABLE or VIEW after DROP, found {}", t.token),
                ));
            };
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let name = p.parse_object_name(false)?.to_string();
            expect_end(&mut p)?;
            Ok(FlinkStatement::Drop {
                name,
                if_exists,
                view,
            })
        }
        Some(Keyword::SHOW) => {
            p.expect_keyword(Keyword::SHOW)?;
            let what = p.next_token();
            let stmt = match word_upper(&what.token).as_deref() {
                Some("TABLES") => FlinkStatement::ShowTables,
                Some("FUNCTIONS") => FlinkStatement::ShowFunctions { user: false },
                Some("USER") => {
                    expect_word(&mut p, "FUNCTIONS")?;
                    FlinkStatement::ShowFunctions { user: true }
                }
                Some("CATALOGS") => FlinkStatement::ShowCatalogs,
                Some("DATABASES") => FlinkStatement::ShowDatabases,
                Some("CURRENT") => {
                    let which = p.next_token();
                    match word_upper(&which.token).as_deref() {
                        Some("CATALOG") => FlinkStatement::ShowCurrentCatalog,
                        Some("DATABASE") => FlinkStatement::ShowCurrentDatabase,
                        _ => {
                            return Err(error_at(
                                &which,
                                format!(
                                    "expected CATALOG or DATABASE after SHOW CURRENT, found {}",
                                    which.token
                                ),
                            ))
                        }
                    }
                }
                Some("CREATE") => {
                    let what = p.next_token();
                    let view = match word_upper(&what.token).as_deref() {
                        Some("TABLE") => false,
                        Some("VIEW") => true,
                        _ => {
                            return Err(error_at(
                                &what,
                                format!(
                                    "expected TABLE or VIEW after SHOW CREATE, found {}",
                                    what.token
                                ),
                            ))
                        }
                    };
                    let name = p.parse_object_name(false)?.to_string();
                    FlinkStatement::ShowCreate { name, view }
                }
                Some("COLUMNS") => {
                    let from = p.next_token();
                    if !matches!(word_upper(&from.token).as_deref(), Some("FROM" | "IN")) {
                        return Err(error_at(
                            &from,
                            format!("expected FROM or IN after SHOW COLUMNS, found {}", from.token),
                        ));
                    }
                    let name = p.parse_object_name(false)?.to_string();
                    let not = p.parse_keyword(Keyword::NOT);
                    let like = if p.parse_keyword(Keyword::LIKE) {
                        Some((p.parse_literal_string()?, not))
                    } else if not {
                        let t = p.peek_token();
                        return Err(error_at(&t, format!("expected LIKE after NOT, found {}", t.token)));
                    } else {
                        None
                    };
                    FlinkStatement::ShowColumns { name, like }
                }
                Some("VIEWS") => FlinkStatement::ShowViews,
                Some("JOBS") => FlinkStatement::ShowJobs,
                Some("CHECKPOINTS") => {
                    if p.parse_keyword(Keyword::FOR) {
                        let job = p.next_token();
                        if word_upper(&job.token).as_deref() != Some("JOB") {
                            return Err(error_at(
                                &job,
                                format!("expected JOB after FOR, found {}", job.token),
                            ));
                        }
                        let id = p.parse_literal_string()?;
                        FlinkStatement::ShowCheckpoints(Some(id))
                    } else {
                        FlinkStatement::ShowCheckpoints(None)
                    }
                }
                _ => {
                    return Err(error_at(
                        &what,
                        format!(
                            "expected TABLES, VIEWS, FUNCTIONS, USER FUNCTIONS, CREATE TABLE|VIEW, COLUMNS, CATALOGS, DATABASES, CURRENT CATALOG|DATABASE, JOBS or CHECKPOINTS after SHOW, found {}",
                            what.token
                        ),
                    ))
                }
            };
            expect_end(&mut p)?;
            Ok(stmt)
        }
        Some(Keyword::DESCRIBE) | Some(Keyword::DESC) => {
            p.next_token();
            let name = p.parse_object_name(false)?.to_string();
            expect_end(&mut p)?;
            Ok(FlinkStatement::Describe(name))
        }
        Some(Keyword::SET) => {
            p.expect_keyword(Keyword::SET)?;
            if p.peek_token().token == Token::EOF {
                return Ok(FlinkStatement::Set(None));
            }
            let key = parse_key(&mut p)?;
            p.expect_token(&Token::Eq)?;
            let value = parse_key(&mut p)?;
            expect_end(&mut p)?;
            Ok(FlinkStatement::Set(Some((key, value))))
        }
        _ if word_upper(&first).as_deref() == Some("RESET") => {
            p.next_token();
            if p.peek_token().token == Token::EOF {
                return Ok(FlinkStatement::Reset(None));
            }
            let key = parse_key(&mut p)?;
            expect_end(&mut p)?;
            Ok(FlinkStatement::Reset(Some(key)))
        }
        Some(Keyword::EXPLAIN) => {
            p.expect_keyword(Keyword::EXPLAIN)?;
            // Flink's `EXPLAIN PLAN FOR`.
            if word_upper(&p.peek_token().token).as_deref() == Some("PLAN") {
                p.next_token();
                p.expect_keyword(Keyword::FOR)?;
            }
            let restore = if word_upper(&p.peek_token().token).as_deref() == Some("RESTORE") {
                p.next_token();
                p.expect_keyword(Keyword::FROM)?;
                Some(p.parse_literal_string()?)
            } else {
                None
            };
            let rest = remaining_tokens(&tokens, &p);
            if matches!(
                keyword(
                    &rest
                        .iter()
                        .find(|t| is_significant(t))
                        .map(|t| t.token.clone())
                        .unwrap_or(Token::EOF)
                ),
                Some(Keyword::EXPLAIN)
            ) {
                return Err(SqlError::Parse("EXPLAIN cannot be nested".into()));
            }
            let inner = parse_statement(rest)?;
            match restore {
                Some(path) => {
                    if !matches!(inner, FlinkStatement::Insert(_)) {
                        return Err(SqlError::Parse(
                            "EXPLAIN RESTORE FROM '<path>' needs an INSERT INTO statement".into(),
                        ));
                    }
                    Ok(FlinkStatement::ExplainRestore {
                        path,
                        statement: Box::new(inner),
                    })
                }
                None => Ok(FlinkStatement::Explain(Box::new(inner))),
            }
        }
        _ if word_upper(&first).as_deref() == Some("STOP") => {
            p.next_token();
            expect_word(&mut p, "JOB")?;
            let id = p.parse_literal_string()?;
            let (mut savepoint, mut drain) = (false, false);
            while p.parse_keyword(Keyword::WITH) {
                let what = p.next_token();
                match word_upper(&what.token).as_deref() {
                    Some("SAVEPOINT") => savepoint = true,
                    Some("DRAIN") => drain = true,
                    _ => {
                        return Err(error_at(
                            &what,
                            format!(
                                "expected SAVEPOINT or DRAIN after WITH, found {}",
                                what.token
                            ),
                        ))
                    }
                }
            }
            expect_end(&mut p)?;
            Ok(FlinkStatement::StopJob {
                id,
                savepoint,
                drain,
            })
        }
        _ if word_upper(&first).as_deref() == Some("TRIGGER") => {
            p.next_token();
            expect_word(&mut p, "SAVEPOINT")?;
            let id = p.parse_literal_string()?;
            let target = if p.parse_keyword(Keyword::TO) {
                Some(p.parse_literal_string()?)
            } else {
                None
            };
            expect_end(&mut p)?;
            Ok(FlinkStatement::TriggerSavepoint { id, target })
        }
        _ if word_upper(&first).as_deref() == Some("DISPOSE") => {
            p.next_token();
            expect_word(&mut p, "SAVEPOINT")?;
            let path = p.parse_literal_string()?;
            expect_end(&mut p)?;
            Ok(FlinkStatement::DisposeSavepoint(path))
        }
        Some(Keyword::INSERT) => Ok(FlinkStatement::Insert(tokens)),
        Some(Keyword::USE) => {
            p.next_token();
            let catalog = word_upper(&p.peek_token().token).as_deref() == Some("CATALOG");
            if catalog {
                p.next_token();
            }
            let name = p.parse_object_name(false)?.to_string();
            expect_end(&mut p)?;
            Ok(FlinkStatement::Use { name, catalog })
        }
        _ if opens_statement_set(&tokens) => parse_statement_set(&tokens),
        Some(Keyword::SELECT) | Some(Keyword::WITH) | Some(Keyword::VALUES) => {
            Ok(FlinkStatement::Query(tokens))
        }
        _ if first == Token::LParen => Ok(FlinkStatement::Query(tokens)),
        _ => {
            let t = significant
                .first()
                .map(|t| (*t).clone())
                .unwrap_or_else(TokenWithSpan::new_eof);
            Err(error_at(
                &t,
                format!(
                    "unsupported statement starting with {}; Weir runs CREATE TABLE/VIEW, DROP, SHOW …, DESCRIBE, USE, SET, RESET, EXPLAIN [RESTORE FROM '<path>'], INSERT INTO, SELECT, EXECUTE STATEMENT SET, STOP JOB, TRIGGER SAVEPOINT and DISPOSE SAVEPOINT (HELP; lists them)",
                    t.token
                ),
            ))
        }
    }
}

fn remaining_tokens(tokens: &[TokenWithSpan], p: &Parser) -> Vec<TokenWithSpan> {
    tokens[p.index().min(tokens.len())..].to_vec()
}

fn expect_word(p: &mut Parser, word: &str) -> Result<()> {
    let t = p.next_token();
    if word_upper(&t.token).as_deref() != Some(word) {
        return Err(error_at(&t, format!("expected {word}, found {}", t.token)));
    }
    Ok(())
}

fn expect_end(p: &mut Parser) -> Result<()> {
    let t = p.peek_token();
    if t.token != Token::EOF {
        return Err(error_at(&t, format!("unexpected {}", t.token)));
    }
    Ok(())
}

/// A `SET`/`RESET` key or value: quoted string, or bare dotted words.
fn parse_key(p: &mut Parser) -> Result<String> {
    let t = p.next_token();
    match &t.token {
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Ok(s.clone()),
        Token::Word(_) | Token::Number(_, _) => {
            let mut key = t.token.to_string();
            while matches!(
                p.peek_token().token,
                Token::Period | Token::Minus | Token::Word(_) | Token::Number(_, _)
            ) {
                key.push_str(&p.next_token().token.to_string());
            }
            Ok(key)
        }
        _ => Err(error_at(
            &t,
            format!("expected a quoted key or value, found {}", t.token),
        )),
    }
}

fn parse_create_table(p: &mut Parser) -> Result<CreateTable> {
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = p.parse_object_name(false)?.to_string();
    p.expect_token(&Token::LParen)?;
    let mut columns = Vec::new();
    let mut watermark = None;
    let mut primary_key = Vec::new();
    loop {
        let t = p.peek_token();
        if word_upper(&t.token).as_deref() == Some("WATERMARK") {
            p.next_token();
            p.expect_keyword(Keyword::FOR)?;
            let column = p.parse_identifier()?.value;
            p.expect_keyword(Keyword::AS)?;
            let expr = p.parse_expr()?;
            watermark = Some((column, expr.to_string()));
        } else if keyword(&t.token) == Some(Keyword::PRIMARY)
            || keyword(&t.token) == Some(Keyword::CONSTRAINT)
        {
            if p.parse_keyword(Keyword::CONSTRAINT) {
                p.parse_identifier()?;
            }
            p.expect_keywords(&[Keyword::PRIMARY, Keyword::KEY])?;
            p.expect_token(&Token::LParen)?;
            primary_key = p
                .parse_comma_separated(|p| p.parse_identifier())?
                .into_iter()
                .map(|i| i.value)
                .collect();
            p.expect_token(&Token::RParen)?;
            expect_not_enforced(p)?;
        } else {
            let column = p.parse_identifier()?.value;
            if p.parse_keyword(Keyword::AS) {
                let expr = p.parse_expr()?;
                columns.push(ColumnSpec::Computed(column, expr.to_string()));
            } else {
                let data_type = parse_type(p)?;
                let mut nullable = true;
                let mut metadata = std::collections::HashMap::new();
                loop {
                    if p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
                        nullable = false;
                    } else if p.parse_keyword(Keyword::NULL) {
                        nullable = true;
                    } else if p.parse_keywords(&[Keyword::PRIMARY, Keyword::KEY]) {
                        expect_not_enforced(p)?;
                        primary_key = vec![column.clone()];
                    } else if p.parse_keyword(Keyword::COMMENT) {
                        p.parse_literal_string()?;
                    } else if word_upper(&p.peek_token().token).as_deref() == Some("METADATA") {
                        // `METADATA [FROM 'key'] [VIRTUAL]`: filled by the
                        // connector (the key defaults to the column's name).
                        p.next_token();
                        let key = if p.parse_keyword(Keyword::FROM) {
                            p.parse_literal_string()?
                        } else {
                            column.clone()
                        };
                        metadata.insert(METADATA_KEY.to_string(), key);
                        if word_upper(&p.peek_token().token).as_deref() == Some("VIRTUAL") {
                            p.next_token();
                            metadata.insert(METADATA_VIRTUAL.to_string(), "true".to_string());
                        }
                    } else {
                        break;
                    }
                }
                columns.push(ColumnSpec::Physical(
                    Field::new(column, data_type, nullable).with_metadata(metadata),
                ));
            }
        }
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    p.expect_token(&Token::RParen)?;
    if p.parse_keyword(Keyword::COMMENT) {
        p.parse_literal_string()?;
    }
    if p.parse_keywords(&[Keyword::PARTITIONED, Keyword::BY]) {
        return Err(error_at(&p.peek_token(), "PARTITIONED BY is not supported"));
    }
    let mut options = BTreeMap::new();
    if p.parse_keyword(Keyword::WITH) {
        p.expect_token(&Token::LParen)?;
        loop {
            if p.peek_token().token == Token::RParen {
                break;
            }
            let key = p.parse_literal_string()?;
            p.expect_token(&Token::Eq)?;
            let value = p.parse_literal_string()?;
            options.insert(key, value);
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen)?;
    }
    expect_end(p)?;
    if !options.contains_key("connector") {
        return Err(SqlError::Plan(format!(
            "table '{name}' needs a connector: add WITH ('connector' = '...'); available connectors: {}",
            {
                let mut names: Vec<&str> = weir_engine::connectors::CONNECTORS
                    .iter()
                    .map(|c| c.name)
                    .collect();
                names.sort();
                names.join(", ")
            }
        )));
    }
    Ok(CreateTable {
        name,
        if_not_exists,
        columns,
        watermark,
        primary_key,
        options,
    })
}

fn expect_not_enforced(p: &mut Parser) -> Result<()> {
    if !p.parse_keywords(&[Keyword::NOT, Keyword::ENFORCED]) {
        return Err(error_at(
            &p.peek_token(),
            "Flink SQL requires PRIMARY KEY to be declared NOT ENFORCED (Weir does not check keys)",
        ));
    }
    Ok(())
}

fn expect_gt(p: &mut Parser) -> Result<()> {
    let t = p.next_token();
    match t.token {
        Token::Gt => Ok(()),
        _ => Err(error_at(&t, format!("expected '>', found {}", t.token))),
    }
}

fn parse_precision(p: &mut Parser) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    if p.consume_token(&Token::LParen) {
        loop {
            let t = p.next_token();
            match &t.token {
                Token::Number(n, _) => out.push(n.parse().map_err(|_| error_at(&t, "bad number"))?),
                _ => {
                    return Err(error_at(
                        &t,
                        format!("expected a number, found {}", t.token),
                    ))
                }
            }
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen)?;
    }
    Ok(out)
}

/// Parses a Flink SQL type into an Arrow type.
pub fn parse_type(p: &mut Parser) -> Result<DataType> {
    let t = p.next_token();
    let Some(name) = (match &t.token {
        Token::Word(w) => Some(w.value.to_uppercase()),
        _ => None,
    }) else {
        return Err(error_at(&t, format!("expected a type, found {}", t.token)));
    };
    let ts_unit = |precision: u64| match precision {
        0..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    };
    Ok(match name.as_str() {
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "TINYINT" => DataType::Int8,
        "SMALLINT" => DataType::Int16,
        "INT" | "INTEGER" => DataType::Int32,
        "BIGINT" => DataType::Int64,
        "FLOAT" | "REAL" => DataType::Float32,
        "DOUBLE" => {
            let _ = p.parse_keyword(Keyword::PRECISION);
            DataType::Float64
        }
        "DECIMAL" | "DEC" | "NUMERIC" => {
            let ps = parse_precision(p)?;
            let precision = *ps.first().unwrap_or(&10) as u8;
            let scale = *ps.get(1).unwrap_or(&0) as i8;
            if precision == 0 || precision > 38 {
                return Err(error_at(&t, "DECIMAL precision must be between 1 and 38"));
            }
            DataType::Decimal128(precision, scale)
        }
        "CHAR" | "VARCHAR" | "STRING" | "TEXT" => {
            parse_precision(p)?;
            DataType::Utf8
        }
        "BINARY" | "VARBINARY" | "BYTES" => {
            parse_precision(p)?;
            DataType::Binary
        }
        "DATE" => DataType::Date32,
        "TIME" => {
            parse_precision(p)?;
            DataType::Time64(TimeUnit::Microsecond)
        }
        "TIMESTAMP" => {
            let precision = parse_precision(p)?.first().copied().unwrap_or(6);
            if p.parse_keywords(&[Keyword::WITH, Keyword::LOCAL, Keyword::TIME, Keyword::ZONE]) {
                DataType::Timestamp(ts_unit(precision), Some(Arc::from("UTC")))
            } else {
                let _ = p.parse_keywords(&[Keyword::WITHOUT, Keyword::TIME, Keyword::ZONE]);
                DataType::Timestamp(ts_unit(precision), None)
            }
        }
        "TIMESTAMP_LTZ" => {
            let precision = parse_precision(p)?.first().copied().unwrap_or(6);
            DataType::Timestamp(ts_unit(precision), Some(Arc::from("UTC")))
        }
        "ROW" => {
            let close = if p.consume_token(&Token::Lt) {
                Token::Gt
            } else {
                p.expect_token(&Token::LParen)?;
                Token::RParen
            };
            let mut fields = Vec::new();
            loop {
                let fname = p.parse_identifier()?.value;
                let ftype = parse_type(p)?;
                let mut nullable = true;
                if p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
                    nullable = false;
                }
                if p.parse_keyword(Keyword::COMMENT) {
                    p.parse_literal_string()?;
                }
                fields.push(Field::new(fname, ftype, nullable));
                if !p.consume_token(&Token::Comma) {
                    break;
                }
            }
            if close == Token::Gt {
                expect_gt(p)?;
            } else {
                p.expect_token(&Token::RParen)?;
            }
            DataType::Struct(Fields::from(fields))
        }
        "ARRAY" => {
            p.expect_token(&Token::Lt)?;
            let inner = parse_type(p)?;
            expect_gt(p)?;
            DataType::List(Arc::new(Field::new("element", inner, true)))
        }
        "MAP" => {
            p.expect_token(&Token::Lt)?;
            let k = parse_type(p)?;
            p.expect_token(&Token::Comma)?;
            let v = parse_type(p)?;
            expect_gt(p)?;
            let entries = Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![Field::new("key", k, false), Field::new("value", v, true)])),
                false,
            );
            DataType::Map(Arc::new(entries), false)
        }
        other => {
            return Err(error_at(
                &t,
                format!("unknown type {other}; supported: BOOLEAN, TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, DECIMAL(p, s), CHAR, VARCHAR, STRING, BINARY, VARBINARY, BYTES, DATE, TIME, TIMESTAMP(p), TIMESTAMP_LTZ(p), ROW<…>, ARRAY<…>, MAP<…, …>"),
            ))
        }
    })
}

/// Splits `>>` tokens into two `>` (nested `ROW<… ROW<…>>` types).
pub fn split_shift_right(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out = Vec::with_capacity(tokens.len());
    for t in tokens {
        if t.token == Token::ShiftRight {
            out.push(TokenWithSpan::new(Token::Gt, t.span));
            out.push(TokenWithSpan::new(Token::Gt, t.span));
        } else {
            out.push(t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Result<FlinkStatement> {
        let mut s = split_statements(sql)?;
        parse_statement(split_shift_right(s.remove(0)))
    }

    #[test]
    fn create_table_with_flink_features() {
        let s = one(
            "CREATE TABLE t (\n  id BIGINT NOT NULL,\n  r ROW<a INT, b ROW<c VARCHAR>>,\n  ts TIMESTAMP(3),\n  d AS id * 2,\n  WATERMARK FOR ts AS ts - INTERVAL '4' SECOND,\n  PRIMARY KEY (id) NOT ENFORCED\n) WITH ('connector' = 'datagen', 'rows-per-second' = '5')",
        )
        .unwrap();
        let FlinkStatement::CreateTable(t) = s else {
            panic!("not a create table")
        };
        assert_eq!(t.columns.len(), 4);
        assert_eq!(t.primary_key, vec!["id".to_string()]);
        assert_eq!(t.watermark.as_ref().map(|w| w.0.as_str()), Some("ts"));
        assert_eq!(
            t.options.get("rows-per-second").map(String::as_str),
            Some("5")
        );
    }

    #[test]
    fn errors_carry_line_and_column() {
        let err = one("CREATE TABLE t (\n  id BIGINT,\n  x FOO\n) WITH ('connector' = 'datagen')")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3, column 5"), "{err}");
        let err = one("SET 'a' 'b'").unwrap_err().to_string();
        assert!(err.contains("Line: 1") || err.contains("line 1"), "{err}");
    }

    #[test]
    fn statement_sets_in_both_forms() {
        for sql in [
            "EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1; INSERT INTO b SELECT 2; END;",
            "BEGIN STATEMENT SET;\nINSERT INTO a SELECT 1;\nINSERT INTO b SELECT 2;\nEND;",
        ] {
            let units = split_statements(sql).unwrap();
            assert_eq!(units.len(), 1, "{sql}");
            let Ok(FlinkStatement::StatementSet(inserts)) = one(sql) else {
                panic!("not a statement set: {sql}");
            };
            assert_eq!(inserts.len(), 2);
            assert!(is_complete(sql));
        }
        // The shell keeps reading until END.
        assert!(!is_complete(
            "BEGIN STATEMENT SET;\nINSERT INTO a SELECT 1;"
        ));
        assert!(is_complete(
            "BEGIN STATEMENT SET;\nINSERT INTO a SELECT 1;\nend;"
        ));
        // What follows a set is a statement of its own.
        let units = split_statements("BEGIN STATEMENT SET; INSERT INTO a SELECT 1; END; SELECT 3;")
            .unwrap();
        assert_eq!(units.len(), 2);
        let err = one("EXECUTE STATEMENT SET BEGIN END")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("only INSERT statements") || err.contains("no INSERT"),
            "{err}"
        );
        let err = one("BEGIN STATEMENT SET; INSERT INTO a SELECT 1;")
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no END"), "{err}");
    }

    #[test]
    fn flink_show_and_use_statements() {
        assert!(matches!(
            one("SHOW FUNCTIONS"),
            Ok(FlinkStatement::ShowFunctions { user: false })
        ));
        assert!(matches!(
            one("SHOW USER FUNCTIONS"),
            Ok(FlinkStatement::ShowFunctions { user: true })
        ));
        assert!(matches!(
            one("SHOW CURRENT DATABASE"),
            Ok(FlinkStatement::ShowCurrentDatabase)
        ));
        assert!(matches!(
            one("SHOW CREATE VIEW v"),
            Ok(FlinkStatement::ShowCreate { view: true, .. })
        ));
        let Ok(FlinkStatement::ShowColumns { name, like }) = one("SHOW COLUMNS IN t NOT LIKE 'a%'")
        else {
            panic!("not SHOW COLUMNS");
        };
        assert_eq!((name.as_str(), like), ("t", Some(("a%".to_string(), true))));
        assert!(matches!(
            one("USE CATALOG default_catalog"),
            Ok(FlinkStatement::Use { catalog: true, .. })
        ));
    }

    #[test]
    fn splitting_and_completeness() {
        let s = split_statements("SET 'a' = 'b'; SELECT ';' ; ;").unwrap();
        assert_eq!(s.len(), 2);
        assert!(is_complete("SELECT 1;"));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT ';"));
    }
}
