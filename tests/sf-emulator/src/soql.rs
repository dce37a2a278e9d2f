//! A SOQL subset: parsing (with Salesforce's error texts), filtering, ordering,
//! and rendering of rows.
//!
//! ```text
//! SELECT COUNT() | field [, field]*          field: Name | Relationship.Name
//! FROM Object
//! [WHERE cond]      cond: field op literal | field [NOT] IN (literal, ...)
//!                         | field LIKE 'pattern' | NOT cond | cond AND cond
//!                         | cond OR cond | ( cond )
//!                   op: = != <> < <= > >=
//!                   literal: 'text' (backslash escapes), number, true, false, null,
//!                            2026-05-12 (date), 2026-05-12T10:00:00Z (datetime)
//! [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST] [, ...]]
//! [LIMIT n] [OFFSET n]
//! ```

use std::cmp::Ordering;

use axum::http::StatusCode;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value as Json;

use crate::errors::ApiError;
use crate::ids;
use crate::schema::{FieldType, ObjectDef, Schema};
use crate::store::{Record, Store};
use crate::values::{self, FieldValue};

/// A resolved field reference.
#[derive(Debug, Clone, PartialEq)]
pub enum Path {
    Direct(usize),
    Parent { ref_field: usize, parent: usize, field: usize },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Cmp {
        path: Path,
        op: CmpOp,
        value: FieldValue,
    },
    In {
        path: Path,
        values: Vec<FieldValue>,
        negated: bool,
    },
    Like {
        path: Path,
        pattern: String,
    },
    /// A date literal such as `TODAY` or `LAST_N_DAYS:7`: [start, end) in ms.
    Range {
        path: Path,
        op: CmpOp,
        start: i64,
        end: i64,
    },
}

#[derive(Debug, Clone)]
pub struct OrderItem {
    pub path: Path,
    pub desc: bool,
    pub nulls_last: bool,
}

/// A parsed and resolved query.
#[derive(Debug, Clone)]
pub struct Query {
    pub object: usize,
    /// `None` for `SELECT COUNT()`.
    pub columns: Option<Vec<Path>>,
    pub filter: Option<Expr>,
    pub order: Vec<OrderItem>,
    pub limit: Option<usize>,
    pub offset: usize,
}

// ---------------------------------------------------------------- tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(Lit),
    Num(String),
    DateLit(String),
    Sym(&'static str),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) | Tok::Num(s) | Tok::DateLit(s) => s.clone(),
            Tok::Str(l) => format!("'{}'", l.value),
            Tok::Sym(s) => (*s).to_owned(),
            Tok::Eof => "<EOF>".to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
}

/// A string literal as Salesforce reads it ("Quoted String Escape
/// Sequences"): `value` with every escape resolved (what `=`, `IN`, … compare
/// with), and the same text as a LIKE `pattern`, in which only the `%` and
/// `_` the query wrote bare are wildcards and every other character a LIKE
/// matcher reads specially (`\`, an escaped `\%` / `\_`, or one written as
/// `\uXXXX`) is escaped — so `'a\\%'` is "`a\`, then anything", not "`a%`".
#[derive(Debug, Clone, PartialEq)]
struct Lit {
    value: String,
    pattern: String,
    /// Where a `\%` or `\_` escape stands: valid in a LIKE pattern only.
    like_escape: Option<usize>,
}

impl Lit {
    fn push(&mut self, c: char) {
        self.value.push(c);
        if matches!(c, '%' | '_' | '\\') {
            self.pattern.push('\\');
        }
        self.pattern.push(c);
    }
}

fn error_at(q: &str, pos: usize, code: &str, detail: &str) -> ApiError {
    let before = &q[..pos.min(q.len())];
    let row = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    let line = q.lines().nth(row - 1).unwrap_or(q);
    let caret = format!("{}^", " ".repeat(col.saturating_sub(1)));
    ApiError::new(
        StatusCode::BAD_REQUEST,
        code,
        format!("\n{line}\n{caret}\nERROR at Row:{row}:Column:{col}\n{detail}"),
    )
}

fn malformed(q: &str, t: &Token) -> ApiError {
    error_at(q, t.pos, "MALFORMED_QUERY", &format!("unexpected token: {}", t.tok.describe()))
}

