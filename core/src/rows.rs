//! The row-building rules every platform shares (stream/formats/common.py): the `extra`
//! object, ids, timestamps, numbers and typed keys into the five tables' columns (`Out`),
//! and the `Platform` trait the engine's loop runs over (ls.rs: Label Studio).

use crate::cols::*;
use crate::json::{dump, get, Plan, V};
pub use crate::json::Obj;
use crate::tables::*;

pub struct Decline;
pub type R<T> = Result<T, Decline>;

pub const EXACT_INT: i64 = 1 << 53;
pub const ABSENT: &str = "~absent";
pub const LISTED: &str = "~list";
const RESERVED: [&str; 3] = ["~absent", "~list", "~escaped"];

/// A platform for the engine's loop (engine.rs): the plan its elements are parsed with, and
/// one element into rows of `out`, returning how many tasks it was (one, or the elements of a
/// Dataloop text-classification document); on `Err(Decline)` the engine drops its rows.
pub trait Platform {
    type Shape: Plan;
    fn add(out: &mut Out, v: &V, cx: &mut Ctx) -> R<usize>;
}

/// A value of an `extra` object: the input's own, or one the converter adds.
pub enum E<'a> {
    Ref(&'a V<'a>),
    Str(&'static str),
    Keys(Vec<&'static str>),
}

/// An `extra` object under construction, in the key order the Python dict would have.
#[derive(Default)]
pub struct Extra<'a>(Vec<(&'a str, E<'a>)>);

impl<'a> Extra<'a> {
    /// `extra_of`: the keys without a typed column; a reserved key is declined.
    pub fn of(obj: &'a Obj<'a>, known: &[&str]) -> R<Self> {
        let mut out = Extra::default();
        for (k, v) in obj {
            if !known.contains(&&**k) {
                out.unknown(k, v)?;
            }
        }
        Ok(out)
    }
    /// A key without a typed column, in input order; a reserved key is declined.
    pub fn unknown(&mut self, key: &'a str, v: &'a V<'a>) -> R<()> {
        if RESERVED.contains(&key) {
            return Err(Decline);
        }
        self.0.push((key, E::Ref(v)));
        Ok(())
    }
    pub fn set(&mut self, key: &'a str, v: E<'a>) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = v,
            None => self.0.push((key, v)),
        }
    }
    pub fn keep(&mut self, key: &'a str, v: &'a V<'a>) {
        self.set(key, E::Ref(v))
    }
    /// extra.setdefault("~absent", []).append(key)
    pub fn absent(&mut self, key: &'static str) {
        for (k, v) in self.0.iter_mut() {
            if *k == ABSENT {
                if let E::Keys(keys) = v {
                    keys.push(key);
                }
                return;
            }
        }
        self.0.push((ABSENT, E::Keys(vec![key])));
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn dump(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            crate::json::dump_str(k, out);
            out.push(b':');
            match v {
                E::Ref(v) => dump(v, out),
                E::Str(s) => crate::json::dump_str(s, out),
                E::Keys(keys) => {
                    out.push(b'[');
                    for (j, s) in keys.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        crate::json::dump_str(s, out);
                    }
                    out.push(b']');
                }
            }
        }
        out.push(b'}');
    }
}

// -- value rules (common.py) ----------------------------------------------------------------

/// `id_fit`: (text of the id column, keep the original in extra).
pub fn id_fit(v: &V, int_default: bool) -> R<(Option<String>, bool)> {
    Ok(match v {
        V::Str(s) => (Some(s.to_string()), int_default && canonical_int(s)?),
        V::Int(n) => (Some(n.to_string()), !int_default),
        _ => (None, true),
    })
}

/// `_canonical_int`: `str(int(s)) == s` for digit strings. Declines what Python would raise
/// on or compute slowly (several leading '-', very long digit runs).
pub fn canonical_int(s: &str) -> R<bool> {
    if !s.is_ascii() {
        return Ok(false);
    }
    let digits = s.trim_start_matches('-');
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(false);
    }
    let dashes = s.len() - digits.len();
    if dashes > 1 || digits.len() > 18 {
        return Err(Decline);
    }
    Ok(if digits == "0" { dashes == 0 } else { !digits.starts_with('0') })
}

