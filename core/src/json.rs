//! A parsed JSON value that keeps what the Python reader sees: object keys in input order,
//! ints apart from floats. The parser is our own (a small recursive descent over the call's
//! text, already checked UTF-8): it builds the tree in an arena (`Bump`), so a tree costs a
//! few pointer bumps to build and nothing to drop, numbers are read exactly as Python reads
//! them (std's correctly rounded float parse), and it notes values the Python reader would
//! read differently (`unsure`), so their task is declined.
//!
//! A `Plan` says which containers are only ever copied into a JSON column (a task's `data`, a
//! brush's RLE list, unknown keys): those stay their input text (`V::Raw`, a slice of the
//! input, checked like a tree but never built), so a huge task takes about its own bytes.

use bumpalo::Bump;
use std::cell::Cell;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum V<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Arr(&'a [V<'a>]),
    Obj(&'a [(&'a str, V<'a>)]),
    /// An array or object kept as its input text (valid JSON, checked as a tree would be).
    Raw(&'a str),
    /// An array of floats where the plan asks for it (a polygon's point).
    Floats(&'a [f64]),
}

/// Where a value sits decides whether it is built as a tree or kept as text.
pub trait Plan: Copy + Default {
    /// Keep a container here as its text (a scalar is always parsed).
    fn raw(self) -> bool;
    /// The plan of the value under `key` of an object here.
    fn key(self, key: &str) -> Self;
    /// The plan of an element of an array here.
    fn item(self) -> Self;
    /// A container kept as text is checked now (else it is parsed later, `parse_with`).
    fn checked(self) -> bool {
        true
    }
    /// Keep an array here whose elements are all floats as `V::Floats`.
    fn floats(self) -> bool {
        false
    }
}

/// Every value a tree.
#[derive(Clone, Copy, Default)]
pub struct Tree;

impl Plan for Tree {
    fn raw(self) -> bool {
        false
    }
    fn key(self, _: &str) -> Self {
        Tree
    }
    fn item(self) -> Self {
        Tree
    }
}

thread_local! {
    /// Set for a call of one huge element: a plan may keep a container as text then, parsed
    /// when its rows are made, so that the element's trees are never all built at once
    /// (ls.rs: a result's value). Otherwise (a feed of elements, a few MB) everything is
    /// parsed in one pass.
    pub static LATER: Cell<bool> = const { Cell::new(false) };
}

/// Text that is not one JSON value: `eof` when it ends inside one (more bytes may complete it).
#[derive(Debug)]
pub struct Error {
    eof: bool,
}

impl Error {
    pub fn is_eof(&self) -> bool {
        self.eof
    }
}

const BAD: Error = Error { eof: false };
const EOF: Error = Error { eof: true };

/// Containers nested deeper than this are an error (the Python reader, iterative, takes
/// them): the parser recurses once a level.
const MAX_DEPTH: usize = 128;

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    at: usize,
    bump: &'a Bump,
    /// A value the Python reader would read differently: an int beyond i64, a negative zero
    /// ("-0" is the int 0 for Python), a non-finite float, a key given twice, a lone surrogate.
    unsure: bool,
    depth: usize,
    /// Open containers' items and keys: a container is copied into the arena once, at its end.
    items: Vec<V<'a>>,
    pairs: Vec<(&'a str, V<'a>)>,
    /// A string with escapes, decoded.
    text: String,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// A mask with the high bit set in the first byte of `w` (little-endian) that is a quote, a
/// backslash or a control character (bits after the first may be set too, never before).
fn special(w: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    zero(w ^ (ONES * b'"' as u64)) | zero(w ^ (ONES * b'\\' as u64)) | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS)
}

/// The index of the first quote, backslash or control character of `b` from `at`.
fn to_special(b: &[u8], mut at: usize) -> usize {
    while let Some(w) = b.get(at..at + 8) {
        let m = special(u64::from_le_bytes(w.try_into().unwrap_or_default()));
        if m != 0 {
            return at + (m.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while at < b.len() && !matches!(b[at], b'"' | b'\\' | 0..=0x1f) {
        at += 1;
    }
    at
}

impl<'a> Parser<'a> {
    fn new(s: &'a str, bump: &'a Bump) -> Self {
        Parser { s, b: s.as_bytes(), at: 0, bump, unsure: false, depth: 0, items: Vec::with_capacity(64),
                 pairs: Vec::with_capacity(64), text: String::new() }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Result<u8, Error> {
        self.b.get(self.at).copied().ok_or(EOF)
    }

    /// The value at `at`, built (`build`) or only checked (a `V::Null` comes back).
    fn value<P: Plan>(&mut self, plan: P, build: bool) -> Result<V<'a>, Error> {
        match self.peek()? {
            b'{' | b'[' if build && plan.raw() => {
                let (start, unsure) = (self.at, self.unsure);
                self.value(Tree, false)?;
                if !plan.checked() {
                    self.unsure = unsure; // checked when it is parsed
                }
                Ok(V::Raw(&self.s[start..self.at]))
            }
            b'{' => self.object(plan, build),
            b'[' => self.array(plan, build),
            b'"' => {
                self.at += 1;
                Ok(V::Str(self.string(build)?))
            }
            b't' => self.literal(b"true", V::Bool(true)),
            b'f' => self.literal(b"false", V::Bool(false)),
            b'n' => self.literal(b"null", V::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(BAD),
        }
    }

    fn literal(&mut self, word: &[u8], v: V<'a>) -> Result<V<'a>, Error> {
        let have = &self.b[self.at..self.b.len().min(self.at + word.len())];
        if !word.starts_with(have) {
            return Err(BAD);
        }
        if have.len() < word.len() {
            return Err(EOF);
        }
        self.at += word.len();
        Ok(v)
    }

    /// At a container's opening bracket: false when it closes at once (with `close`).
    fn enter(&mut self, close: u8) -> Result<bool, Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(BAD);
        }
        self.at += 1;
        self.ws();
        if self.peek()? == close {
            self.at += 1;
            self.depth -= 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// After an item: true at a comma (more items follow), false at the closing `close`.
    fn next(&mut self, close: u8) -> Result<bool, Error> {
        self.ws();
        let c = self.peek()?;
        self.at += 1;
        if c == b',' {
            self.ws();
            Ok(true)
        } else if c == close {
            self.depth -= 1;
            Ok(false)
        } else {
            Err(BAD)
        }
    }

    fn array<P: Plan>(&mut self, plan: P, build: bool) -> Result<V<'a>, Error> {
        let mark = self.items.len();
        if self.enter(b']')? {
            let item = plan.item();
            loop {
                let v = self.value(item, build)?;
                if build {
                    self.items.push(v);
                }
                if !self.next(b']')? {
                    break;
                }
            }
        }
        if !build {
            return Ok(V::Null);
        }
        let bump = self.bump;
        let items = &self.items[mark..];
        let v = if plan.floats() && items.iter().all(|v| matches!(v, V::Float(_))) {
            V::Floats(bump.alloc_slice_fill_with(items.len(), |i| match items[i] {
                V::Float(f) => f,
                _ => 0.0, // all are floats
            }))
        } else {
            V::Arr(bump.alloc_slice_copy(items))
        };
        self.items.truncate(mark);
        Ok(v)
    }

    fn object<P: Plan>(&mut self, plan: P, build: bool) -> Result<V<'a>, Error> {
        let mark = self.pairs.len();
        if self.enter(b'}')? {
            loop {
                if self.peek()? != b'"' {
                    return Err(BAD);
                }
                self.at += 1;
                let k = self.string(true)?;
                self.ws();
                if self.peek()? != b':' {
                    return Err(BAD);
                }
                self.at += 1;
                self.ws();
                let v = self.value(plan.key(k), build)?;
                self.pairs.push((k, v)); // only checked, v is Null: the key is for has_duplicate
                if !self.next(b'}')? {
                    break;
                }
            }
        }
        let pairs = &self.pairs[mark..];
        if has_duplicate(pairs) {
            self.unsure = true;
        }
        let v = if build { V::Obj(self.bump.alloc_slice_copy(pairs)) } else { V::Null };
        self.pairs.truncate(mark);
        Ok(v)
    }

    /// The string after its opening quote: a slice of the input unless it holds escapes
    /// (decoded into the arena when `keep`).
    fn string(&mut self, keep: bool) -> Result<&'a str, Error> {
        let start = self.at;
        self.at = to_special(self.b, start);
        match self.peek()? {
            b'"' => {
                self.at += 1;
                return Ok(&self.s[start..self.at - 1]);
            }
            b'\\' => {}
            _ => return Err(BAD),
        }
        self.text.clear();
        self.text.push_str(&self.s[start..self.at]);
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    break;
                }
                b'\\' => self.escape()?,
                _ => return Err(BAD),
            }
            let run = self.at;
            self.at = to_special(self.b, run);
            self.text.push_str(&self.s[run..self.at]);
        }
        Ok(if keep { self.bump.alloc_str(&self.text) } else { "" })
    }

    /// One escape (at its backslash) onto `text`.
    fn escape(&mut self) -> Result<(), Error> {
        let c = *self.b.get(self.at + 1).ok_or(EOF)?;
        self.at += 2;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex()?;
                let code = if (0xd800..0xdc00).contains(&hi) {
                    match self.b.get(self.at..self.at + 2) {
                        Some(b"\\u") => {}
                        Some(_) => return self.lone(),
                        None => return Err(EOF),
                    }
                    let back = self.at;
                    self.at += 2;
                    let lo = self.hex()?;
                    if !(0xdc00..0xe000).contains(&lo) {
                        self.at = back;
                        return self.lone();
                    }
                    0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                } else {
                    hi
                };
                match char::from_u32(code) {
                    Some(ch) => ch,
                    None => return self.lone(), // a trailing surrogate alone
                }
            }
            _ => return Err(BAD),
        };
        self.text.push(ch);
        Ok(())
    }

    /// A lone surrogate: Python keeps it in its str, which UTF-8 cannot hold; declined.
    fn lone(&mut self) -> Result<(), Error> {
        self.unsure = true;
        self.text.push('\u{fffd}');
        Ok(())
    }

    fn hex(&mut self) -> Result<u32, Error> {
        let mut n = 0;
        for i in 0..4 {
            let Some(&c) = self.b.get(self.at + i) else { return Err(EOF) };
            n = n * 16 + (c as char).to_digit(16).ok_or(BAD)?;
        }
        self.at += 4;
        Ok(n)
    }

    /// One or more digits, onto `n` (the first 19 significant digits), counted in `count`.
    fn digits(&mut self, n: &mut u64, count: &mut usize) -> Result<(), Error> {
        let (b, start) = (self.b, self.at);
        let mut at = start;
        while *count + 8 <= 19 {
            let Some(d) = b.get(at..at + 8).and_then(|w| eight_digits(w.try_into().unwrap_or_default())) else {
                break;
            };
            *n = *n * 100_000_000 + d;
            (*count, at) = (*count + 8, at + 8);
        }
        while let Some(&c) = b.get(at) {
            if !c.is_ascii_digit() {
                break;
            }
            if *count < 19 {
                *n = *n * 10 + (c - b'0') as u64;
            }
            (*count, at) = (*count + 1, at + 1);
        }
        if at == start {
            return Err(if at == b.len() { EOF } else { BAD });
        }
        self.at = at;
        Ok(())
    }

    fn number(&mut self) -> Result<V<'a>, Error> {
        let start = self.at;
        let negative = self.b[start] == b'-';
        if negative {
            self.at += 1;
        }
        // the significant digits as an integer `n` (its first 19) of `count` digits in all,
        // `int_digits` of them before the point
        let (mut n, mut count) = (0u64, 0usize);
        if self.peek()? == b'0' {
            self.at += 1;
            count = 1;
        } else {
            self.digits(&mut n, &mut count)?;
        }
        let int_digits = count;
        let mut float = false;
        if self.b.get(self.at) == Some(&b'.') {
            self.at += 1;
            self.digits(&mut n, &mut count)?;
            float = true;
        }
        let mut exp: i64 = 0;
        if let Some(b'e' | b'E') = self.b.get(self.at) {
            self.at += 1;
            let minus = self.b.get(self.at) == Some(&b'-');
            if let Some(b'+' | b'-') = self.b.get(self.at) {
                self.at += 1;
            }
            let (mut e, mut digits) = (0u64, 0usize);
            self.digits(&mut e, &mut digits)?;
            exp = if digits > 6 { 1_000_000 } else { e as i64 };
            if minus {
                exp = -exp;
            }
            float = true;
        }
        if float {
            let f = if count <= 19 && n < 1 << 53 {
                // exact: n and 10^k are exact doubles, one correctly rounded operation
                let k = exp - (count - int_digits) as i64;
                match k {
                    0..=22 => Some(n as f64 * POW10[k as usize]),
                    -22..=-1 => Some(n as f64 / POW10[-k as usize]),
                    _ => None,
                }
            } else {
                None
            };
            let f = match f {
                Some(f) if negative => -f,
                Some(f) => f,
                None => self.s[start..self.at].parse().map_err(|_| BAD)?,
            };
            if !f.is_finite() || (f == 0.0 && f.is_sign_negative()) {
                self.unsure = true;
            }
            return Ok(V::Float(f));
        }
        let v = if count > 19 {
            None
        } else if negative {
            0i64.checked_sub_unsigned(n).filter(|&v| v != 0)
        } else {
            i64::try_from(n).ok()
        };
        if v.is_none() {
            self.unsure = true;
        }
        Ok(V::Int(v.unwrap_or(0)))
    }
}