fn tokenize(q: &str) -> Result<Vec<Token>, ApiError> {
    let chars: Vec<(usize, char)> = q.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '\'' {
            let mut lit = Lit { value: String::new(), pattern: String::new(), like_escape: None };
            i += 1;
            let mut closed = false;
            while i < chars.len() {
                let (at, ch) = chars[i];
                if ch == '\\' {
                    let Some(&(_, esc)) = chars.get(i + 1) else {
                        break;
                    };
                    let invalid = |seq: &str| {
                        error_at(
                            q,
                            at,
                            "MALFORMED_QUERY",
                            &format!(
                                "Invalid string literal '{seq}'. Illegal character sequence '{seq}' in string literal."
                            ),
                        )
                    };
                    let mapped = match esc {
                        'n' | 'N' => '\n',
                        't' | 'T' => '\t',
                        'r' | 'R' => '\r',
                        'b' | 'B' => '\u{8}',
                        'f' | 'F' => '\u{c}',
                        '\'' | '"' | '\\' => esc,
                        // LIKE wildcards taken literally (LIKE patterns only).
                        '_' | '%' => {
                            lit.value.push(esc);
                            lit.pattern.push('\\');
                            lit.pattern.push(esc);
                            lit.like_escape.get_or_insert(at);
                            i += 2;
                            continue;
                        }
                        // \uXXXX: exactly four hexadecimal digits.
                        'u' => {
                            let hex: String = chars.iter().skip(i + 2).take(4).map(|(_, h)| *h).collect();
                            let code = (hex.len() == 4 && hex.chars().all(|h| h.is_ascii_hexdigit()))
                                .then(|| u32::from_str_radix(&hex, 16).ok())
                                .flatten()
                                .and_then(char::from_u32);
                            let Some(code) = code else {
                                return Err(invalid(&format!("\\{esc}{hex}")));
                            };
                            lit.push(code);
                            i += 6;
                            continue;
                        }
                        _ => return Err(invalid(&format!("\\{esc}"))),
                    };
                    lit.push(mapped);
                    i += 2;
                    continue;
                }
                if ch == '\'' {
                    closed = true;
                    i += 1;
                    break;
                }
                // `%` and `_` as written: wildcards in a LIKE pattern.
                lit.value.push(ch);
                lit.pattern.push(ch);
                i += 1;
            }
            if !closed {
                return Err(error_at(q, pos, "MALFORMED_QUERY", "unexpected token: <EOF>"));
            }
            out.push(Token { tok: Tok::Str(lit), pos });
            continue;
        }
        let next_is_digit = chars.get(i + 1).is_some_and(|(_, d)| d.is_ascii_digit());
        if c.is_ascii_digit() || (c == '-' && next_is_digit) {
            let start = i;
            i += 1;
            while i < chars.len() {
                let ch = chars[i].1;
                if ch.is_ascii_alphanumeric() || matches!(ch, ':' | '.' | '+' | '-') {
                    i += 1;
                } else {
                    break;
                }
            }
            let text: String = chars[start..i].iter().map(|(_, ch)| *ch).collect();
            let body = text.strip_prefix('-').unwrap_or(&text);
            let tok = if body.contains('-') || body.contains('T') { Tok::DateLit(text) } else { Tok::Num(text) };
            out.push(Token { tok, pos });
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() {
                let ch = chars[i].1;
                let colon_digit = ch == ':' && chars.get(i + 1).is_some_and(|(_, d)| d.is_ascii_digit());
                if ch.is_ascii_alphanumeric() || ch == '_' || ch == '.' || colon_digit {
                    i += 1;
                } else {
                    break;
                }
            }
            let text: String = chars[start..i].iter().map(|(_, ch)| *ch).collect();
            out.push(Token { tok: Tok::Ident(text), pos });
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().map(|(_, ch)| *ch).collect();
        let sym = match two.as_str() {
            "!=" => Some("!="),
            "<>" => Some("<>"),
            "<=" => Some("<="),
            ">=" => Some(">="),
            _ => None,
        };
        if let Some(s) = sym {
            out.push(Token { tok: Tok::Sym(s), pos });
            i += 2;
            continue;
        }
        let one = match c {
            ',' => ",",
            '(' => "(",
            ')' => ")",
            '=' => "=",
            '<' => "<",
            '>' => ">",
            _ => {
                return Err(error_at(q, pos, "MALFORMED_QUERY", &format!("unexpected token: {c}")));
            }
        };
        out.push(Token { tok: Tok::Sym(one), pos });
        i += 1;
    }
    out.push(Token { tok: Tok::Eof, pos: q.len() });
    Ok(out)
}

// ---------------------------------------------------------------- parser

struct Parser<'a> {
    q: &'a str,
    toks: Vec<Token>,
    i: usize,
    schema: &'a Schema,
}

const RESERVED: &[&str] = &[
    "select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "asc", "desc", "nulls", "first",
    "last", "limit", "offset", "null", "true", "false", "group", "having",
];

