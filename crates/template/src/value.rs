//! The values templates work on: Go's dynamic values reduced to what templates use (nil, bool,
//! int, float64, string, lists, string-keyed maps) plus caller-defined objects with fields and
//! methods. Also Go's truth rule and the Go type names errors and `%T` show.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::error::FuncError;

/// A template value. Lists and maps sit behind `Arc` because execution copies values freely
/// (dot, variables, range elements).
#[derive(Clone, Default)]
pub enum Value {
    /// Go's nil, and the "no value" of a missing map key or an absent dot.
    #[default]
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Arc<Vec<Value>>),
    Map(Arc<Map>),
    Object(Arc<dyn Object>),
}

/// The element type of a map, which decides what a missing key reads as under
/// `missingkey=zero` and `index`: Go's zero value of that type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Elem {
    /// `interface{}` elements: a missing key is no value.
    #[default]
    Any,
    Str,
    Int,
    Float,
    Bool,
}

impl Elem {
    fn zero(self) -> Value {
        match self {
            Elem::Any => Value::Nil,
            Elem::Str => Value::Str(String::new()),
            Elem::Int => Value::Int(0),
            Elem::Float => Value::Float(0.0),
            Elem::Bool => Value::Bool(false),
        }
    }

    fn go_name(self) -> &'static str {
        match self {
            Elem::Any => "interface {}",
            Elem::Str => "string",
            Elem::Int => "int",
            Elem::Float => "float64",
            Elem::Bool => "bool",
        }
    }
}

/// A map with string keys, iterated in key order as Go's templates and fmt do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map {
    entries: BTreeMap<String, Value>,
    elem: Elem,
}

impl Map {
    pub fn new(elem: Elem) -> Self {
        Map {
            entries: BTreeMap::new(),
            elem,
        }
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.entries.insert(key.into(), value.into());
        self
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key)
    }

    /// What `index` reads for `key`: the entry, or the element type's zero value.
    pub fn get_or_zero(&self, key: &str) -> Value {
        self.entries
            .get(key)
            .cloned()
            .unwrap_or_else(|| self.elem.zero())
    }

    pub fn zero(&self) -> Value {
        self.elem.zero()
    }

    pub fn elem(&self) -> Elem {
        self.elem
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.entries.iter()
    }

    pub fn type_name(&self) -> String {
        format!("map[string]{}", self.elem.go_name())
    }
}

/// A caller-defined value with fields or methods (Go structs and types with methods, such as
/// a time or a query sample), reached with `.Name` in templates.
pub trait Object: fmt::Debug + Send + Sync {
    /// The Go type name shown in errors and by `%T`, e.g. `*time.Time`.
    fn type_name(&self) -> String;
    /// Field or method `name` called with `args`; `None` when there is no such field or method.
    fn field(&self, name: &str, args: &[Value]) -> Option<Result<Value, FuncError>>;
    /// How `print` and `%v` show it (Go's `String` method or struct printing).
    fn display(&self) -> String;
    /// For functions that take this object back as an argument.
    fn as_any(&self) -> &dyn Any;
    /// Truth in `if`, `with`, `and`, `or`, `not`.
    fn is_true(&self) -> bool {
        true
    }
    /// The list or map a Go named type with methods stands for (Alertmanager's `KV` is a
    /// `map[string]string`, `Alerts` a slice): `range`, `len`, `index`, `slice` and field
    /// lookups the object does not answer use it.
    fn underlying(&self) -> Option<Value> {
        None
    }
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items))
    }

    pub fn map(m: Map) -> Value {
        Value::Map(Arc::new(m))
    }

    /// A `map[string]string`, as Prometheus's label maps.
    pub fn str_map<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Value
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut m = Map::new(Elem::Str);
        for (k, v) in pairs {
            m.insert(k, Value::Str(v.into()));
        }
        Value::map(m)
    }

    pub fn object(o: impl Object + 'static) -> Value {
        Value::Object(Arc::new(o))
    }

    /// Go's truth: false, 0, nil and empty strings, lists and maps are false.
    pub fn is_true(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Object(o) => o.is_true(),
        }
    }

    /// The Go type name, as `%T` and error messages show it.
    pub fn type_name(&self) -> String {
        match self {
            Value::Nil => "<nil>".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Float(_) => "float64".into(),
            Value::Str(_) => "string".into(),
            Value::List(_) => "[]interface {}".into(),
            Value::Map(m) => m.type_name(),
            Value::Object(o) => o.type_name(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value itself, or the underlying list or map of an object that has one.
    pub fn underlying(&self) -> Value {
        match self {
            Value::Object(o) => o.underlying().unwrap_or_else(|| self.clone()),
            _ => self.clone(),
        }
    }

    /// The object of type `T` inside, if this is one.
    pub fn downcast<T: 'static>(&self) -> Option<&T> {
        match self {
            Value::Object(o) => o.as_any().downcast_ref::<T>(),
            _ => None,
        }
    }

    /// A string argument, or Go's error for a value of another type.
    pub fn expect_str(&self) -> Result<&str, FuncError> {
        self.as_str()
            .ok_or_else(|| FuncError::wrong_type("string", self))
    }
}

/// `%v`, as `print` shows the value.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::gofmt::sprint(std::slice::from_ref(self)))
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("Nil"),
            Value::Bool(b) => write!(f, "Bool({b})"),
            Value::Int(i) => write!(f, "Int({i})"),
            Value::Float(x) => write!(f, "Float({x})"),
            Value::Str(s) => write!(f, "Str({s:?})"),
            Value::List(l) => f.debug_list().entries(l.iter()).finish(),
            Value::Map(m) => f.debug_map().entries(m.iter()).finish(),
            Value::Object(o) => write!(f, "Object({o:?})"),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            (Value::Object(a), Value::Object(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i64::from(i))
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::list(v)
    }
}

impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Value::map(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_follows_go() {
        assert!(!Value::Nil.is_true());
        assert!(!Value::Int(0).is_true());
        assert!(Value::Float(f64::NAN).is_true());
        assert!(!Value::str("").is_true());
        assert!(!Value::list(vec![]).is_true());
        assert!(Value::list(vec![Value::Nil]).is_true());
        assert!(!Value::str_map(Vec::<(String, String)>::new()).is_true());
    }

    #[test]
    fn missing_keys_read_as_the_element_zero() {
        let Value::Map(m) = Value::str_map([("a", "b")]) else {
            panic!("not a map")
        };
        assert_eq!(m.get_or_zero("a"), Value::str("b"));
        assert_eq!(m.get_or_zero("x"), Value::str(""));
        assert_eq!(m.type_name(), "map[string]string");
        assert_eq!(Map::new(Elem::Any).get_or_zero("x"), Value::Nil);
    }
}