/// Eight ASCII digits as their number (simdjson's parse_eight_digits_unrolled), or None.
fn eight_digits(w: [u8; 8]) -> Option<u64> {
    let w = u64::from_le_bytes(w);
    const HIGH_NIBBLES: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    let digits = ONES * 0x30;
    if w & HIGH_NIBBLES != digits || w.wrapping_add(ONES * 6) & HIGH_NIBBLES != digits {
        return None;
    }
    let v = w - digits;
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    let lo = (v & 0x0000_00ff_0000_00ff).wrapping_mul(100 + (1_000_000 << 32));
    let hi = ((v >> 16) & 0x0000_00ff_0000_00ff).wrapping_mul(1 + (10_000 << 32));
    Some(lo.wrapping_add(hi) >> 32 & 0xffff_ffff)
}

const POW10: [f64; 23] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
                          1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

/// Some key of `pairs` is given twice (Python's dict keeps the last value of it).
fn has_duplicate(pairs: &[(&str, V)]) -> bool {
    if pairs.len() <= 16 {
        // a bit a key (by its length, first and last byte): only a key whose bit is taken is
        // compared with the keys before it
        let mut seen = 0u64;
        for (i, (k, _)) in pairs.iter().enumerate() {
            let b = k.as_bytes();
            let h = b.len() * 31 + *b.first().unwrap_or(&0) as usize * 7 + *b.last().unwrap_or(&0) as usize;
            let bit = 1u64 << (h % 64);
            if seen & bit != 0 && pairs[..i].iter().any(|(j, _)| j == k) {
                return true;
            }
            seen |= bit;
        }
        return false;
    }
    let mut keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

/// Parse one JSON value at the start of `buf` into `bump`: (value, bytes used, unsure).
/// A number or literal must end where a value can (as a stream of values is read).
pub fn parse_one<'a, P: Plan>(buf: &'a str, bump: &'a Bump) -> Result<(V<'a>, usize, bool), Error> {
    let mut p = Parser::new(buf, bump);
    let v = p.value(P::default(), true)?;
    if !matches!(buf.as_bytes()[0], b'{' | b'[' | b'"') {
        match p.b.get(p.at) {
            None | Some(b' ' | b'\n' | b'\t' | b'\r' | b'"' | b'[' | b']' | b'{' | b'}' | b',' | b':') => {}
            Some(_) => return Err(BAD),
        }
    }
    Ok((v, p.at, p.unsure))
}