impl<'a> Parser<'a> {
    fn peek(&self) -> &Token {
        let last = self.toks.len().saturating_sub(1);
        &self.toks[self.i.min(last)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), ApiError> {
        if self.eat_kw(kw) { Ok(()) } else { Err(malformed(self.q, self.peek())) }
    }

    fn expect_sym(&mut self, sym: &str) -> Result<(), ApiError> {
        if self.peek().tok
            == Tok::Sym(match sym {
                "(" => "(",
                ")" => ")",
                _ => ",",
            })
        {
            self.i += 1;
            Ok(())
        } else {
            Err(malformed(self.q, self.peek()))
        }
    }

    fn ident(&mut self) -> Result<(String, usize), ApiError> {
        let t = self.bump();
        match t.tok {
            Tok::Ident(s) if !RESERVED.contains(&s.to_ascii_lowercase().as_str()) => Ok((s, t.pos)),
            _ => Err(malformed(self.q, &t)),
        }
    }

    fn resolve(&self, def: &ObjectDef, name: &str, pos: usize) -> Result<Path, ApiError> {
        let parts: Vec<&str> = name.split('.').collect();
        // `Account.Name` may also be written with the object prefix: `Contact.Name`
        // when querying Contact.
        let parts: &[&str] =
            if parts.len() > 1 && parts[0].eq_ignore_ascii_case(&def.name) { &parts[1..] } else { &parts };
        match parts {
            [field] => def.field_index(field).map(Path::Direct).ok_or_else(|| {
                error_at(
                    self.q,
                    pos,
                    "INVALID_FIELD",
                    &format!(
                        "No such column '{field}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                        def.name
                    ),
                )
            }),
            [rel, field] => {
                let bad_rel = || {
                    error_at(
                        self.q,
                        pos,
                        "INVALID_FIELD",
                        &format!(
                            "Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
                        ),
                    )
                };
                let ref_field = def.relationship_field(rel).ok_or_else(bad_rel)?;
                let Some(FieldType::Reference { to, .. }) = def.fields.get(ref_field).map(|f| &f.ty)
                else {
                    return Err(bad_rel());
                };
                let parent = to.first().and_then(|t| self.schema.object_index(t)).ok_or_else(bad_rel)?;
                let pdef = self.schema.objects.get(parent).ok_or_else(bad_rel)?;
                let field = pdef.field_index(field).ok_or_else(|| {
                    error_at(
                        self.q,
                        pos,
                        "INVALID_FIELD",
                        &format!(
                            "No such column '{field}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                            pdef.name
                        ),
                    )
                })?;
                Ok(Path::Parent {
                    ref_field,
                    parent,
                    field,
                })
            }
            _ => Err(error_at(
                self.q,
                pos,
                "INVALID_FIELD",
                &format!("Didn't understand relationship '{}' in field path.", parts.join(".")),
            )),
        }
    }

    fn parse(mut self) -> Result<Query, ApiError> {
        self.expect_kw("select")?;
        let mut raw_cols: Vec<(String, usize)> = Vec::new();
        let mut count = false;
        if self.is_kw("count") && self.toks.get(self.i + 1).map(|t| &t.tok) == Some(&Tok::Sym("(")) {
            self.i += 1;
            self.expect_sym("(")?;
            self.expect_sym(")")?;
            count = true;
        } else {
            loop {
                raw_cols.push(self.ident()?);
                if self.peek().tok == Tok::Sym(",") {
                    self.i += 1;
                    continue;
                }
                break;
            }
        }
        self.expect_kw("from")?;
        let (obj_name, obj_pos) = self.ident()?;
        let object = self.schema.object_index(&obj_name).ok_or_else(|| {
            error_at(
                self.q,
                obj_pos,
                "INVALID_TYPE",
                &format!(
                    "sObject type '{obj_name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
                ),
            )
        })?;
        let def =
            self.schema.objects.get(object).ok_or_else(|| malformed(self.q, &Token { tok: Tok::Eof, pos: obj_pos }))?;
        let columns = if count {
            None
        } else {
            let mut cols = Vec::with_capacity(raw_cols.len());
            for (name, pos) in &raw_cols {
                let p = self.resolve(def, name, *pos)?;
                if cols.contains(&p) {
                    return Err(error_at(
                        self.q,
                        *pos,
                        "MALFORMED_QUERY",
                        &format!("duplicate field selected: {name}"),
                    ));
                }
                cols.push(p);
            }
            Some(cols)
        };
        let filter = if self.eat_kw("where") { Some(self.or_expr(def)?) } else { None };
        let mut order = Vec::new();
        if self.eat_kw("order") {
            self.expect_kw("by")?;
            loop {
                let (name, pos) = self.ident()?;
                let path = self.resolve(def, &name, pos)?;
                let desc = if self.eat_kw("desc") {
                    true
                } else {
                    self.eat_kw("asc");
                    false
                };
                let mut nulls_last = desc;
                if self.eat_kw("nulls") {
                    if self.eat_kw("last") {
                        nulls_last = true;
                    } else {
                        self.expect_kw("first")?;
                        nulls_last = false;
                    }
                }
                order.push(OrderItem { path, desc, nulls_last });
                if self.peek().tok == Tok::Sym(",") {
                    self.i += 1;
                    continue;
                }
                break;
            }
        }
        let mut limit = None;
        let mut offset = 0;
        if self.eat_kw("limit") {
            limit = Some(self.unsigned()?);
        }
        if self.eat_kw("offset") {
            let t = self.peek().clone();
            offset = self.unsigned()?;
            if offset > 2000 {
                return Err(error_at(
                    self.q,
                    t.pos,
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    "Maximum SOQL offset allowed is 2000",
                ));
            }
        }
        if self.peek().tok != Tok::Eof {
            return Err(malformed(self.q, self.peek()));
        }
        Ok(Query { object, columns, filter, order, limit, offset })
    }

    fn unsigned(&mut self) -> Result<usize, ApiError> {
        let t = self.bump();
        match &t.tok {
            Tok::Num(n) => n.parse::<usize>().map_err(|_| malformed(self.q, &t)),
            _ => Err(malformed(self.q, &t)),
        }
    }

    fn or_expr(&mut self, def: &ObjectDef) -> Result<Expr, ApiError> {
        let mut parts = vec![self.and_expr(def)?];
        while self.eat_kw("or") {
            parts.push(self.and_expr(def)?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Expr::Or(parts) })
    }

    fn and_expr(&mut self, def: &ObjectDef) -> Result<Expr, ApiError> {
        let mut parts = vec![self.not_expr(def)?];
        while self.eat_kw("and") {
            parts.push(self.not_expr(def)?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Expr::And(parts) })
    }

    fn not_expr(&mut self, def: &ObjectDef) -> Result<Expr, ApiError> {
        if self.eat_kw("not") {
            return Ok(Expr::Not(Box::new(self.not_expr(def)?)));
        }
        if self.peek().tok == Tok::Sym("(") {
            self.i += 1;
            let e = self.or_expr(def)?;
            self.expect_sym(")")?;
            return Ok(e);
        }
        self.condition(def)
    }

    fn condition(&mut self, def: &ObjectDef) -> Result<Expr, ApiError> {
        let (name, pos) = self.ident()?;
        let path = self.resolve(def, &name, pos)?;
        let field_name = name.rsplit('.').next().unwrap_or(&name).to_owned();
        let ty = self.path_type(def, &path);
        if self.is_kw("not") || self.is_kw("in") {
            let negated = self.eat_kw("not");
            self.expect_kw("in")?;
            self.expect_sym("(")?;
            let mut values = Vec::new();
            loop {
                let t = self.bump();
                values.push(self.literal(&t, &ty, &field_name)?);
                if self.peek().tok == Tok::Sym(",") {
                    self.i += 1;
                    continue;
                }
                break;
            }
            self.expect_sym(")")?;
            return Ok(Expr::In { path, values, negated });
        }
        if self.eat_kw("like") {
            let t = self.bump();
            return match t.tok {
                Tok::Str(lit) => Ok(Expr::Like { path, pattern: lit.pattern }),
                _ => Err(malformed(self.q, &t)),
            };
        }
        let t = self.bump();
        let op = match t.tok {
            Tok::Sym("=") => CmpOp::Eq,
            Tok::Sym("!=") | Tok::Sym("<>") => CmpOp::Ne,
            Tok::Sym("<") => CmpOp::Lt,
            Tok::Sym("<=") => CmpOp::Le,
            Tok::Sym(">") => CmpOp::Gt,
            Tok::Sym(">=") => CmpOp::Ge,
            _ => return Err(malformed(self.q, &t)),
        };
        let lit = self.bump();
        if let Tok::Ident(word) = &lit.tok {
            if matches!(ty, FieldType::Date | FieldType::DateTime) {
                if let Some((start, end)) = date_literal(word, crate::values::now_ms()) {
                    return Ok(Expr::Range { path, op, start, end });
                }
            }
        }
        let value = self.literal(&lit, &ty, &field_name)?;
        Ok(Expr::Cmp { path, op, value })
    }

    fn path_type(&self, def: &ObjectDef, path: &Path) -> FieldType {
        let f = match path {
            Path::Direct(i) => def.fields.get(*i),
            Path::Parent { parent, field, .. } => self.schema.objects.get(*parent).and_then(|o| o.fields.get(*field)),
        };
        f.map(|f| f.ty.clone()).unwrap_or(FieldType::Text { length: 255 })
    }

    fn literal(&self, t: &Token, ty: &FieldType, field: &str) -> Result<FieldValue, ApiError> {
        let wrong_type = || {
            let quoted =
                if ty.is_textual() { "should be enclosed in quotes" } else { "should not be enclosed in quotes" };
            error_at(
                self.q,
                t.pos,
                "INVALID_FIELD",
                &format!(
                    "value of filter criterion for field '{field}' must be of type {} and {quoted}",
                    ty.soap_name()
                ),
            )
        };
        match &t.tok {
            Tok::Ident(s) if s.eq_ignore_ascii_case("null") => Ok(FieldValue::Null),
            Tok::Ident(s) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {
                if *ty == FieldType::Boolean {
                    Ok(FieldValue::Bool(s.eq_ignore_ascii_case("true")))
                } else {
                    Err(wrong_type())
                }
            }
            Tok::Str(Lit { like_escape: Some(at), .. }) => {
                let seq = self.q.get(*at..).and_then(|r| r.get(..2)).unwrap_or("\\%");
                Err(error_at(
                    self.q,
                    *at,
                    "MALFORMED_QUERY",
                    &format!("Invalid string literal '{seq}'. Illegal character sequence '{seq}' in string literal."),
                ))
            }
            Tok::Str(Lit { value: s, .. }) => match ty {
                FieldType::Id | FieldType::Reference { .. } => match ids::normalize(s) {
                    Some(id) => Ok(FieldValue::Text(id)),
                    None if s.is_empty() => Ok(FieldValue::Null),
                    None => {
                        Err(error_at(self.q, t.pos, "INVALID_QUERY_FILTER_OPERATOR", &format!("invalid ID field: {s}")))
                    }
                },
                _ if ty.is_textual() => Ok(FieldValue::Text(s.clone())),
                _ => Err(wrong_type()),
            },
            Tok::Num(n) => {
                if ty.is_numeric() {
                    n.parse::<f64>().map(FieldValue::Number).map_err(|_| malformed(self.q, t))
                } else {
                    Err(wrong_type())
                }
            }

            Tok::DateLit(d) => match ty {
                FieldType::DateTime if d.contains('T') => {
                    values::parse_datetime(d).map(FieldValue::DateTime).ok_or_else(|| malformed(self.q, t))
                }
                FieldType::Date if !d.contains('T') => {
                    values::parse_date(d).map(FieldValue::Date).ok_or_else(|| malformed(self.q, t))
                }
                _ => Err(wrong_type()),
            },
            _ => Err(malformed(self.q, t)),
        }
    }
}

/// Parses `q` against the schema.
pub fn parse(schema: &Schema, q: &str) -> Result<Query, ApiError> {
    let toks = tokenize(q)?;
    Parser { q, toks, i: 0, schema }.parse()
}

// ---------------------------------------------------------------- execution

fn path_value<'r>(store: &'r Store, rec: &'r Record, path: &Path) -> (&'r FieldValue, bool) {
    match path {
        Path::Direct(f) => (rec.get(*f), is_id_field(*f)),
        Path::Parent { ref_field, parent, field } => {
            let cs = is_id_field(*field);
            let v = rec
                .get(*ref_field)
                .as_text()
                .and_then(|id| store.find_by_id(*parent, id))
                .and_then(|idx| store.table(*parent).and_then(|t| t.records.get(idx)))
                .map(|p| p.get(*field))
                .unwrap_or(&FieldValue::Null);
            (v, cs)
        }
    }
}

