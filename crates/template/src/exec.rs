//! Execution: walks a parsed tree with a dot and Go's variable scoping, evaluating pipelines,
//! field chains, function calls (`and`/`or` short-circuit) and the control actions, and
//! reports failures at the node that failed.

use std::fmt;

use crate::builtins;
use crate::error::{Error, FuncError};
use crate::gofmt::{self, quote};
use crate::parse::{Arg, ArgKind, Branch, Command, Node, Pipe, Tree};
use crate::value::Value;
use crate::{Funcs, MissingKey, Template};

/// How deep `template` calls may nest; Go allows far more, but a recursive template in an
/// alert rule is a mistake, and deep recursion would exhaust the thread's stack.
pub(crate) const MAX_DEPTH: usize = 100;

pub(crate) fn execute(
    tmpl: &Template,
    tree: &Tree,
    dot: &Value,
    funcs: &Funcs<'_>,
) -> Result<String, Error> {
    let mut st = State {
        tmpl,
        funcs,
        tree,
        out: String::new(),
        vars: vec![("$".into(), dot.clone())],
        depth: 0,
    };
    st.walk(dot, &tree.root)?;
    Ok(st.out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

struct State<'t, 'f> {
    tmpl: &'t Template,
    funcs: &'t Funcs<'f>,
    tree: &'t Tree,
    out: String,
    vars: Vec<(String, Value)>,
    depth: usize,
}

struct TemplateCall<'a>(&'a str, Option<&'a Pipe>);

impl fmt::Display for TemplateCall<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(p) => write!(f, "{{{{template {} {p}}}}}", quote(self.0)),
            None => write!(f, "{{{{template {}}}}}", quote(self.0)),
        }
    }
}

