//! Filter and PATCH path parser: hand-written recursive descent over the
//! bytes of the input.
//!
//! The grammar is RFC 7644 §3.4.2.2, Figure 1, with errata 7319 (a space
//! may follow `not`) and 7322 (`valFilter` combines with and/or like FILTER
//! but cannot nest another valuePath):
//!
//! ```text
//! FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
//! valuePath = attrPath "[" valFilter "]"
//!             ; FILTER uses sub-attributes of a parent attrPath
//! valFilter = attrExp / logExp / *1"not" "(" valFilter ")"
//! attrExp   = (attrPath SP "pr") /
//!             (attrPath SP compareOp SP compValue)
//! logExp    = FILTER SP ("and" / "or") SP FILTER
//! compValue = false / null / true / number / string
//!             ; rules from JSON (RFC 7159)
//! compareOp = "eq" / "ne" / "co" / "sw" / "ew" / "gt" / "lt" / "ge" / "le"
//! attrPath  = [URI ":"] ATTRNAME *1subAttr
//!             ; SCIM attribute name; URI is SCIM "schema" URI
//! ATTRNAME  = ALPHA *(nameChar)
//! nameChar  = "-" / "_" / DIGIT / ALPHA
//! subAttr   = "." ATTRNAME
//!             ; a sub-attribute of a complex attribute
//! ```
//!
//! and RFC 7644 §3.5.2 for PATCH operation paths:
//!
//! ```text
//! PATH = attrPath / valuePath [subAttr]
//! ```
//!
//! The ABNF says nothing about precedence; the prose does: grouping first,
//! then `not` over `and` over `or`, with `and`/`or` left-associative:
//!
//! ```text
//! or_expr  = and_expr *("or" and_expr)
//! and_expr = unary *("and" unary)
//! unary    = "not" "(" or_expr ")" / "(" or_expr ")" / attrExp / valuePath
//! ```
//!
//! Deliberate leniencies, because identity providers differ from the RFC:
//!
//! - operators, `and`/`or`/`not` and `true`/`false`/`null` are matched
//!   case-insensitively, and any run of ASCII whitespace stands for SP
//!   (whitespace may also be omitted where the token boundary is obvious,
//!   as in `userName eq"x"`);
//! - `emails[type eq "work"].value eq "x"` (a sub-attribute comparison after
//!   a value filter, sent by some clients) is read as
//!   `emails[type eq "work" and value eq "x"]`: the same element must
//!   satisfy both, which is what those clients mean.
//!
//! Words such as `and`, `or` and `not` are keywords only where an operator can
//! appear, so an attribute that happens to be called `not` still parses
//! (`not pr`); `not` is the operator only when a `(` follows it.

use serde_json::Number;

use super::{CompValue, CompareOp, Filter, PatchPath};
use crate::error::{Error, Result};
use crate::path::{AttrPath, is_attr_name, is_name_char};

/// Budgets that bound the work one filter string may cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum filter length in bytes.
    pub max_len: usize,
    /// Maximum nesting depth of parentheses, `not` and value paths.
    pub max_depth: usize,
    /// Maximum number of comparisons (attrExp) in the whole filter.
    pub max_terms: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_len: 4096,
            max_depth: 16,
            max_terms: 64,
        }
    }
}

/// Nesting is capped here whatever `Limits::max_depth` says, so a generous
/// configuration can never turn deep input into a stack overflow.
const DEPTH_CEILING: usize = 256;

/// Parses a filter with the default [`Limits`].
pub fn parse(input: &str) -> Result<Filter> {
    parse_with(input, &Limits::default())
}

/// Parses a filter within the given limits.
pub fn parse_with(input: &str, limits: &Limits) -> Result<Filter> {
    if input.len() > limits.max_len {
        return Err(Error::filter(
            limits.max_len,
            format!(
                "filter is longer than the maximum length of {} bytes",
                limits.max_len
            ),
        ));
    }
    if input.trim_start().is_empty() {
        return Err(Error::filter(0, "empty filter"));
    }
    let mut p = Parser::new(input, limits);
    let filter = p.or_expr()?;
    p.finish()?;
    Ok(filter)
}