/// Ids (field 0 of every object) compare case-sensitively; other text does not.
fn is_id_field(field: usize) -> bool {
    field == 0
}

fn compare(a: &FieldValue, b: &FieldValue, case_sensitive: bool) -> Ordering {
    match (a, b) {
        (FieldValue::Text(x), FieldValue::Text(y)) if case_sensitive => x.cmp(y),
        _ => a.compare(b),
    }
}

fn ref_case_sensitive(v: &FieldValue) -> bool {
    // Reference values are 18-character ids: compare them exactly.
    v.as_text().is_some_and(|s| s.len() == 18 && ids::normalize(s).as_deref() == Some(s))
}

fn like(value: &str, pattern: &str) -> bool {
    // Case-insensitive, `%` any run, `_` one character, `\%` / `\_` literals.
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let mut p: Vec<(char, bool)> = Vec::new();
    let mut chars = pattern.to_lowercase().chars().collect::<Vec<_>>().into_iter();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                p.push((n, true));
            }
        } else {
            p.push((c, false));
        }
    }
    fn rec(v: &[char], p: &[(char, bool)]) -> bool {
        match p.first() {
            None => v.is_empty(),
            Some(('%', false)) => (0..=v.len()).any(|k| rec(&v[k..], &p[1..])),
            Some(('_', false)) => !v.is_empty() && rec(&v[1..], &p[1..]),
            Some((c, _)) => v.first() == Some(c) && rec(&v[1..], &p[1..]),
        }
    }
    rec(&v, &p)
}

