//! A parsed JSON value that keeps what the Python reader sees: object keys in input order,
//! ints apart from floats. serde_json does the parsing; this module only builds the tree and
//! notes values the Python reader would read differently (`UNSURE`), so their task is declined.
//!
//! A `Plan` says which containers are only ever copied into a JSON column (a task's `data`, a
//! brush's RLE list, unknown keys): those stay their input text (`V::Raw`, a slice of the
//! input, checked like a tree but never built), so a huge task takes about its own bytes.

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

#[derive(Debug, Clone, PartialEq)]
pub enum V<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Arr(Vec<V<'a>>),
    Obj(Vec<(Cow<'a, str>, V<'a>)>),
    /// An array or object kept as its input text (valid JSON, checked as a tree would be).
    Raw(&'a str),
    /// An array of floats where the plan asks for it (a polygon's point): 16 bytes a point
    /// rather than a tree's 100 or so.
    Floats(Box<[f64]>),
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

/// Object keys and strings borrow the input unless they hold escapes (no allocation).
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

thread_local! {
    /// Set while building a value the Python reader would not read the same way: an int
    /// beyond i64 (serde_json gives a float for one beyond u64), a negative zero ("-0" is the
    /// int 0 for Python, -0.0 here), a non-finite float, a key given twice.
    pub static UNSURE: Cell<bool> = const { Cell::new(false) };
}

thread_local! {
    /// Set for a call of one huge element: a plan may keep a container as text then, parsed
    /// when its rows are made, so that the element's trees are never all built at once
    /// (ls.rs: a result's value). Otherwise (a feed of elements, a few MB) everything is
    /// parsed in one pass.
    pub static LATER: Cell<bool> = const { Cell::new(false) };
}

fn unsure() {
    UNSURE.with(|u| u.set(true));
}

impl<'de> Deserialize<'de> for V<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<V<'de>, D::Error> {
        Seed(Tree).deserialize(d)
    }
}

/// A value read by plan `P` (the top-level element of a stream).
pub struct Planned<'a, P>(pub V<'a>, PhantomData<P>);

impl<'de, P: Plan> Deserialize<'de> for Planned<'de, P> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Planned(Seed(P::default()).deserialize(d)?, PhantomData))
    }
}

struct Seed<P>(P);

impl<'de, P: Plan> DeserializeSeed<'de> for Seed<P> {
    type Value = V<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<V<'de>, D::Error> {
        if !self.0.raw() {
            return d.deserialize_any(VVisitor(self.0));
        }
        let text = <&'de RawValue>::deserialize(d)?.get();
        if !self.0.checked() && text.starts_with(['[', '{']) {
            Ok(V::Raw(text))
        } else if text.starts_with(['[', '{']) {
            // the checks a tree gets (numbers, keys given twice, lone surrogates), nothing built
            serde_json::from_str::<Check>(text).map_err(de::Error::custom)?;
            Ok(V::Raw(text))
        } else {
            serde_json::from_str::<V>(text).map_err(de::Error::custom)
        }
    }
}

struct VVisitor<P>(P);