/// `num_fit`: a number for a float64 column derived from a value; a bool, an int beyond
/// 2**53, text, a list or an object leaves it null (the value stays whole in its JSON column).
pub fn num(v: Option<&V>) -> Option<f64> {
    match v {
        Some(V::Float(f)) => Some(*f),
        Some(V::Int(n)) if (-EXACT_INT..=EXACT_INT).contains(n) => Some(*n as f64),
        _ => None,
    }
}

/// `ts_fit` for a UTC time spelled with 'Z' and no more than 6 fraction digits
/// (2021-03-09T21:52:49.513742Z): (microseconds since the epoch, and whether the spelling is
/// the platform's own, with `digits` fraction digits, so the column restores it), or None when
/// Python's fromisoformat would refuse the date; any other spelling is declined.
pub fn ts_utc(s: &str, digits: usize) -> R<Option<(i64, bool)>> {
    let b = s.as_bytes();
    if b.len() < 20 || b.len() > 27 || b[b.len() - 1] != b'Z' {
        return Err(Decline);
    }
    let z = b.len() - 1; // the fraction is b[20..z], after a '.' at 19
    let digit = |i: usize| b[i].is_ascii_digit(); // ok: i < z < b.len()
    if !(b'1'..=b'9').contains(&b[0]) || ![1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
        .iter().all(|&i| digit(i)) || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':'
        || b[16] != b':' || (z > 19 && b[19] != b'.') || !(20..z).all(digit)
    {
        return Err(Decline);
    }
    let num = |a: usize, z: usize| b[a..z].iter().fold(0i64, |n, c| n * 10 + (c - b'0') as i64);
    let fraction = z.saturating_sub(20); // "…:00.Z" is read too, as no fraction
    let us = if fraction > 0 { num(20, z) * 10i64.pow(6 - fraction as u32) } else { 0 };
    let own = z > 19 && fraction == digits;
    let (y, mo, d) = (num(0, 4), num(5, 7), num(8, 10));
    let (h, mi, sec) = (num(11, 13), num(14, 16), num(17, 19));
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 => if leap { 29 } else { 28 },
        _ => return Ok(None),
    };
    if d < 1 || d > days_in || h > 23 || mi > 59 || sec > 59 {
        return Ok(None);
    }
    // days from civil (Howard Hinnant)
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Ok(Some((((days * 24 + h) * 60 + mi) * 60 * 1_000_000 + sec * 1_000_000 + us, own)))
}

// -- the reader -----------------------------------------------------------------------------

#[derive(Default)]
pub struct Out {
    pub t: Tasks,
    pub a: Annotations,
    pub r: Results,
    pub rel: Relations,
    pub k: Keyframes,
    pub misuse: Misuse,
}

pub struct Ctx<'a> {
    pub file: &'a str,
    pub container: &'a str,
    pub position: i64,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &'a str, container: &'a str) -> Self {
        Ctx { file, container, position: 0 }
    }
}

impl Out {
    pub fn marks(&self) -> [usize; 5] {
        [self.t.n, self.a.n, self.r.n, self.rel.n, self.k.n]
    }

    /// Room for the columns a huge task of `n` bytes fills most (its JSON text, its points).
    pub fn reserve(&mut self, n: usize) {
        self.t.data.data.reserve(n);
        self.r.value.data.reserve(n);
        self.r.points.reserve(n / 8); // a float takes 8 bytes here, rarely fewer in the text
    }

    pub fn rollback(&mut self, m: [usize; 5]) {
        self.t.truncate(m[0]);
        self.a.truncate(m[1]);
        self.r.truncate(m[2]);
        self.rel.truncate(m[3]);
        self.k.truncate(m[4]);
    }

    /// One element into rows by platform `P` (how many tasks), or Err(Decline) with no rows
    /// added.
    pub fn add<P: Platform>(&mut self, v: &V, cx: &mut Ctx) -> R<usize> {
        let marks = self.marks();
        let res = P::add(self, v, cx);
        if res.is_err() {
            self.rollback(marks);
        }
        res
    }
}

// -- shared key rules -----------------------------------------------------------------------