impl<'t> State<'t, '_> {
    fn fail(&self, pos: usize, ctx: &dyn fmt::Display, msg: impl Into<String>) -> Error {
        let text = &self.tree.text;
        let mut pos = pos.min(text.len());
        while !text.is_char_boundary(pos) {
            pos -= 1;
        }
        let before = &text[..pos];
        let line = 1 + before.matches('\n').count();
        let col = before.rfind('\n').map_or(pos, |i| pos - i - 1);
        Error::Exec {
            location: format!("{}:{line}:{col}", self.tree.parse_name),
            template: self.tree.name.clone(),
            context: ctx.to_string(),
            msg: msg.into(),
        }
    }

    fn func_fail(&self, pos: usize, ctx: &dyn fmt::Display, name: &str, e: FuncError) -> Error {
        let msg = match e {
            FuncError::Failed(m) => format!("error calling {name}: {m}"),
            e @ FuncError::ArgCount { .. } => format!("wrong number of args for {name}: {e}"),
            e => e.to_string(),
        };
        self.fail(pos, ctx, msg)
    }

    fn walk(&mut self, dot: &Value, list: &'t [Node]) -> Result<Flow, Error> {
        for node in list {
            let flow = self.walk_node(dot, node)?;
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_node(&mut self, dot: &Value, node: &'t Node) -> Result<Flow, Error> {
        match node {
            Node::Text(t) => self.out.push_str(t),
            Node::Action(pipe) => {
                let v = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.print_value(&v);
                }
            }
            Node::If(b) => return self.walk_if_with(dot, b, false),
            Node::With(b) => return self.walk_if_with(dot, b, true),
            Node::Range(b) => return self.walk_range(dot, b),
            Node::Template { pos, name, pipe } => {
                self.walk_template(dot, *pos, name, pipe.as_ref())?
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn print_value(&mut self, v: &Value) {
        match v {
            Value::Nil => self.out.push_str("<no value>"),
            Value::Str(s) => self.out.push_str(s),
            v => self.out.push_str(&gofmt::sprint(std::slice::from_ref(v))),
        }
    }

    fn walk_if_with(&mut self, dot: &Value, b: &'t Branch, with: bool) -> Result<Flow, Error> {
        // Variables declared in the pipeline or the branches end with the control's {{end}}.
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let flow = if val.is_true() {
            if with {
                self.walk(&val, &b.list)
            } else {
                self.walk(dot, &b.list)
            }
        } else if let Some(e) = &b.else_list {
            self.walk(dot, e)
        } else {
            Ok(Flow::Normal)
        };
        self.vars.truncate(mark);
        flow
    }

    fn walk_range(&mut self, dot: &Value, b: &'t Branch) -> Result<Flow, Error> {
        let mark_outer = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let mark = self.vars.len();
        let val = val.underlying();
        let items: Vec<(Value, Value)> = match &val {
            Value::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v.clone()))
                .collect(),
            Value::Map(m) => m
                .iter()
                .map(|(k, v)| (Value::Str(k.clone()), v.clone()))
                .collect(),
            Value::Int(n) => {
                if b.pipe.decl.len() > 1 {
                    return Err(self.fail(
                        b.pipe.pos,
                        &b.pipe,
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect()
            }
            Value::Nil => Vec::new(),
            other => {
                return Err(self.fail(
                    b.pipe.pos,
                    &b.pipe,
                    format!("range can't iterate over {other}"),
                ))
            }
        };
        let empty = items.is_empty();
        for (index, elem) in items {
            self.set_range_vars(&b.pipe, index, elem.clone())?;
            let flow = self.walk(&elem, &b.list);
            self.vars.truncate(mark);
            if flow? == Flow::Break {
                break;
            }
        }
        let flow = match (&b.else_list, empty) {
            (Some(e), true) => self.walk(dot, e),
            _ => Ok(Flow::Normal),
        };
        self.vars.truncate(mark_outer);
        flow.map(|_| Flow::Normal)
    }

    fn set_range_vars(&mut self, pipe: &Pipe, index: Value, elem: Value) -> Result<(), Error> {
        match (pipe.decl.as_slice(), pipe.is_assign) {
            ([], _) => {}
            ([v], true) => self.set_var(v, elem, pipe)?,
            ([i, v, ..], true) => {
                self.set_var(i, index, pipe)?;
                self.set_var(v, elem, pipe)?;
            }
            // Declared variables were pushed by the pipeline: the element is on top, the
            // index (with two variables) below it.
            (decl, false) => {
                let n = self.vars.len();
                if let Some(top) = self.vars.last_mut() {
                    top.1 = elem;
                }
                if decl.len() > 1 && n >= 2 {
                    self.vars[n - 2].1 = index;
                }
            }
        }
        Ok(())
    }

    fn walk_template(
        &mut self,
        dot: &Value,
        pos: usize,
        name: &str,
        pipe: Option<&'t Pipe>,
    ) -> Result<(), Error> {
        let ctx = TemplateCall(name, pipe);
        let tmpl = self.tmpl;
        let Some(tree) = tmpl.trees.get(name) else {
            return Err(self.fail(pos, &ctx, format!("template {} not defined", quote(name))));
        };
        if self.depth >= MAX_DEPTH {
            return Err(self.fail(
                pos,
                &ctx,
                format!("exceeded maximum template depth ({MAX_DEPTH})"),
            ));
        }
        // Variables declared by the pipeline persist in the caller.
        let new_dot = match pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Value::Nil,
        };
        // No dynamic scoping: the called template sees only `$`.
        let saved_vars = std::mem::replace(&mut self.vars, vec![("$".into(), new_dot.clone())]);
        let saved_tree = std::mem::replace(&mut self.tree, tree);
        self.depth += 1;
        let res = self.walk(&new_dot, &tree.root);
        self.depth -= 1;
        self.tree = saved_tree;
        self.vars = saved_vars;
        res.map(|_| ())
    }

    fn var_value(&self, name: &str, node: &Arg) -> Result<Value, Error> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.fail(node.pos, node, format!("undefined variable: {name}")))
    }

    fn set_var(&mut self, name: &str, value: Value, pipe: &Pipe) -> Result<(), Error> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = value;
                Ok(())
            }
            None => Err(self.fail(pipe.pos, pipe, format!("undefined variable: {name}"))),
        }
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: &'t Pipe) -> Result<Value, Error> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            let v = self.eval_command(dot, cmd, value.take())?;
            value = Some(v);
        }
        let v = value.unwrap_or_default();
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, v.clone(), pipe)?;
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn not_a_function(&self, cmd: &Command, fin: &Option<Value>) -> Result<(), Error> {
        if cmd.args.len() > 1 || fin.is_some() {
            if let Some(first) = cmd.args.first() {
                return Err(self.fail(
                    first.pos,
                    first,
                    format!("can't give argument to non-function {first}"),
                ));
            }
        }
        Ok(())
    }

    fn eval_command(
        &mut self,
        dot: &Value,
        cmd: &'t Command,
        fin: Option<Value>,
    ) -> Result<Value, Error> {
        let Some(first) = cmd.args.first() else {
            return Ok(Value::Nil);
        };
        let rest = &cmd.args[1..];
        match &first.kind {
            ArgKind::Field(names) => {
                return self.eval_fields(dot, dot.clone(), first, names, rest, fin)
            }
            ArgKind::Chain(inner, names) => {
                let recv = self.eval_arg(dot, inner)?;
                return self.eval_fields(dot, recv, first, names, rest, fin);
            }
            ArgKind::Ident(name) => return self.eval_function(dot, name, cmd.pos, cmd, rest, fin),
            ArgKind::Var(v, names) => {
                let val = self.var_value(v, first)?;
                if names.is_empty() {
                    self.not_a_function(cmd, &fin)?;
                    return Ok(val);
                }
                return self.eval_fields(dot, val, first, names, rest, fin);
            }
            ArgKind::Pipe(p) => {
                self.not_a_function(cmd, &fin)?;
                return self.eval_pipeline(dot, p);
            }
            _ => {}
        }
        self.not_a_function(cmd, &fin)?;
        Ok(match &first.kind {
            ArgKind::Bool(b) => Value::Bool(*b),
            ArgKind::Dot => dot.clone(),
            ArgKind::Nil => return Err(self.fail(first.pos, first, "nil is not a command")),
            ArgKind::Number { value, .. } => value.clone(),
            ArgKind::Str { value, .. } => Value::Str(value.clone()),
            _ => Value::Nil,
        })
    }

    fn eval_arg(&mut self, dot: &Value, arg: &'t Arg) -> Result<Value, Error> {
        Ok(match &arg.kind {
            ArgKind::Dot => dot.clone(),
            ArgKind::Nil => Value::Nil,
            ArgKind::Bool(b) => Value::Bool(*b),
            ArgKind::Number { value, .. } => value.clone(),
            ArgKind::Str { value, .. } => Value::Str(value.clone()),
            ArgKind::Field(names) => self.eval_fields(dot, dot.clone(), arg, names, &[], None)?,
            ArgKind::Var(v, names) => {
                let val = self.var_value(v, arg)?;
                if names.is_empty() {
                    val
                } else {
                    self.eval_fields(dot, val, arg, names, &[], None)?
                }
            }
            ArgKind::Pipe(p) => self.eval_pipeline(dot, p)?,
            ArgKind::Ident(name) => self.eval_function(dot, name, arg.pos, arg, &[], None)?,
            ArgKind::Chain(inner, names) => {
                let recv = self.eval_arg(dot, inner)?;
                self.eval_fields(dot, recv, arg, names, &[], None)?
            }
        })
    }

    /// `recv.a.b.c args...`: only the last field or method gets the arguments.
    fn eval_fields(
        &mut self,
        dot: &Value,
        recv: Value,
        node: &'t Arg,
        names: &[String],
        args: &'t [Arg],
        mut fin: Option<Value>,
    ) -> Result<Value, Error> {
        let mut v = recv;
        for (i, name) in names.iter().enumerate() {
            v = if i + 1 == names.len() {
                self.eval_field(dot, name, node, args, fin.take(), v)?
            } else {
                self.eval_field(dot, name, node, &[], None, v)?
            };
        }
        Ok(v)
    }

    fn eval_field(
        &mut self,
        dot: &Value,
        name: &str,
        node: &'t Arg,
        args: &'t [Arg],
        fin: Option<Value>,
        recv: Value,
    ) -> Result<Value, Error> {
        let has_args = !args.is_empty() || fin.is_some();
        match &recv {
            Value::Nil => {
                if self.tmpl.missing_key == MissingKey::Error {
                    return Err(self.fail(
                        node.pos,
                        node,
                        format!("nil data; no entry for key {}", quote(name)),
                    ));
                }
                Ok(Value::Nil)
            }
            Value::Map(m) => {
                if has_args {
                    return Err(self.fail(
                        node.pos,
                        node,
                        format!("{name} is not a method but has arguments"),
                    ));
                }
                match m.get(name) {
                    Some(v) => Ok(v.clone()),
                    None => match self.tmpl.missing_key {
                        MissingKey::Default => Ok(Value::Nil),
                        MissingKey::Zero => Ok(m.zero()),
                        MissingKey::Error => Err(self.fail(
                            node.pos,
                            node,
                            format!("map has no entry for key {}", quote(name)),
                        )),
                    },
                }
            }
            Value::Object(o) => {
                let mut argv = Vec::with_capacity(args.len() + 1);
                for a in args {
                    argv.push(self.eval_arg(dot, a)?);
                }
                argv.extend(fin);
                match o.field(name, &argv) {
                    Some(Ok(v)) => Ok(v),
                    Some(Err(e)) => Err(self.func_fail(node.pos, node, name, e)),
                    None if matches!(o.underlying(), Some(Value::Map(_))) => {
                        let inner = o.underlying().unwrap_or_default();
                        if !argv.is_empty() {
                            return Err(self.fail(
                                node.pos,
                                node,
                                format!("{name} is not a method but has arguments"),
                            ));
                        }
                        self.eval_field(dot, name, node, &[], None, inner)
                    }
                    None => Err(self.fail(
                        node.pos,
                        node,
                        format!("can't evaluate field {name} in type {}", o.type_name()),
                    )),
                }
            }
            other => Err(self.fail(
                node.pos,
                node,
                format!("can't evaluate field {name} in type {}", other.type_name()),
            )),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        name: &str,
        pos: usize,
        ctx: &dyn fmt::Display,
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> Result<Value, Error> {
        let user = self.funcs.get(name);
        let builtin = match user {
            Some(_) => None,
            None => builtins::lookup(name),
        };
        if user.is_none() && builtin.is_none() {
            return Err(self.fail(
                pos,
                ctx,
                format!("{} is not a defined function", quote(name)),
            ));
        }
        if builtin.is_some() && (name == "and" || name == "or") {
            if args.is_empty() && fin.is_none() {
                let e = FuncError::ArgCount {
                    want: 1,
                    got: 0,
                    at_least: true,
                };
                return Err(self.func_fail(pos, ctx, name, e));
            }
            // Arguments are evaluated only until the result is known; the piped value comes
            // last.
            let stop_on = name == "or";
            let mut v = Value::Nil;
            for a in args {
                v = self.eval_arg(dot, a)?;
                if v.is_true() == stop_on {
                    return Ok(v);
                }
            }
            return Ok(fin.unwrap_or(v));
        }
        let mut argv = Vec::with_capacity(args.len() + 1);
        for a in args {
            argv.push(self.eval_arg(dot, a)?);
        }
        argv.extend(fin);
        let res = match (user, builtin) {
            (Some(f), _) => f(&argv),
            (None, Some(b)) => b(&argv),
            (None, None) => Ok(Value::Nil),
        };
        res.map_err(|e| self.func_fail(pos, ctx, name, e))
    }
}
