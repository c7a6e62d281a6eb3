//! Expression depth: the limit on how deeply a query may nest, the cheap text scan that enforces
//! it before the parser sees the query, the iterative walks (depth, drop) that never recurse, and
//! the large-stack threads that parse and evaluate deep-but-allowed expressions.
//!
//! Everything that touches an AST recursively (promql-parser's type checks while parsing, its
//! `Display`, our evaluator, the compiler-generated `Drop`) uses stack in proportion to the
//! depth, so an unbounded depth is a crash on input. The parser's type checks are also quadratic
//! in the length of an operator chain, which is why the depth is bounded from the text before
//! parsing rather than from the AST after it.

use promql_parser::parser::{Expr, NumberLiteral};

use crate::{Error, Result};

/// The deepest expression accepted (AST nodes on the longest root-to-leaf path). Prometheus has
/// no explicit limit and evaluates 20,000-term sums; this is above that with room to spare.
pub const MAX_DEPTH: usize = 25_000;

/// Expressions up to this depth are parsed, evaluated and dropped on the caller's thread, which
/// may be a 2 MiB tokio worker; deeper ones get a thread with a stack sized for them. A debug
/// build's evaluator takes up to 32 KiB per level, so this keeps within half of such a stack.
pub(crate) const INLINE_DEPTH: usize = 16;

/// The deepest expression `/api/v1/format_query` pretty-prints (see [`Parsed::prettify`]).
pub const MAX_PRETTY_DEPTH: usize = 256;

/// Stack of a thread for a deep expression: a base plus this much per level. A debug build's
/// evaluator needs 21 to 32 KiB per level of nested calls (release builds far less); the margin
/// is kept because only the pages a query touches are ever committed, the rest is address space.
const STACK_PER_LEVEL: usize = 64 << 10;
const STACK_BASE: usize = 64 << 20;

fn stack_for(depth: usize) -> usize {
    STACK_BASE.saturating_add(depth.saturating_mul(STACK_PER_LEVEL))
}

