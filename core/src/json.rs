//! A parsed JSON value that keeps what the Python reader sees: object keys in input order,
//! ints apart from floats. serde_json does the parsing; this module only builds the tree and
//! notes values the Python reader would read differently (`UNSURE`), so their task is declined.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum V<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Arr(Vec<V<'a>>),
    Obj(Vec<(Cow<'a, str>, V<'a>)>),
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

fn unsure() {
    UNSURE.with(|u| u.set(true));
}

impl<'de> Deserialize<'de> for V<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<V<'de>, D::Error> {
        d.deserialize_any(VVisitor)
    }
}

struct VVisitor;

impl<'de> Visitor<'de> for VVisitor {
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
        if !f.is_finite() || (f == 0.0 && f.is_sign_negative()) {
            unsure();
        }
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
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element::<V<'de>>()? {
            out.push(v);
        }
        Ok(V::Arr(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<V<'de>, A::Error> {
        let mut out: Vec<(Cow<'de, str>, V<'de>)> = Vec::new();
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            let v = map.next_value::<V<'de>>()?;
            out.push((k, v));
        }
        if has_duplicate(&out) {
            unsure();
        }
        Ok(V::Obj(out))
    }
}

fn has_duplicate(items: &[(Cow<str>, V)]) -> bool {
    if items.len() <= 16 {
        for (i, (k, _)) in items.iter().enumerate() {
            if items[..i].iter().any(|(q, _)| q == k) {
                return true;
            }
        }
        return false;
    }
    let mut keys: Vec<&str> = items.iter().map(|(k, _)| &**k).collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

/// Parse one JSON value at the start of `buf`: (value, bytes used, unsure) or the serde error.
pub fn parse_one(buf: &[u8]) -> Result<(V<'_>, usize, bool), serde_json::Error> {
    UNSURE.with(|u| u.set(false));
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<V>();
    match it.next() {
        Some(Ok(v)) => {
            let end = it.byte_offset();
            Ok((v, end, UNSURE.with(|u| u.get())))
        }
        Some(Err(e)) => Err(e),
        None => Err(de::Error::custom("no value")),
    }
}

/// A run of 19 or more digits that may be an int literal (not a fraction, not followed by a
/// fraction or an exponent): serde_json gives a float for an int beyond u64, where the Python
/// reader keeps it exactly. Strings are not told apart: a long digit run in a string only
/// costs the Python path.
pub fn long_digits(buf: &[u8]) -> bool {
    let mut i = 0;
    while i < buf.len() {
        if !buf[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < buf.len() && buf[i].is_ascii_digit() {
            i += 1;
        }
        let fraction = start > 0 && buf[start - 1] == b'.';
        let float_follows = i < buf.len() && matches!(buf[i], b'.' | b'e' | b'E');
        let exponent = start > 0 && matches!(buf[start - 1], b'e' | b'E')
            || start > 1 && matches!(buf[start - 1], b'+' | b'-') && matches!(buf[start - 2], b'e' | b'E');
        if i - start >= 19 && !fraction && !float_follows && !exponent {
            return true;
        }
    }
    false
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
        V::Arr(items) => {
            out.push(b'[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                dump(x, out);
            }
            out.push(b']');
        }
        V::Obj(items) => dump_obj(items.iter().map(|(k, v)| (&**k, v)), out),
    }
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