fn eval(store: &Store, rec: &Record, e: &Expr) -> bool {
    match e {
        Expr::And(xs) => xs.iter().all(|x| eval(store, rec, x)),
        Expr::Or(xs) => xs.iter().any(|x| eval(store, rec, x)),
        Expr::Not(x) => !eval(store, rec, x),
        Expr::Cmp { path, op, value } => {
            let (v, cs) = path_value(store, rec, path);
            let cs = cs || ref_case_sensitive(value);
            match op {
                CmpOp::Eq => compare(v, value, cs) == Ordering::Equal,
                CmpOp::Ne => compare(v, value, cs) != Ordering::Equal,
                _ if v.is_null() || value.is_null() => false,
                CmpOp::Lt => compare(v, value, cs) == Ordering::Less,
                CmpOp::Le => compare(v, value, cs) != Ordering::Greater,
                CmpOp::Gt => compare(v, value, cs) == Ordering::Greater,
                CmpOp::Ge => compare(v, value, cs) != Ordering::Less,
            }
        }
        Expr::In { path, values, negated } => {
            let (v, cs) = path_value(store, rec, path);
            let found = values.iter().any(|x| compare(v, x, cs || ref_case_sensitive(x)) == Ordering::Equal);
            found != *negated
        }
        Expr::Like { path, pattern } => {
            let (v, _) = path_value(store, rec, path);
            v.as_text().is_some_and(|s| like(s, pattern))
        }
        Expr::Range { path, op, start, end } => {
            let (v, _) = path_value(store, rec, path);
            let ms = match v {
                FieldValue::DateTime(ms) => *ms,
                FieldValue::Date(d) => i64::from(*d) * 86_400_000,
                _ => return *op == CmpOp::Ne,
            };
            match op {
                CmpOp::Eq => ms >= *start && ms < *end,
                CmpOp::Ne => !(ms >= *start && ms < *end),
                CmpOp::Lt => ms < *start,
                CmpOp::Le => ms < *end,
                CmpOp::Gt => ms >= *end,
                CmpOp::Ge => ms >= *start,
            }
        }
    }
}

