//! A small pickle interpreter for checkpoints: only what a dict of numpy
//! arrays needs, and nothing that can run code.
//!
//! Python's `pickle` calls whatever global a stream names. This reader knows
//! six globals (numpy's `_reconstruct` under its two module names,
//! `numpy.ndarray`, `numpy.dtype`, `collections.OrderedDict`, and
//! `_codecs.encode` with the `latin1` codec, which protocol 2 uses for bytes)
//! and computes their results itself; any other global, and every opcode outside the list in
//! `Machine::step`, stops the read with an error naming it and its offset.
//! Memory is bounded by the input: a length is checked against the bytes
//! left before anything is allocated, shared values (memo, `DUP`) are
//! reference-counted rather than copied, and containers may nest at most
//! [`MAX_DEPTH`] deep.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Deepest nesting of containers (and of `MARK`s) a stream may build; a
/// checkpoint needs 3 (dict -> array state tuple -> shape tuple).
pub const MAX_DEPTH: usize = 32;

/// The numpy callables and classes a checkpoint may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `numpy.core.multiarray._reconstruct` (or `numpy._core.multiarray`).
    Reconstruct,
    /// `numpy.ndarray`.
    NdArray,
    /// `numpy.dtype`.
    Dtype,
    /// `collections.OrderedDict`.
    OrderedDict,
    /// `_codecs.encode`, only as `encode(text, "latin1")`: how protocol 2
    /// writes a bytes object (each character is one byte).
    Latin1Encode,
}

/// Element types of arrays this reader converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementType {
    /// `<f4`
    F32,
    /// `<f8`
    F64,
    /// `<f2`
    F16,
    /// `<i8`
    I64,
    /// `<i4`
    I32,
}

impl ElementType {
    fn from_numpy(code: &str) -> Option<Self> {
        Some(match code {
            "f4" => ElementType::F32,
            "f8" => ElementType::F64,
            "f2" => ElementType::F16,
            "i8" => ElementType::I64,
            "i4" => ElementType::I32,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            ElementType::F32 | ElementType::I32 => 4,
            ElementType::F64 | ElementType::I64 => 8,
            ElementType::F16 => 2,
        }
    }
}

/// A numpy array: filled in by `BUILD` after `_reconstruct` made it empty.
#[derive(Debug, Clone, Default)]
pub struct Array {
    /// Dimensions (empty until built).
    pub shape: Vec<usize>,
    /// Element type (None until built).
    pub dtype: Option<ElementType>,
    /// Whether the data is in Fortran (column-major) order.
    pub fortran: bool,
    /// Raw little-endian data.
    pub data: Rc<Vec<u8>>,
}

/// A numpy dtype object (`numpy.dtype('f4', False, True)` + `BUILD`).
#[derive(Debug, Clone)]
pub struct DtypeSpec {
    /// The numpy type code, e.g. `f4`.
    code: String,
    /// Byte order from the BUILD state (`<`, `>`, `|`, `=`).
    order: String,
}

/// A list or dict under construction. Once it is put inside another
/// container it is sealed: changing it then is an error. Real checkpoints
/// build containers bottom-up and never change a nested one; refusing it
/// rules out self-containing values (cycles) and keeps the depth recorded
/// here true, so no walk over a value can recurse without bound.
#[derive(Debug, Default)]
pub struct Container<T> {
    items: RefCell<Vec<T>>,
    depth: Cell<usize>,
    sealed: Cell<bool>,
}

impl<T: Clone> Container<T> {
    fn new(items: Vec<T>, depth: usize) -> Rc<Self> {
        Rc::new(Container { items: RefCell::new(items), depth: Cell::new(depth), sealed: Cell::new(false) })
    }

    /// A copy of the items.
    pub fn items(&self) -> Vec<T> {
        self.items.borrow().clone()
    }
}

/// An immutable tuple and its nesting depth.
#[derive(Debug)]
pub struct Tuple {
    /// The items.
    pub items: Vec<Value>,
    depth: usize,
}

/// A value on the pickle machine's stack.
#[derive(Debug, Clone)]
pub enum Value {
    /// `None`
    None,
    /// `True` / `False`
    Bool(bool),
    /// An integer that fits in i64.
    Int(i64),
    /// A float.
    Float(f64),
    /// A str.
    Str(Rc<str>),
    /// A bytes object.
    Bytes(Rc<Vec<u8>>),
    /// A tuple.
    Tuple(Rc<Tuple>),
    /// A list.
    List(Rc<Container<Value>>),
    /// A dict or OrderedDict, in insertion order.
    Dict(Rc<Container<(Value, Value)>>),
    /// One of the allowed globals.
    Global(Global),
    /// A numpy array (filled in by BUILD).
    Array(Rc<RefCell<Array>>),
    /// A numpy dtype (byte order set by BUILD).
    Dtype(Rc<RefCell<DtypeSpec>>),
}

impl Value {
    /// What kind of Python object this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Array(_) => "numpy array",
            Value::Dtype(_) => "numpy dtype",
        }
    }

    /// Nesting depth (0 for anything that holds no values).
    fn depth(&self) -> usize {
        match self {
            Value::Tuple(t) => t.depth,
            Value::List(c) => c.depth.get(),
            Value::Dict(c) => c.depth.get(),
            _ => 0,
        }
    }

    /// Marks a list or dict as nested (see [`Container`]); returns the depth.
    fn seal(&self) -> usize {
        match self {
            Value::List(c) => c.sealed.set(true),
            Value::Dict(c) => c.sealed.set(true),
            _ => {}
        }
        self.depth()
    }
}