/// Parses a PATCH `path` (`attrPath / valuePath [subAttr]`).
pub fn parse_path(input: &str) -> Result<PatchPath> {
    let limits = Limits::default();
    if input.len() > limits.max_len {
        return Err(Error::InvalidPath(format!(
            "path is longer than the maximum length of {} bytes",
            limits.max_len
        )));
    }
    Parser::new(input, &limits)
        .patch_path()
        .map_err(|e| match e {
            Error::InvalidFilter { offset, message } => {
                Error::InvalidPath(format!("'{input}': {message} (at offset {offset})"))
            }
            other => other,
        })
}

/// Bytes that end an attribute path or a bare token.
fn is_delimiter(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'(' | b')' | b'[' | b']' | b'"')
}

fn compare_op(word: &str) -> Option<CompareOp> {
    const OPS: [(&str, CompareOp); 9] = [
        ("eq", CompareOp::Eq),
        ("ne", CompareOp::Ne),
        ("co", CompareOp::Co),
        ("sw", CompareOp::Sw),
        ("ew", CompareOp::Ew),
        ("gt", CompareOp::Gt),
        ("ge", CompareOp::Ge),
        ("lt", CompareOp::Lt),
        ("le", CompareOp::Le),
    ];
    OPS.iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(word))
        .map(|&(_, op)| op)
}