/// Date literals: TODAY, YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n,
/// N_DAYS_AGO:n as [start, end) in ms (UTC days).
pub fn date_literal(word: &str, now_ms: i64) -> Option<(i64, i64)> {
    const DAY: i64 = 86_400_000;
    let today = now_ms.div_euclid(DAY) * DAY;
    let upper = word.to_ascii_uppercase();
    let (name, n) = match upper.split_once(':') {
        Some((name, n)) => (name.to_owned(), Some(n.parse::<i64>().ok()?)),
        None => (upper.clone(), None),
    };
    match (name.as_str(), n) {
        ("TODAY", None) => Some((today, today + DAY)),
        ("YESTERDAY", None) => Some((today - DAY, today)),
        ("TOMORROW", None) => Some((today + DAY, today + 2 * DAY)),
        ("LAST_N_DAYS", Some(n)) => Some((today - n * DAY, today + DAY)),
        ("NEXT_N_DAYS", Some(n)) => Some((today + DAY, today + (n + 1) * DAY)),
        ("N_DAYS_AGO", Some(n)) => Some((today - n * DAY, today - (n - 1) * DAY)),
        _ => None,
    }
}

/// Candidate rows from an index when the filter pins an indexed field with `=` or
/// `IN` (directly or inside a top-level AND); `None` when a full scan is needed.
fn indexed_candidates(schema: &Schema, store: &Store, q: &Query) -> Option<Vec<usize>> {
    let def = schema.objects.get(q.object)?;
    let pinned = |e: &Expr| -> Option<(usize, Vec<FieldValue>)> {
        match e {
            Expr::Cmp { path: Path::Direct(f), op: CmpOp::Eq, value } if !value.is_null() => {
                Some((*f, vec![value.clone()]))
            }
            Expr::In { path: Path::Direct(f), values, negated: false } => Some((*f, values.clone())),
            _ => None,
        }
    };
    let candidates = match q.filter.as_ref()? {
        Expr::And(parts) => parts.iter().filter_map(pinned).find(|(f, _)| usable(def, *f)),
        other => pinned(other).filter(|(f, _)| usable(def, *f)),
    }?;
    let (field, values) = candidates;
    let mut rows: Vec<usize> = values.iter().flat_map(|v| store.find_indexed(def, q.object, field, v)).collect();
    rows.sort_unstable();
    rows.dedup();
    Some(rows)
}

fn usable(def: &ObjectDef, field: usize) -> bool {
    field == def.system.id || def.fields.get(field).is_some_and(|f| f.indexed() && !f.case_sensitive)
}