/// Depth of a container holding `items`, or an error past [`MAX_DEPTH`].
fn nest<'v>(items: impl IntoIterator<Item = &'v Value>) -> Result<usize, String> {
    let depth = 1 + items.into_iter().map(Value::seal).max().unwrap_or(0);
    if depth > MAX_DEPTH {
        return Err(format!("values nest deeper than {MAX_DEPTH} levels"));
    }
    Ok(depth)
}

fn tuple(items: Vec<Value>) -> Result<Value, String> {
    let depth = nest(&items)?;
    Ok(Value::Tuple(Rc::new(Tuple { items, depth })))
}

fn list(items: Vec<Value>) -> Result<Value, String> {
    let depth = nest(&items)?;
    Ok(Value::List(Container::new(items, depth)))
}

fn dict(pairs: Vec<(Value, Value)>) -> Result<Value, String> {
    let depth = nest(pairs.iter().flat_map(|(k, v)| [k, v]))?;
    Ok(Value::Dict(Container::new(pairs, depth)))
}

/// Runs the pickle in `bytes` and returns the value it leaves. `Err` holds a
/// one-line reason with the byte offset.
pub fn load(bytes: &[u8]) -> Result<Value, String> {
    let mut m = Machine { input: bytes, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() };
    loop {
        let at = m.pos;
        let op = m.byte().map_err(|e| format!("{e} (no STOP opcode)"))?;
        match m.step(op) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(format!("offset {at}: {e}")),
        }
    }
    if !m.marks.is_empty() || m.stack.len() != 1 {
        return Err(format!("STOP left {} values and {} marks; expected one value", m.stack.len(), m.marks.len()));
    }
    Ok(m.stack.pop().expect("one value"))
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let left = self.input.len() - self.pos;
        if n > left {
            return Err(format!("truncated: {n} bytes declared, {left} left"));
        }
        let s = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.input[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or("truncated: unterminated text line")?;
        let text = std::str::from_utf8(&rest[..end]).map_err(|_| "text line is not UTF-8")?;
        self.pos += end + 1;
        Ok(text)
    }

    fn pop(&mut self) -> Result<Value, String> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("stack underflow (value expected, found a MARK)".into());
        }
        self.stack.pop().ok_or_else(|| "stack underflow".into())
    }

    fn top(&mut self) -> Result<&mut Value, String> {
        self.stack.last_mut().ok_or_else(|| "stack underflow".into())
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mark = self.marks.pop().ok_or("no MARK to pop to")?;
        Ok(self.stack.split_off(mark))
    }

    fn push(&mut self, v: Value) -> Result<(), String> {
        self.stack.push(v);
        Ok(())
    }

    fn str_value(&mut self, n: usize) -> Result<(), String> {
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|_| "string is not UTF-8")?;
        self.push(Value::Str(s.into()))
    }

    fn bytes_value(&mut self, n: usize) -> Result<(), String> {
        let b = self.take(n)?;
        self.push(Value::Bytes(Rc::new(b.to_vec())))
    }

    fn memo_put(&mut self, key: u64) -> Result<(), String> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), String> {
        let v = self.memo.get(&key).cloned().ok_or_else(|| format!("memo key {key} was never stored"))?;
        self.push(v)
    }

    fn tuple(&mut self, n: usize) -> Result<(), String> {
        if self.stack.len() < n || self.marks.last().is_some_and(|&m| m > self.stack.len() - n) {
            return Err(format!("stack underflow building a {n}-tuple"));
        }
        let items = self.stack.split_off(self.stack.len() - n);
        self.push(tuple(items)?)
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), String> {
        if !items.len().is_multiple_of(2) {
            return Err("SETITEMS with an odd number of values".into());
        }
        let Value::Dict(dict) = self.top()?.clone() else {
            return Err(format!("SETITEM on a {}, not a dict", self.top()?.kind()));
        };
        // Seal the items first: a dict set into itself is then sealed too.
        let depth = nest(&items)?.max(dict.depth.get());
        if dict.sealed.get() {
            return Err("SETITEM on a dict that is already inside another value (self-referencing pickle)".into());
        }
        dict.depth.set(depth);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            dict.items.borrow_mut().push((k, v));
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), String> {
        let Value::List(list) = self.top()?.clone() else {
            return Err(format!("APPEND to a {}, not a list", self.top()?.kind()));
        };
        // Seal the items first: a list appended to itself is then sealed too.
        let depth = nest(&items)?.max(list.depth.get());
        if list.sealed.get() {
            return Err("APPEND to a list that is already inside another value (self-referencing pickle)".into());
        }
        list.depth.set(depth);
        list.items.borrow_mut().extend(items);
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), String> {
        let g = match (module, name) {
            ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => Global::Reconstruct,
            ("numpy", "ndarray") => Global::NdArray,
            ("numpy", "dtype") => Global::Dtype,
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("_codecs", "encode") => Global::Latin1Encode,
            _ => {
                return Err(format!(
                    "refusing global `{module}.{name}`: a checkpoint may only name numpy's _reconstruct, \
                     ndarray and dtype, collections.OrderedDict and _codecs.encode (latin1)"
                ))
            }
        };
        self.push(Value::Global(g))
    }

    fn reduce(&mut self) -> Result<(), String> {
        let args = self.pop()?;
        let callable = self.pop()?;
        let Value::Tuple(args) = args else { return Err(format!("REDUCE arguments are a {}", args.kind())) };
        let v = match (callable, args.items.as_slice()) {
            (
                Value::Global(Global::Reconstruct),
                [Value::Global(Global::NdArray), Value::Tuple(_), Value::Bytes(_)],
            ) => Value::Array(Rc::new(RefCell::new(Array::default()))),
            (Value::Global(Global::Dtype), [Value::Str(code), ..]) => {
                Value::Dtype(Rc::new(RefCell::new(DtypeSpec { code: code.to_string(), order: "=".into() })))
            }
            (Value::Global(Global::Latin1Encode), [Value::Str(text), Value::Str(codec)])
                if matches!(&**codec, "latin1" | "latin-1") =>
            {
                let bytes: Option<Vec<u8>> = text.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
                Value::Bytes(Rc::new(bytes.ok_or("latin1 text with a character above U+00FF")?))
            }
            (Value::Global(Global::OrderedDict), []) => dict(Vec::new())?,
            (Value::Global(Global::OrderedDict), [Value::List(pairs)]) => {
                let mut items = Vec::new();
                for pair in pairs.items() {
                    let kv = match &pair {
                        Value::Tuple(t) => t.items.clone(),
                        Value::List(l) => l.items(),
                        other => return Err(format!("OrderedDict item is a {}, not a pair", other.kind())),
                    };
                    let [k, v] = <[Value; 2]>::try_from(kv).map_err(|_| "OrderedDict item is not a pair")?;
                    items.push((k, v));
                }
                dict(items)?
            }
            (callable, args) => {
                return Err(format!(
                    "REDUCE of a {} with {} argument(s) is not how numpy arrays, dtypes or dicts are pickled",
                    callable.kind(),
                    args.len()
                ))
            }
        };
        self.push(v)
    }

    fn build(&mut self) -> Result<(), String> {
        let state = self.pop()?;
        match self.top()?.clone() {
            Value::Array(array) => {
                let Value::Tuple(s) = &state else { return Err("array state is not a tuple".into()) };
                let [_version, Value::Tuple(shape), Value::Dtype(dtype), Value::Bool(fortran), Value::Bytes(data)] =
                    s.items.as_slice()
                else {
                    return Err(
                        "array state is not (version, shape, dtype, fortran, bytes): object arrays are refused".into(),
                    );
                };
                let dtype = dtype.borrow();
                if dtype.order == ">" {
                    return Err(format!("big-endian arrays (dtype >{}) are not supported", dtype.code));
                }
                let et = ElementType::from_numpy(&dtype.code).ok_or_else(|| {
                    format!("arrays of dtype `{}` are not supported (f4, f8, f2, i4, i8 are)", dtype.code)
                })?;
                let mut dims = Vec::with_capacity(shape.items.len());
                for d in &shape.items {
                    match d {
                        Value::Int(n) if *n >= 0 => dims.push(*n as usize),
                        Value::Int(n) => return Err(format!("array dimension {n} is negative")),
                        other => return Err(format!("array dimension is a {}, not an int", other.kind())),
                    }
                }
                let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("array size overflows")?;
                if count.checked_mul(et.size()) != Some(data.len()) {
                    return Err(format!(
                        "array of shape {dims:?} and dtype {} needs {} bytes, the stream holds {}",
                        dtype.code,
                        count.saturating_mul(et.size()),
                        data.len()
                    ));
                }
                *array.borrow_mut() = Array { shape: dims, dtype: Some(et), fortran: *fortran, data: data.clone() };
            }
            Value::Dtype(dtype) => {
                let Value::Tuple(s) = &state else { return Err("dtype state is not a tuple".into()) };
                if let Some(Value::Str(order)) = s.items.get(1) {
                    dtype.borrow_mut().order = order.to_string();
                }
            }
            other => return Err(format!("BUILD on a {}", other.kind())),
        }
        Ok(())
    }

    /// Runs one opcode; `Ok(false)` at STOP.
    fn step(&mut self, op: u8) -> Result<bool, String> {
        match op {
            0x80 => {
                let proto = self.byte()?;
                if proto > 5 {
                    return Err(format!("pickle protocol {proto} is newer than 5"));
                }
            }
            0x95 => {
                self.uint(8)?; // FRAME: a length hint only
            }
            b'.' => return Ok(false),
            b'(' => {
                if self.marks.len() >= MAX_DEPTH {
                    return Err(format!("MARKs nest deeper than {MAX_DEPTH} levels"));
                }
                self.marks.push(self.stack.len());
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let v = self.top()?.clone();
                self.push(v)?;
            }
            b'N' => self.push(Value::None)?,
            0x88 => self.push(Value::Bool(true))?,
            0x89 => self.push(Value::Bool(false))?,
            b'J' => {
                let v = self.uint(4)? as u32 as i32 as i64;
                self.push(Value::Int(v))?
            }
            b'K' => {
                let v = self.uint(1)? as i64;
                self.push(Value::Int(v))?
            }
            b'M' => {
                let v = self.uint(2)? as i64;
                self.push(Value::Int(v))?
            }
            0x8a => {
                let n = self.byte()? as usize;
                if n > 8 {
                    return Err(format!("a {n}-byte integer does not fit in 64 bits"));
                }
                let b = self.take(n)?;
                let mut v = b.iter().rev().fold(0i64, |acc, &x| (acc << 8) | x as i64);
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                self.push(Value::Int(v))?
            }
            b'G' => {
                let v = f64::from_bits(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")));
                self.push(Value::Float(v))?
            }
            0x8c => {
                let n = self.uint(1)? as usize;
                self.str_value(n)?
            }
            b'X' => {
                let n = self.uint(4)? as usize;
                self.str_value(n)?
            }
            0x8d => {
                let n = usize::try_from(self.uint(8)?).map_err(|_| "string length overflows")?;
                self.str_value(n)?
            }
            b'C' => {
                let n = self.uint(1)? as usize;
                self.bytes_value(n)?
            }
            b'B' => {
                let n = self.uint(4)? as usize;
                self.bytes_value(n)?
            }
            0x8e => {
                let n = usize::try_from(self.uint(8)?).map_err(|_| "bytes length overflows")?;
                self.bytes_value(n)?
            }
            b')' => self.push(tuple(Vec::new())?)?,
            0x85 => self.tuple(1)?,
            0x86 => self.tuple(2)?,
            0x87 => self.tuple(3)?,
            b't' => {
                let items = self.pop_mark()?;
                self.push(tuple(items)?)?
            }
            b']' => self.push(list(Vec::new())?)?,
            b'l' => {
                let items = self.pop_mark()?;
                self.push(list(items)?)?
            }
            b'a' => {
                let item = self.pop()?;
                self.append(vec![item])?
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.append(items)?
            }
            b'}' => self.push(dict(Vec::new())?)?,
            b'd' => {
                let items = self.pop_mark()?;
                self.push(dict(Vec::new())?)?;
                self.set_items(items)?
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.set_items(vec![k, v])?
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(module, name)?
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                    return Err("STACK_GLOBAL needs two strings".into());
                };
                self.global(module, name)?
            }
            b'R' => self.reduce()?,
            b'b' => self.build()?,
            0x94 => {
                let key = self.memo.len() as u64;
                self.memo_put(key)?
            }
            b'q' => {
                let key = self.uint(1)?;
                self.memo_put(key)?
            }
            b'r' => {
                let key = self.uint(4)?;
                self.memo_put(key)?
            }
            b'h' => {
                let key = self.uint(1)?;
                self.memo_get(key)?
            }
            b'j' => {
                let key = self.uint(4)?;
                self.memo_get(key)?
            }
            other => {
                return Err(format!(
                    "opcode {:?} (0x{other:02x}) is not allowed in a checkpoint",
                    char::from(other).escape_default().to_string()
                ))
            }
        }
        Ok(true)
    }
}