/// The value `text` (kept as V::Raw by a plan) read by `plan` into `bump`: None when it is not
/// valid JSON or holds a value the Python reader would read differently.
pub fn parse_with<'a, P: Plan>(text: &'a str, plan: P, bump: &'a Bump) -> Option<V<'a>> {
    let mut p = Parser::new(text, bump);
    p.ws();
    let v = p.value(plan, true).ok()?;
    p.ws();
    (p.at == text.len() && !p.unsure).then_some(v)
}

// -- writing ------------------------------------------------------------------------------

/// Compact JSON text of a value (same values as orjson's text of the Python object).
pub fn dump(v: &V, out: &mut Vec<u8>) {
    match v {
        V::Null => out.extend_from_slice(b"null"),
        V::Bool(true) => out.extend_from_slice(b"true"),
        V::Bool(false) => out.extend_from_slice(b"false"),
        V::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        V::Float(f) => dump_float(*f, out),
        V::Str(s) => dump_str(s, out),
        V::Arr(items) => dump_arr(items, out, dump),
        V::Obj(items) => dump_obj(items.iter().map(|(k, v)| (*k, v)), out),
        V::Raw(text) => dump_raw(text, out),
        V::Floats(fs) => dump_arr(fs, out, |f, out| dump_float(*f, out)),
    }
}