/// Indices of the matching records, filtered, ordered, offset and limited. Deleted
/// records only with `all_rows` (queryAll).
pub fn execute(schema: &Schema, store: &Store, q: &Query, all_rows: bool) -> Vec<usize> {
    let Some(table) = store.table(q.object) else {
        return Vec::new();
    };
    let visible = |r: &Record| all_rows || !r.deleted;
    let fast = if all_rows { None } else { indexed_candidates(schema, store, q) };
    let mut rows: Vec<usize> = match (fast, &q.filter) {
        (Some(cands), Some(f)) => cands
            .into_iter()
            .filter(|i| table.records.get(*i).is_some_and(|r| visible(r) && eval(store, r, f)))
            .collect(),
        (_, None) => table.records.iter().enumerate().filter(|(_, r)| visible(r)).map(|(i, _)| i).collect(),
        (None, Some(f)) => {
            table.records.iter().enumerate().filter(|(_, r)| visible(r) && eval(store, r, f)).map(|(i, _)| i).collect()
        }
    };
    if !q.order.is_empty() {
        rows.sort_by(|a, b| {
            let (Some(ra), Some(rb)) = (table.records.get(*a), table.records.get(*b)) else {
                return Ordering::Equal;
            };
            for item in &q.order {
                let (va, cs) = path_value(store, ra, &item.path);
                let (vb, _) = path_value(store, rb, &item.path);
                let ord = match (va.is_null(), vb.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => {
                        if item.nulls_last {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    (false, true) => {
                        if item.nulls_last {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    (false, false) => {
                        let o = compare(va, vb, cs);
                        if item.desc { o.reverse() } else { o }
                    }
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
    }
    let start = q.offset.min(rows.len());
    let end = match q.limit {
        Some(l) => start.saturating_add(l).min(rows.len()),
        None => rows.len(),
    };
    rows[start..end].to_vec()
}

/// Column headers as the Bulk API prints them (`Id`, `Contact__r.LMS_Learner_Id__c`).
pub fn column_names(schema: &Schema, q: &Query) -> Vec<String> {
    let Some(def) = schema.objects.get(q.object) else { return Vec::new() };
    q.columns
        .iter()
        .flatten()
        .map(|c| match c {
            Path::Direct(f) => def.fields.get(*f).map(|d| d.name.clone()).unwrap_or_default(),
            Path::Parent { ref_field, parent, field } => {
                let rel = match def.fields.get(*ref_field).map(|f| &f.ty) {
                    Some(FieldType::Reference { relationship, .. }) => relationship.clone(),
                    _ => String::new(),
                };
                let name = schema.objects.get(*parent).and_then(|p| p.fields.get(*field)).map(|f| f.name.clone());
                format!("{rel}.{}", name.unwrap_or_default())
            }
        })
        .collect()
}

/// The selected values of row `idx`, in column order.
pub fn column_values(store: &Store, q: &Query, idx: usize) -> Vec<FieldValue> {
    let Some(rec) = store.record(q.object, idx) else { return Vec::new() };
    q.columns.iter().flatten().map(|c| path_value(store, rec, c).0.clone()).collect()
}

// ---------------------------------------------------------------- rendering

/// A JSON object whose keys keep their insertion order.
#[derive(Debug, Clone, Default)]
pub struct OrderedObject(pub Vec<(String, Cell)>);

/// A value inside an [`OrderedObject`].
#[derive(Debug, Clone)]
pub enum Cell {
    Plain(Json),
    Object(OrderedObject),
}

impl Serialize for OrderedObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            match v {
                Cell::Plain(j) => m.serialize_entry(k, j)?,
                Cell::Object(o) => m.serialize_entry(k, o)?,
            }
        }
        m.end()
    }
}

fn attributes(object: &str, id: &str, version: &str) -> Cell {
    Cell::Object(OrderedObject(vec![
        ("type".to_owned(), Cell::Plain(Json::String(object.to_owned()))),
        ("url".to_owned(), Cell::Plain(Json::String(format!("/services/data/{version}/sobjects/{object}/{id}")))),
    ]))
}

/// Renders one result row: `attributes`, then the selected fields in order; parent
/// fields nest under the relationship name.
pub fn render_row(schema: &Schema, store: &Store, q: &Query, idx: usize, version: &str) -> OrderedObject {
    let (Some(def), Some(rec)) = (schema.objects.get(q.object), store.record(q.object, idx)) else {
        return OrderedObject::default();
    };
    let mut out = vec![("attributes".to_owned(), attributes(&def.name, rec.id(), version))];
    for col in q.columns.iter().flatten() {
        match col {
            Path::Direct(f) => {
                let name = def.fields.get(*f).map(|d| d.name.clone()).unwrap_or_default();
                out.push((name, Cell::Plain(rec.get(*f).to_json())));
            }
            Path::Parent { ref_field, parent, field } => {
                let rel = match def.fields.get(*ref_field).map(|f| &f.ty) {
                    Some(FieldType::Reference { relationship, .. }) => relationship.clone(),
                    _ => continue,
                };
                let Some(pdef) = schema.objects.get(*parent) else {
                    continue;
                };
                let parent_rec = rec
                    .get(*ref_field)
                    .as_text()
                    .and_then(|id| store.find_by_id(*parent, id))
                    .and_then(|i| store.table(*parent).and_then(|t| t.records.get(i)));
                let slot = out.iter().position(|(k, _)| *k == rel);
                let fname = pdef.fields.get(*field).map(|d| d.name.clone()).unwrap_or_default();
                match parent_rec {
                    None => {
                        if slot.is_none() {
                            out.push((rel, Cell::Plain(Json::Null)));
                        }
                    }
                    Some(p) => {
                        let value = Cell::Plain(p.get(*field).to_json());
                        match slot.and_then(|s| out.get_mut(s)) {
                            Some((_, Cell::Object(o))) => o.0.push((fname, value)),
                            _ => out.push((
                                rel,
                                Cell::Object(OrderedObject(vec![
                                    ("attributes".to_owned(), attributes(&pdef.name, p.id(), version)),
                                    (fname, value),
                                ])),
                            )),
                        }
                    }
                }
            }
        }
    }
    OrderedObject(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_subset() {
        let s = Schema::learnlink();
        let q = parse(
            &s,
            "SELECT Id, Status__c, Contact__r.LMS_Learner_Id__c FROM LMS_Enrollment__c WHERE (Status__c = 'Completed' OR Progress__c >= 50) AND LMS_Updated_At__c > 2026-05-12T10:00:00Z ORDER BY LMS_Updated_At__c DESC NULLS LAST, Id LIMIT 10 OFFSET 5",
        )
        .unwrap();
        assert_eq!(q.columns.as_ref().unwrap().len(), 3);
        assert_eq!(q.limit, Some(10));
        assert_eq!(q.offset, 5);
        assert!(parse(&s, "SELECT COUNT() FROM Contact WHERE Email IN ('a@b.c', 'd@e.f')").unwrap().columns.is_none());
        assert!(parse(&s, "SELECT Id FROM Contact WHERE LastName LIKE 'O\\'Br%'").is_ok());
    }

    #[test]
    fn errors_look_like_salesforce() {
        let s = Schema::learnlink();
        let e = parse(&s, "SELECT Id FROM").unwrap_err();
        assert_eq!(e.error_code, "MALFORMED_QUERY");
        assert!(e.message.contains("unexpected token: <EOF>"), "{}", e.message);
        let e = parse(&s, "SELECT Foo__c FROM Contact").unwrap_err();
        assert_eq!(e.error_code, "INVALID_FIELD");
        assert!(e.message.contains("No such column 'Foo__c' on entity 'Contact'"));
        let e = parse(&s, "SELECT Id FROM Nope__c").unwrap_err();
        assert_eq!(e.error_code, "INVALID_TYPE");
        let e = parse(&s, "SELECT Id FROM LMS_Enrollment__c WHERE LMS_Updated_At__c > '2026'").unwrap_err();
        assert_eq!(e.error_code, "INVALID_FIELD");
        assert!(e.message.contains("must be of type dateTime and should not be enclosed in quotes"));
    }

    /// The value a one-literal `WHERE Email = '…'` compares with.
    fn literal_value(s: &Schema, lit: &str) -> Result<String, ApiError> {
        let q = parse(s, &format!("SELECT Id FROM Contact WHERE Email = {lit}"))?;
        match q.filter {
            Some(Expr::Cmp { value: FieldValue::Text(v), .. }) => Ok(v),
            other => panic!("{lit}: {other:?}"),
        }
    }

    /// The pattern a `WHERE Email LIKE '…'` matches with.
    fn like_pattern(s: &Schema, lit: &str) -> Result<String, ApiError> {
        let q = parse(s, &format!("SELECT Id FROM Contact WHERE Email LIKE {lit}"))?;
        match q.filter {
            Some(Expr::Like { pattern, .. }) => Ok(pattern),
            other => panic!("{lit}: {other:?}"),
        }
    }

    /// Salesforce's "Quoted String Escape Sequences": every one of them, in
    /// both cases where Salesforce takes both, `\uXXXX`, and nothing else.
    #[test]
    fn string_literals_read_every_salesforce_escape_and_only_those() {
        let s = Schema::learnlink();
        for (lit, want) in [
            (r"'o\'brien@x.test'", "o'brien@x.test"),
            (r#"'say \"hi\"'"#, "say \"hi\""),
            (r"'C:\\temp\\'", r"C:\temp\"),
            (r"'a\nb\Nc'", "a\nb\nc"),
            (r"'a\rb\Rc\tD\Te'", "a\rb\rc\tD\te"),
            (r"'\b\B\f\F'", "\u{8}\u{8}\u{c}\u{c}"),
            (r"'caf\u00e9 \u6F22\u5b57'", "café 漢字"),
            (r"'bell\u0007'", "bell\u{7}"),
            (r"'\u0027 OR Email != \u0027'", "' OR Email != '"),
            ("'zoë 😀 漢字'", "zoë 😀 漢字"),
            ("'100%_done'", "100%_done"),
            (r"'x\' OR Email != \''", "x' OR Email != '"),
        ] {
            assert_eq!(literal_value(&s, lit).unwrap(), want, "{lit}");
        }
        // An escape Salesforce does not define, a short or invalid \u, a
        // dangling backslash, or a quote that ends the literal early: refused.
        for bad in [r"'a\qb'", r"'\u12'", r"'\u12G4'", r"'\uD800'", r"'\U0041'", r"'dangling\'", "'o'brien@x.test'"] {
            let e = literal_value(&s, bad).unwrap_err();
            assert_eq!(e.error_code, "MALFORMED_QUERY", "{bad}: {}", e.message);
        }
        // Unescaped, a quote ends the literal and the rest is SOQL, as on
        // Salesforce: why every value must go through learnlink_core::soql.
        let q = parse(&s, "SELECT Id FROM Contact WHERE Email = 'x' OR Email != ''").unwrap();
        assert!(matches!(q.filter, Some(Expr::Or(_))), "{:?}", q.filter);
        // \% and \_ belong to LIKE patterns only.
        let e = literal_value(&s, r"'100\%'").unwrap_err();
        assert_eq!(e.error_code, "MALFORMED_QUERY");
        assert!(e.message.contains(r"Illegal character sequence '\%'"), "{}", e.message);
        assert!(literal_value(&s, r"'a\_b'").is_err());
        let e = parse(&s, r"SELECT Id FROM Contact WHERE Email IN ('a@x.test', 'a\_b@x.test')").unwrap_err();
        assert_eq!(e.error_code, "MALFORMED_QUERY");
    }

    /// In a LIKE pattern only the `%` and `_` written bare are wildcards: an
    /// escaped one, or a backslash written `\\` before a wildcard, is not
    /// taken for an escape of it.
    #[test]
    fn like_patterns_keep_literal_backslashes_apart_from_escapes() {
        let s = Schema::learnlink();
        let matches = |lit: &str, value: &str| like(value, &like_pattern(&s, lit).unwrap());
        // `a\` then anything: a literal backslash followed by a wildcard.
        assert!(matches(r"'a\\%'", r"a\anything"));
        assert!(!matches(r"'a\\%'", "a%"));
        // `a%` exactly: an escaped percent sign.
        assert!(matches(r"'a\%'", "a%"));
        assert!(!matches(r"'a\%'", "abc"));
        // `a\b`: a backslash is never an escape of the next character.
        assert!(matches(r"'a\\b'", r"a\b"));
        assert!(!matches(r"'a\\b'", "ab"));
        // Wildcards written as \u escapes match themselves only.
        assert!(matches(r"'100\u0025'", "100%"));
        assert!(!matches(r"'100\u0025'", "1000"));
        assert!(matches(r"'a\_b'", "a_b") && !matches(r"'a\_b'", "axb"));
        assert!(matches("'a_b'", "axb") && matches("'o\\'b%'", "O'Brien"));
    }

    #[test]
    fn like_matching() {
        assert!(like("Hello World", "hello%"));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "a_"));
        assert!(like("50%", "50\\%"));
    }
}