/// An upper bound on the AST depth of `q`, from its text alone, in one pass without recursion.
///
/// Every AST node above a leaf has a token of its own: an operator (binary or unary, symbol or
/// keyword), an opening parenthesis (parentheses, calls, aggregations) or bracket (subqueries,
/// range selectors). Within one parenthesised group, a root-to-leaf path passes at most through
/// every operator of the group and then one nested group, so the bound is the largest sum of
/// operator counts (plus one per group) along any chain of nested groups. It is exact for
/// operator chains and nested calls, and never below the real depth.
pub fn depth_bound(q: &str) -> usize {
    // Per open group: operators seen directly in it, and the deepest bound of its closed children.
    let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
    let b = q.as_bytes();
    let mut i = 0;
    let mut in_braces = false;
    let close = |stack: &mut Vec<(usize, usize)>| {
        if stack.len() > 1 {
            if let Some((ops, child)) = stack.pop() {
                let depth = ops + child + 1;
                if let Some(parent) = stack.last_mut() {
                    parent.1 = parent.1.max(depth);
                }
            }
        }
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                // Strings hold no structure; a backslash escapes in all but raw strings.
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' => in_braces = true,
            b'}' => in_braces = false,
            _ if in_braces => {}
            b'(' => stack.push((0, 0)),
            b')' => close(&mut stack),
            b'[' => {
                if let Some(top) = stack.last_mut() {
                    top.0 += 1;
                }
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'=' | b'!' | b'<' | b'>' => {
                // `==`, `!=`, `<=` and `>=` are one operator each.
                let second = c == b'=' && i > 0 && matches!(b[i - 1], b'=' | b'!' | b'<' | b'>');
                if let Some(top) = stack.last_mut().filter(|_| !second) {
                    top.0 += 1;
                }
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &q[start..i];
                if ["and", "or", "unless", "atan2"]
                    .iter()
                    .any(|k| word.eq_ignore_ascii_case(k))
                {
                    if let Some(top) = stack.last_mut() {
                        top.0 += 1;
                    }
                }
                continue;
            }
            _ if c.is_ascii_digit() || c == b'.' => {
                // Numbers and durations (`1e-3` is one token: its sign is no operator, but in
                // `0x1e-1` it is).
                let hex = c == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X'));
                let mut signed = hex;
                i += 1;
                while i < b.len() {
                    if b[i] == b'-' || b[i] == b'+' {
                        if signed || !matches!(b[i - 1], b'e' | b'E') {
                            break;
                        }
                        signed = true;
                    } else if !(b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                        break;
                    }
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    // Unclosed groups still count (the parser refuses them, but only after building them).
    while stack.len() > 1 {
        close(&mut stack);
    }
    stack.first().map_or(1, |(ops, child)| ops + child + 1)
}

/// The direct sub-expressions of `e`.
fn children(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::Aggregate(a) => {
            let mut v = vec![a.expr.as_ref()];
            if let Some(p) = &a.param {
                v.push(p.as_ref());
            }
            v
        }
        Expr::Unary(u) => vec![u.expr.as_ref()],
        Expr::Binary(b) => vec![b.lhs.as_ref(), b.rhs.as_ref()],
        Expr::Paren(p) => vec![p.expr.as_ref()],
        Expr::Subquery(s) => vec![s.expr.as_ref()],
        Expr::Call(c) => c.args.args.iter().map(|a| a.as_ref()).collect(),
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => Vec::new(),
    }
}

/// The AST depth of `e` (a leaf is 1), walked with a heap stack.
pub fn ast_depth(e: &Expr) -> usize {
    let mut max = 0;
    let mut todo = vec![(e, 1usize)];
    while let Some((e, d)) = todo.pop() {
        max = max.max(d);
        todo.extend(children(e).into_iter().map(|c| (c, d + 1)));
    }
    max
}

/// Drops `e` node by node, so a deep tree does not recurse through `Drop`.
pub(crate) fn drop_expr(e: Expr) {
    fn take(b: &mut Expr) -> Expr {
        std::mem::replace(b, Expr::NumberLiteral(NumberLiteral { val: 0.0 }))
    }
    let mut todo = vec![e];
    while let Some(mut e) = todo.pop() {
        match &mut e {
            Expr::Aggregate(a) => {
                todo.push(take(&mut a.expr));
                if let Some(p) = &mut a.param {
                    todo.push(take(p));
                }
            }
            Expr::Unary(u) => todo.push(take(&mut u.expr)),
            Expr::Binary(b) => {
                todo.push(take(&mut b.lhs));
                todo.push(take(&mut b.rhs));
            }
            Expr::Paren(p) => todo.push(take(&mut p.expr)),
            Expr::Subquery(s) => todo.push(take(&mut s.expr)),
            Expr::Call(c) => {
                for a in &mut c.args.args {
                    todo.push(take(a));
                }
            }
            _ => {}
        }
    }
}

pub(crate) fn too_deep(depth: usize) -> Error {
    Error::Parse(format!(
        "expression nesting depth {depth} exceeds the limit of {MAX_DEPTH}"
    ))
}

/// Runs `f`, whose recursion goes `depth` levels deep, on a thread with a stack for that and
/// waits for it.
pub(crate) fn on_deep_stack<T: Send>(depth: usize, f: impl FnOnce() -> T + Send) -> Result<T> {
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name("promql-deep".into())
            .stack_size(stack_for(depth))
            .spawn_scoped(s, f)
            .map_err(|e| Error::Execution(format!("cannot start a query thread: {e}")))?;
        h.join()
            .map_err(|_| Error::Execution("query thread panicked".into()))
    })
}

/// A parsed expression whose depth is within [`MAX_DEPTH`]. It derefs to the AST; dropping it
/// never recurses, and deep trees are evaluated and rendered on a large stack.
#[derive(Debug)]
pub struct Parsed {
    expr: Option<Expr>,
    depth: usize,
}

impl Parsed {
    /// Nodes on the longest root-to-leaf path.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Whether recursive work on this tree needs a large stack.
    pub(crate) fn is_deep(&self) -> bool {
        self.depth > INLINE_DEPTH
    }

    /// Runs `f` on the tree, on a large-stack thread when the tree is deep.
    pub fn with<T: Send>(&self, f: impl FnOnce(&Expr) -> T + Send) -> Result<T> {
        let e: &Expr = self;
        if self.is_deep() {
            on_deep_stack(self.depth, || f(e))
        } else {
            Ok(f(e))
        }
    }

    /// promql-parser's pretty printer (recursive, hence [`Parsed::with`]). Its time grows with
    /// the cube of the depth (2,000 levels take half a minute) and its output, indented per
    /// level, with the square, so formatting has a limit of its own.
    pub fn prettify(&self) -> Result<String> {
        if self.depth > MAX_PRETTY_DEPTH {
            return Err(Error::Parse(format!(
                "expression nesting depth {} exceeds the limit of {MAX_PRETTY_DEPTH} for formatting",
                self.depth
            )));
        }
        self.with(|e| e.prettify())
    }

    /// The bare tree, for callers that keep only shallow ones (the test-script runner).
    pub fn into_expr(mut self) -> Expr {
        self.expr
            .take()
            .unwrap_or(Expr::NumberLiteral(NumberLiteral { val: 0.0 }))
    }
}

impl std::ops::Deref for Parsed {
    type Target = Expr;
    fn deref(&self) -> &Expr {
        // Only `into_expr` and `drop` empty it, and both consume the value.
        const EMPTY: Expr = Expr::NumberLiteral(NumberLiteral { val: 0.0 });
        self.expr.as_ref().unwrap_or(&EMPTY)
    }
}

impl Drop for Parsed {
    fn drop(&mut self) {
        if let Some(e) = self.expr.take() {
            if self.depth > INLINE_DEPTH {
                drop_expr(e);
            }
        }
    }
}

/// Refuses `q` when its text bound is over the limit; parses it when it is shallow enough to be
/// parsed cheaply on this thread (`Some`); `None` when it is deep but allowed, so that parsing is
/// better left to the evaluation thread (promql-parser's type checks are quadratic in the length
/// of an operator chain: a 20,000-term sum takes a noticeable time to parse).
pub fn parse_if_shallow(q: &str) -> Result<Option<Parsed>> {
    let bound = depth_bound(q);
    if bound > SCAN_REFUSAL {
        return Err(too_deep(bound));
    }
    if bound > INLINE_DEPTH {
        return Ok(None);
    }
    parse_measured(q).map(Some)
}

/// `promql_parser::parser::parse`, after refusing the durations it would panic on: the parser
/// turns a duration into `std::time::Duration` with `from_secs_f64`, which panics on a value that
/// is infinite, NaN, negative or beyond `u64::MAX` seconds (`x[1e3085]`, `x offset Inf`). A panic
/// cannot be caught where panics abort (the fuzz build), and a query must never take down the
/// request that carries it, so such a value is a parse error before the parser sees it.
pub(crate) fn parse_guarded(q: &str) -> std::result::Result<promql_parser::parser::Expr, String> {
    out_of_range_duration(q)?;
    promql_parser::parser::parse(q)
}

/// The first duration in `q` that `Duration::from_secs_f64` would panic on, as an error naming it.
/// A duration is a `DURATION` token, or a `NUMBER` token where the grammar reads a duration: right
/// after `[`, after the `:` of a subquery, or after `offset` (optionally followed by `-`).
fn out_of_range_duration(q: &str) -> std::result::Result<(), String> {
    use lrpar::{Lexeme, Lexer, NonStreamingLexer};
    use promql_parser::parser::token::{
        T_COLON, T_DURATION, T_LEFT_BRACKET, T_NUMBER, T_OFFSET, T_SUB,
    };
    // A lexing error is the parser's to report, with its own message.
    let Ok(lexer) = promql_parser::parser::lexer(q) else {
        return Ok(());
    };
    let mut prev: [Option<u16>; 2] = [None, None];
    for lexeme in lexer.iter().flatten() {
        let tok = lexeme.tok_id();
        let reads_duration = tok == T_DURATION
            || (tok == T_NUMBER
                && (matches!(prev[0], Some(T_LEFT_BRACKET | T_COLON | T_OFFSET))
                    || (prev[0] == Some(T_SUB) && prev[1] == Some(T_OFFSET))));
        if reads_duration {
            let text = lexer.span_str(lexeme.span());
            // The parser's own readings: a DURATION that is a plain number is `f64` seconds, a
            // NUMBER goes through `parse_str_radix`; unit durations such as `5m` are summed
            // with overflow checks by the parser and need no guard.
            let secs = if tok == T_DURATION {
                text.parse::<f64>().ok()
            } else {
                promql_parser::util::parse_str_radix(text).ok()
            };
            if let Some(secs) = secs {
                if !(secs.is_finite() && (0.0..MAX_DURATION_SECS).contains(&secs)) {
                    return Err(format!(
                        "duration {text:?} at char {} is out of range",
                        lexeme.span().start() + 1
                    ));
                }
            }
        }
        prev = [Some(tok), prev[0]];
    }
    Ok(())
}

/// `u64::MAX` seconds, the largest `Duration` (as f64 this rounds up to 2^64, which is itself
/// out of range, so the comparison is exclusive).
const MAX_DURATION_SECS: f64 = u64::MAX as f64;

fn parse_measured(q: &str) -> Result<Parsed> {
    let expr = parse_guarded(q).map_err(|m| Error::Parse(crate::errpos::locate(q, &m)))?;
    let depth = ast_depth(&expr);
    let p = Parsed {
        expr: Some(expr),
        depth,
    };
    if depth > MAX_DEPTH {
        return Err(too_deep(depth));
    }
    Ok(p)
}

/// Text bounds above this are refused without parsing. The bound is exact for operator chains
/// and nesting, the shapes that reach the limit, and parsing far deeper text only to measure it
/// would cost the quadratic parse for nothing; just above the limit, where the bound may count a
/// folded sign (`-1`) or a modifier's parentheses, the tree is measured exactly.
const SCAN_REFUSAL: usize = MAX_DEPTH + MAX_DEPTH / 4;

/// Parses `q` within the depth limit: the text bound refuses what is far too deep before the
/// parser runs; what may be deep is parsed on a large stack and measured.
pub(crate) fn parse_limited(q: &str) -> Result<Parsed> {
    let bound = depth_bound(q);
    if bound > SCAN_REFUSAL {
        return Err(too_deep(bound));
    }
    if bound <= INLINE_DEPTH {
        parse_measured(q)
    } else {
        on_deep_stack(bound, || parse_measured(q))?
    }
}