fn dump_arr<T>(items: &[T], out: &mut Vec<u8>, item: impl Fn(&T, &mut Vec<u8>)) {
    out.push(b'[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(x, out);
    }
    out.push(b']');
}

/// Valid JSON text without the whitespace between its tokens.
fn dump_raw(text: &str, out: &mut Vec<u8>) {
    let b = text.as_bytes();
    let (mut start, mut i, mut in_str) = (0, 0, false);
    while i < b.len() {
        match b[i] {
            b'\\' if in_str => i += 1, // the escaped byte is never a quote that ends the string
            b'"' => in_str = !in_str,
            b' ' | b'\t' | b'\n' | b'\r' if !in_str => {
                out.extend_from_slice(&b[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.extend_from_slice(&b[start.min(b.len())..]);
}

pub fn dump_obj<'a>(items: impl Iterator<Item = (&'a str, &'a V<'a>)>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (k, x)) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        dump_str(k, out);
        out.push(b':');
        dump(x, out);
    }
    out.push(b'}');
}

pub fn dump_float(f: f64, out: &mut Vec<u8>) {
    if f.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
    } else {
        out.extend_from_slice(b"null"); // never parsed: the parser refuses NaN and Infinity
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

pub fn dump_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

// -- access ---------------------------------------------------------------------------------

/// An object's keys and values, in input order.
pub type Obj<'a> = [(&'a str, V<'a>)];

pub fn get<'a>(obj: &'a Obj<'a>, key: &str) -> Option<&'a V<'a>> {
    obj.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

pub fn has(obj: &Obj, key: &str) -> bool {
    obj.iter().any(|(k, _)| *k == key)
}

/// `obj.get(key)` of Python, with a present null read as missing (`x is None`).
pub fn get_some<'a>(obj: &'a Obj<'a>, key: &str) -> Option<&'a V<'a>> {
    match get(obj, key) {
        Some(V::Null) | None => None,
        v => v,
    }
}