impl<'de, P: Plan> Visitor<'de> for VVisitor<P> {
    type Value = V<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<V<'de>, E> {
        Ok(V::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<V<'de>, E> {
        Ok(V::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<V<'de>, E> {
        Ok(V::Int(n))
    }
    fn visit_u64<E>(self, n: u64) -> Result<V<'de>, E> {
        match i64::try_from(n) {
            Ok(n) => Ok(V::Int(n)),
            Err(_) => {
                unsure();
                Ok(V::Null)
            }
        }
    }
    fn visit_f64<E>(self, f: f64) -> Result<V<'de>, E> {
        check_float(f);
        Ok(V::Float(f))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<V<'de>, E> {
        Ok(V::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<V<'de>, E> {
        Ok(V::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<V<'de>, E> {
        Ok(V::Str(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<V<'de>, A::Error> {
        let item = self.0.item();
        let mut out = Vec::new();
        if self.0.floats() {
            let mut fs = Vec::with_capacity(2);
            loop {
                match seq.next_element_seed(Seed(item))? {
                    None => return Ok(V::Floats(fs.into_boxed_slice())),
                    Some(V::Float(f)) => fs.push(f),
                    Some(v) => {
                        out.extend(fs.into_iter().map(V::Float));
                        out.push(v);
                        break;
                    }
                }
            }
        }
        while let Some(v) = seq.next_element_seed(Seed(item))? {
            out.push(v);
        }
        Ok(V::Arr(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<V<'de>, A::Error> {
        // a result, a keyframe: most objects have up to 8 keys, one allocation holds them
        let mut out: Vec<(Cow<'de, str>, V<'de>)> = Vec::with_capacity(8);
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            let v = map.next_value_seed(Seed(self.0.key(&k)))?;
            out.push((k, v));
        }
        if has_duplicate(&out, |(k, _)| k) {
            unsure();
        }
        Ok(V::Obj(out))
    }
}

/// serde_json gives a float for an int literal beyond 64 bits, which the Python reader keeps
/// exactly: a float that large may have been one (a float literal that large is rare).
const INT_BEYOND_64: f64 = 9.2e18;

fn check_float(f: f64) {
    if !f.is_finite() || (f == 0.0 && f.is_sign_negative()) || f.abs() >= INT_BEYOND_64 {
        unsure();
    }
}

/// A value checked as `V` would be (setting `UNSURE` alike), nothing kept.
struct Check;

impl<'de> Deserialize<'de> for Check {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Check, D::Error> {
        d.deserialize_any(CheckVisitor)
    }
}

struct CheckVisitor;

impl<'de> Visitor<'de> for CheckVisitor {
    type Value = Check;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Check, E> {
        Ok(Check)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Check, E> {
        Ok(Check)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Check, E> {
        Ok(Check)
    }
    fn visit_u64<E>(self, n: u64) -> Result<Check, E> {
        if i64::try_from(n).is_err() {
            unsure();
        }
        Ok(Check)
    }
    fn visit_f64<E>(self, f: f64) -> Result<Check, E> {
        check_float(f);
        Ok(Check)
    }
    fn visit_str<E>(self, _: &str) -> Result<Check, E> {
        Ok(Check)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Check, A::Error> {
        while seq.next_element::<Check>()?.is_some() {}
        Ok(Check)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Check, A::Error> {
        let mut keys: Vec<Cow<'de, str>> = Vec::new();
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            map.next_value::<Check>()?;
            keys.push(k);
        }
        if has_duplicate(&keys, |k| k) {
            unsure();
        }
        Ok(Check)
    }
}

fn has_duplicate<T>(items: &[T], key: impl Fn(&T) -> &Cow<str>) -> bool {
    if items.len() <= 16 {
        // length, first and last byte tell most keys apart without comparing their text
        let sig = |k: &str| {
            let b = k.as_bytes();
            (b.len() as u64) << 16 | (*b.first().unwrap_or(&0) as u64) << 8 | *b.last().unwrap_or(&0) as u64
        };
        let mut sigs = [0u64; 16];
        for (s, x) in sigs.iter_mut().zip(items) {
            *s = sig(key(x));
        }
        return (1..items.len()).any(|i| (0..i).any(|j| sigs[i] == sigs[j] && key(&items[i]) == key(&items[j])));
    }
    let mut keys: Vec<&str> = items.iter().map(|x| &**key(x)).collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

/// Parse one JSON value at the start of `buf`: (value, bytes used, unsure) or the serde error.
/// `buf` is valid UTF-8 (checked once for a whole call, not string by string).
pub fn parse_one<P: Plan>(buf: &str) -> Result<(V<'_>, usize, bool), serde_json::Error> {
    UNSURE.with(|u| u.set(false));
    let mut it = serde_json::Deserializer::from_str(buf).into_iter::<Planned<P>>();
    match it.next() {
        Some(Ok(Planned(v, _))) => {
            let end = it.byte_offset();
            Ok((v, end, UNSURE.with(|u| u.get())))
        }
        Some(Err(e)) => Err(e),
        None => Err(de::Error::custom("no value")),
    }
}

/// The value `text` (kept as V::Raw by a plan) read by `plan`: None when it is not valid
/// JSON or holds a value the Python reader would read differently (as `UNSURE` notes).
pub fn parse_with<P: Plan>(text: &str, plan: P) -> Option<V<'_>> {
    UNSURE.with(|u| u.set(false));
    let mut de = serde_json::Deserializer::from_str(text);
    let v = Seed(plan).deserialize(&mut de).ok()?;
    de.end().ok()?;
    (!UNSURE.with(|u| u.get())).then_some(v)
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
        V::Obj(items) => dump_obj(items.iter().map(|(k, v)| (&**k, v)), out),
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

pub fn get<'a>(obj: &'a [(Cow<'a, str>, V<'a>)], key: &str) -> Option<&'a V<'a>> {
    obj.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

pub fn has(obj: &[(Cow<str>, V)], key: &str) -> bool {
    obj.iter().any(|(k, _)| k == key)
}

/// `obj.get(key)` of Python, with a present null read as missing (`x is None`).
pub fn get_some<'a>(obj: &'a [(Cow<'a, str>, V<'a>)], key: &str) -> Option<&'a V<'a>> {
    match get(obj, key) {
        Some(V::Null) | None => None,
        v => v,
    }
}