/// Parses a JSON number token (RFC 8259 §6) exactly.
///
/// serde_json's own float parsing may be off by one ulp without its
/// `float_roundtrip` feature, which would break print/parse round trips, so
/// the grammar is checked here and the conversion left to `str::parse`,
/// which rounds correctly. Integers too large for 64 bits become floats, as
/// serde_json does.
fn json_number(token: &str) -> std::result::Result<Number, &'static str> {
    const MALFORMED: &str = "malformed";
    let b = token.as_bytes();
    let digits = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = usize::from(b.first() == Some(&b'-'));
    let int_start = i;
    i = digits(i);
    if i == int_start || (i - int_start > 1 && b.get(int_start) == Some(&b'0')) {
        return Err(MALFORMED);
    }
    let mut integral = true;
    if b.get(i) == Some(&b'.') {
        integral = false;
        let frac_start = i + 1;
        i = digits(frac_start);
        if i == frac_start {
            return Err(MALFORMED);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        integral = false;
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        i = digits(exp_start);
        if i == exp_start {
            return Err(MALFORMED);
        }
    }
    if i != b.len() {
        return Err(MALFORMED);
    }
    if integral {
        if let Ok(u) = token.parse::<u64>() {
            return Ok(u.into());
        }
        if let Ok(n) = token.parse::<i64>() {
            return Ok(n.into());
        }
    }
    token
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .ok_or("out of range")
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    max_depth: usize,
    max_terms: usize,
    depth: usize,
    terms: usize,
    in_value_filter: bool,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, limits: &Limits) -> Self {
        Parser {
            src,
            pos: 0,
            max_depth: limits.max_depth.min(DEPTH_CEILING),
            max_terms: limits.max_terms,
            depth: 0,
            terms: 0,
            in_value_filter: false,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn err(&self, offset: usize, message: impl Into<String>) -> Error {
        Error::filter(offset, message)
    }

    /// Describes what sits at the current position, for error messages.
    fn found(&self) -> String {
        let rest = self.src.get(self.pos..).unwrap_or("");
        match rest.bytes().next() {
            None => "end of input".to_owned(),
            Some(b) if is_delimiter(b) => format!("'{}'", char::from(b)),
            Some(_) => {
                let token: String = rest
                    .chars()
                    .take_while(|&c| !c.is_ascii() || !is_delimiter(c as u8))
                    .take(32)
                    .collect();
                format!("'{token}'")
            }
        }
    }

    /// The ASCII-alphanumeric word at `at`, possibly empty.
    fn word_at(&self, at: usize) -> &'a str {
        let bytes = self.src.as_bytes();
        let mut end = at;
        while bytes.get(end).is_some_and(u8::is_ascii_alphanumeric) {
            end += 1;
        }
        self.src.get(at..end).unwrap_or("")
    }

    /// True when the keyword `kw` stands at the current position as a whole
    /// word (so `order` is not `or` and `and_x` is not `and`).
    fn keyword(&self, kw: &str) -> bool {
        let word = self.word_at(self.pos);
        word.eq_ignore_ascii_case(kw)
            && !self
                .src
                .as_bytes()
                .get(self.pos + word.len())
                .is_some_and(|&b| is_name_char(b) || b == b'.' || b == b':')
    }

    /// Advances over a run of non-delimiter bytes and returns it.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|b| !is_delimiter(b)) {
            self.pos += 1;
        }
        self.src.get(start..self.pos).unwrap_or("")
    }

    /// Advances over ATTRNAME characters and returns them.
    fn name(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_name_char) {
            self.pos += 1;
        }
        self.src.get(start..self.pos).unwrap_or("")
    }

    fn enter(&mut self, at: usize) -> Result<()> {
        self.depth += 1;
        self.check_depth(self.depth, at)
    }

    fn check_depth(&self, depth: usize, at: usize) -> Result<()> {
        if depth > self.max_depth {
            return Err(self.err(
                at,
                format!(
                    "filter nests deeper than the maximum depth of {}",
                    self.max_depth
                ),
            ));
        }
        Ok(())
    }

    fn count_term(&mut self, at: usize) -> Result<()> {
        self.terms += 1;
        if self.terms > self.max_terms {
            return Err(self.err(
                at,
                format!(
                    "filter has more than the maximum of {} comparisons",
                    self.max_terms
                ),
            ));
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.skip_ws();
        let message = match self.peek() {
            None => return Ok(()),
            Some(b')') => "unbalanced parenthesis: ')' has no matching '('".to_owned(),
            Some(b']') => "unexpected ']' outside a value filter".to_owned(),
            Some(_) => format!(
                "trailing input: expected 'and', 'or' or end of filter, found {}",
                self.found()
            ),
        };
        Err(self.err(self.pos, message))
    }

    fn or_expr(&mut self) -> Result<Filter> {
        let mut left = self.and_expr()?;
        loop {
            self.skip_ws();
            if !self.keyword("or") {
                return Ok(left);
            }
            self.pos += 2;
            let right = self.and_expr()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
    }

    fn and_expr(&mut self) -> Result<Filter> {
        let mut left = self.unary()?;
        loop {
            self.skip_ws();
            if !self.keyword("and") {
                return Ok(left);
            }
            self.pos += 3;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Filter> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                self.enter(start)?;
                let inner = self.or_expr()?;
                self.close_paren(start)?;
                self.depth -= 1;
                Ok(inner)
            }
            None | Some(b')' | b']' | b'[' | b'"') => Err(self.err(
                start,
                format!("expected a filter expression, found {}", self.found()),
            )),
            Some(_) if self.keyword("not") && self.paren_follows(start + 3) => {
                self.pos += 3;
                self.skip_ws();
                let open = self.pos;
                self.pos += 1;
                self.enter(start)?;
                let inner = self.or_expr()?;
                self.close_paren(open)?;
                self.depth -= 1;
                Ok(Filter::Not(Box::new(inner)))
            }
            Some(_) => self.attr_expr(),
        }
    }

    fn paren_follows(&self, mut at: usize) -> bool {
        let bytes = self.src.as_bytes();
        while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        bytes.get(at) == Some(&b'(')
    }

    fn close_paren(&mut self, open: usize) -> Result<()> {
        self.skip_ws();
        match self.peek() {
            Some(b')') => {
                self.pos += 1;
                Ok(())
            }
            None => Err(self.err(
                self.pos,
                format!("unbalanced parenthesis: '(' at offset {open} is never closed"),
            )),
            Some(_) => Err(self.err(
                self.pos,
                format!(
                    "expected 'and', 'or' or ')' closing the '(' at offset {open}, found {}",
                    self.found()
                ),
            )),
        }
    }

    fn close_bracket(&mut self, open: usize) -> Result<()> {
        self.skip_ws();
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                Ok(())
            }
            None => Err(self.err(
                self.pos,
                format!("unterminated value filter: '[' at offset {open} is never closed"),
            )),
            Some(_) => Err(self.err(
                self.pos,
                format!(
                    "expected 'and', 'or' or ']' closing the '[' at offset {open}, found {}",
                    self.found()
                ),
            )),
        }
    }

    /// `attrPath` followed by `pr`, `compareOp compValue` or `[valFilter]`.
    fn attr_expr(&mut self) -> Result<Filter> {
        let start = self.pos;
        let path = self.attr_path()?;
        if self.in_value_filter && (path.urn.is_some() || path.sub.is_some()) {
            return Err(self.err(
                start,
                format!(
                    "'{path}' inside a value filter must be a plain sub-attribute name \
                     (no schema URN, no '.')"
                ),
            ));
        }
        self.skip_ws();
        if self.peek() == Some(b'[') {
            return self.value_path(path);
        }
        self.attr_tail(start, path)
    }

    /// The part of an attrExp after its path: `pr` or `compareOp compValue`.
    fn attr_tail(&mut self, start: usize, path: AttrPath) -> Result<Filter> {
        self.count_term(start)?;
        self.skip_ws();
        let op_at = self.pos;
        let word = self.word_at(op_at);
        let Some(op) = compare_op(word) else {
            if word.eq_ignore_ascii_case("pr") {
                self.pos += 2;
                return Ok(Filter::Present(path));
            }
            let is_not =
                path.urn.is_none() && path.sub.is_none() && path.name.eq_ignore_ascii_case("not");
            let message = if is_not {
                format!("expected '(' after 'not', found {}", self.found())
            } else {
                format!(
                    "expected compareOp (eq, ne, co, sw, ew, gt, ge, lt, le) or 'pr' \
                     after attribute path '{path}', found {}",
                    self.found()
                )
            };
            return Err(self.err(op_at, message));
        };
        self.pos += word.len();
        self.skip_ws();
        let value = self.comp_value(op)?;
        Ok(Filter::Compare { path, op, value })
    }

    fn value_path(&mut self, path: AttrPath) -> Result<Filter> {
        let open = self.pos;
        if self.in_value_filter {
            return Err(self.err(open, "value filters cannot be nested"));
        }
        if path.sub.is_some() {
            return Err(self.err(
                open,
                format!("a value filter cannot follow the sub-attribute path '{path}'"),
            ));
        }
        let inner = self.bracketed(open)?;
        if self.peek() != Some(b'.') {
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(inner),
            });
        }
        // Lenient extension (see the module docs): `x[f].sub op v` means
        // `x[f and sub op v]`.
        self.pos += 1;
        let sub_at = self.pos;
        let name = self.name();
        if !is_attr_name(name) {
            return Err(self.err(
                sub_at,
                format!(
                    "expected a sub-attribute name after '].', found {}",
                    self.found()
                ),
            ));
        }
        if matches!(inner, Filter::Or(..)) {
            // The canonical form wraps the `or` in parentheses, one level
            // deeper than this input; reject here so printing never yields
            // a string the same limits refuse.
            self.check_depth(self.depth + 2, open)?;
        }
        let tail = self.attr_tail(sub_at, AttrPath::new(name))?;
        Ok(Filter::ValuePath {
            path,
            filter: Box::new(Filter::And(Box::new(inner), Box::new(tail))),
        })
    }

    /// `"[" valFilter "]"`, starting at the `[`.
    fn bracketed(&mut self, open: usize) -> Result<Filter> {
        self.pos += 1;
        self.enter(open)?;
        self.in_value_filter = true;
        let inner = self.or_expr()?;
        self.close_bracket(open)?;
        self.in_value_filter = false;
        self.depth -= 1;
        Ok(inner)
    }

    fn attr_path(&mut self) -> Result<AttrPath> {
        let start = self.pos;
        let text = self.token();
        if text.is_empty() {
            return Err(self.err(
                start,
                format!("expected an attribute path, found {}", self.found()),
            ));
        }
        AttrPath::parse(text).map_err(|e| {
            let why = match e {
                Error::InvalidPath(m) => m,
                other => other.to_string(),
            };
            self.err(start, format!("invalid attribute path {why}"))
        })
    }

    fn comp_value(&mut self, op: CompareOp) -> Result<CompValue> {
        let start = self.pos;
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'-' | b'0'..=b'9') => {
                let token = self.token();
                json_number(token)
                    .map(CompValue::Number)
                    .map_err(|why| self.err(start, format!("invalid number '{token}': {why}")))
            }
            None | Some(b'(' | b')' | b'[' | b']') => Err(self.err(
                start,
                format!(
                    "expected a comparison value after '{op}', found {}",
                    self.found()
                ),
            )),
            Some(_) => {
                let token = self.token();
                if token.eq_ignore_ascii_case("true") {
                    Ok(CompValue::Boolean(true))
                } else if token.eq_ignore_ascii_case("false") {
                    Ok(CompValue::Boolean(false))
                } else if token.eq_ignore_ascii_case("null") {
                    Ok(CompValue::Null)
                } else {
                    Err(self.err(
                        start,
                        format!(
                            "unquoted value '{token}': string values must be JSON strings \
                             in double quotes (e.g. \"{token}\")"
                        ),
                    ))
                }
            }
        }
    }

    /// A JSON string literal, starting at its opening quote.
    fn string(&mut self) -> Result<CompValue> {
        let open = self.pos;
        let bytes = self.src.as_bytes();
        let mut i = open + 1;
        let mut needs_decoding = false;
        loop {
            match bytes.get(i) {
                None => return Err(self.err(open, "unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => {
                    needs_decoding = true;
                    i += 2;
                }
                Some(&b) => {
                    needs_decoding |= b < 0x20;
                    i += 1;
                }
            }
        }
        self.pos = i + 1;
        if !needs_decoding {
            let body = self.src.get(open + 1..i).unwrap_or("");
            return Ok(CompValue::String(body.to_owned()));
        }
        // Escapes (including \uXXXX surrogate pairs) and the rejection of raw
        // control characters are exactly JSON's, so JSON's decoder does them.
        let literal = self.src.get(open..=i).unwrap_or("");
        serde_json::from_str::<String>(literal)
            .map(CompValue::String)
            .map_err(|e| {
                // serde_json reports the column just past the problem; point
                // at the escape or control character that starts it instead.
                let reported = (open + e.column()).saturating_sub(1).min(i);
                let at = bytes
                    .get(open..=reported)
                    .and_then(|b| b.iter().rposition(|&c| c == b'\\' || c < 0x20))
                    .map_or(open, |p| open + p);
                self.err(
                    at,
                    "invalid string: bad escape sequence or unescaped control character",
                )
            })
    }

    fn patch_path(&mut self) -> Result<PatchPath> {
        self.skip_ws();
        if self.peek().is_none() {
            return Err(self.err(self.pos, "empty path"));
        }
        let attr = self.attr_path()?;
        if self.peek() != Some(b'[') {
            return self.end_of_path(PatchPath {
                attr,
                filter: None,
                sub: None,
            });
        }
        let open = self.pos;
        if attr.sub.is_some() {
            return Err(self.err(
                open,
                format!("a value filter cannot follow the sub-attribute path '{attr}'"),
            ));
        }
        let filter = self.bracketed(open)?;
        let sub = if self.peek() == Some(b'.') {
            self.pos += 1;
            let at = self.pos;
            let name = self.name();
            if !is_attr_name(name) {
                return Err(self.err(
                    at,
                    format!(
                        "expected a sub-attribute name after '].', found {}",
                        self.found()
                    ),
                ));
            }
            Some(name.to_owned())
        } else {
            None
        };
        self.end_of_path(PatchPath {
            attr,
            filter: Some(filter),
            sub,
        })
    }

    fn end_of_path(&mut self, path: PatchPath) -> Result<PatchPath> {
        self.skip_ws();
        if self.peek().is_some() {
            return Err(self.err(
                self.pos,
                format!("trailing input after path, found {}", self.found()),
            ));
        }
        Ok(path)
    }
}