/// `_id`: an id-like key into its text column; a missing id gets `synthetic()`.
#[allow(clippy::too_many_arguments)]
pub fn id_col<'a>(obj: &'a Obj<'a>, key: &'static str, col: &mut StrCol, i: usize, extra: &mut Extra<'a>,
              synthetic: Option<&dyn Fn() -> String>, int_default: bool, flag: bool,
              m: &mut Misuse) -> R<Option<String>> {
    if let Some(v) = get(obj, key) {
        let (text, keep) = id_fit(v, int_default)?;
        if keep {
            extra.keep(key, v);
        }
        if let Some(text) = text {
            col.put(i, &text, m);
            return Ok(Some(text));
        }
        if synthetic.is_none() {
            return Ok(None);
        }
    } else if synthetic.is_none() {
        return Ok(None);
    } else if flag {
        extra.absent(key);
    }
    let text = synthetic.map(|f| f()).unwrap_or_default();
    col.put(i, &text, m);
    Ok(Some(text))
}

/// A timestamp key spelled with microseconds (Label Studio) into its column.
pub fn ts_col<'a>(obj: &'a Obj<'a>, key: &'static str, col: &mut TsCol, i: usize, extra: &mut Extra<'a>,
              m: &mut Misuse) -> R<()> {
    ts_col_digits(obj, key, col, i, extra, 6, m)
}

/// `fill_ts`: a timestamp key into its column (the platform spells it with `digits` fraction
/// digits); another type, or a date Python refuses, stays in `extra`.
#[allow(clippy::too_many_arguments)]
pub fn ts_col_digits<'a>(obj: &'a Obj<'a>, key: &'static str, col: &mut TsCol, i: usize,
                         extra: &mut Extra<'a>, digits: usize, m: &mut Misuse) -> R<()> {
    if let Some(v) = get(obj, key) {
        match v {
            V::Str(s) => match ts_utc(s, digits)? {
                Some((us, own)) => {
                    col.0.put(i, us, m);
                    if !own {
                        extra.keep(key, v);
                    }
                }
                None => extra.keep(key, v),
            },
            _ => extra.keep(key, v),
        }
    }
    Ok(())
}

/// A column that takes a value of one JSON type (an int within 2**53 for int64, any number
/// for float64, a bool, a string): the value of a key goes there, or else into `extra`.
pub trait Typed {
    fn accept(&mut self, i: usize, v: &V, m: &mut Misuse) -> bool;
}

impl Typed for I64Col {
    fn accept(&mut self, i: usize, v: &V, m: &mut Misuse) -> bool {
        match v {
            V::Int(n) if (-EXACT_INT..=EXACT_INT).contains(n) => self.put(i, *n, m),
            _ => return false,
        }
        true
    }
}

impl Typed for F64Col {
    fn accept(&mut self, i: usize, v: &V, m: &mut Misuse) -> bool {
        let x = match v {
            V::Int(n) if (-EXACT_INT..=EXACT_INT).contains(n) => *n as f64,
            V::Float(f) => *f,
            _ => return false,
        };
        self.put(i, x, m);
        true
    }
}

impl Typed for BoolCol {
    fn accept(&mut self, i: usize, v: &V, m: &mut Misuse) -> bool {
        match v {
            V::Bool(b) => self.put(i, *b, m),
            _ => return false,
        }
        true
    }
}

impl Typed for StrCol {
    fn accept(&mut self, i: usize, v: &V, m: &mut Misuse) -> bool {
        match v {
            V::Str(s) => self.put(i, s, m),
            _ => return false,
        }
        true
    }
}

pub fn typed<'a>(obj: &'a Obj<'a>, key: &'static str, col: &mut impl Typed, i: usize,
             extra: &mut Extra<'a>, m: &mut Misuse) {
    if let Some(v) = get(obj, key) {
        if !col.accept(i, v, m) {
            extra.keep(key, v);
        }
    }
}

/// The one key whose list becomes child rows (an annotation's `result`, an item's
/// `annotations`): `list_keys` = [key] and the list, or no list keys and any other value kept
/// in `extra`.
pub fn child_list<'a>(obj: &'a Obj<'a>, key: &'static str, col: &mut StrListCol, i: usize,
                      extra: &mut Extra<'a>, m: &mut Misuse) -> Option<&'a [V<'a>]> {
    match get(obj, key) {
        Some(V::Arr(items)) => {
            col.put(i, [Some(key)], m);
            Some(items)
        }
        other => {
            col.put(i, std::iter::empty(), m);
            if let Some(v) = other {
                extra.keep(key, v);
            }
            None
        }
    }
}

pub fn put_extra(col: &mut StrCol, i: usize, extra: &Extra, m: &mut Misuse) {
    if extra.is_empty() {
        col.put(i, "{}", m);
    } else {
        col.put_with(i, m, |out| extra.dump(out));
    }
}
