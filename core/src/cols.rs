//! Columns under construction. Like the Python buffers, a reader sets `col.put(row, value)`
//! for the rows that have a value; rows it skips are nulls. `truncate` drops the rows of a
//! declined task. `finish` turns a column into one Arrow array and empties it.

use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{ArrayRef, BooleanArray, ListArray, PrimitiveArray, StringArray};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field};
use std::sync::Arc;

/// A column set out of order (a row written twice): a bug in this crate, reported at the end.
#[derive(Default, Debug)]
pub struct Misuse(pub bool);

fn nulls(valid: &[bool]) -> Option<NullBuffer> {
    if valid.iter().all(|v| *v) {
        None
    } else {
        Some(NullBuffer::from(valid))
    }
}

/// The column's values, leaving in their place an empty vector with room for a quarter more
/// than they were (at most `PRESIZE` bytes): the next call's rows are about as many, and
/// growing from empty by doublings copied each column several times per call.
fn take_sized<T>(v: &mut Vec<T>) -> Vec<T> {
    let room = (v.len() + v.len() / 4).min(PRESIZE / std::mem::size_of::<T>().max(1));
    std::mem::replace(v, Vec::with_capacity(room))
}

/// The most a column reserves ahead (a call after one huge task is a feed again).
const PRESIZE: usize = 4 << 20;

/// The validity of a column's rows; `valid` is emptied, its room kept for the next call.
fn take_nulls(valid: &mut Vec<bool>) -> Option<NullBuffer> {
    let nb = nulls(valid);
    valid.clear();
    nb
}

fn offsets(offs: Vec<i32>) -> OffsetBuffer<i32> {
    // ok: offsets are pushed non-decreasing from 0 by this module only
    OffsetBuffer::new(ScalarBuffer::from(offs))
}

// -- strings ------------------------------------------------------------------------------------

pub struct StrCol {
    pub data: Vec<u8>,
    offs: Vec<i32>,
    valid: Vec<bool>,
}

impl Default for StrCol {
    fn default() -> Self {
        StrCol { data: Vec::new(), offs: vec![0], valid: Vec::new() }
    }
}

impl StrCol {
    pub fn len(&self) -> usize {
        self.valid.len()
    }
    fn pad(&mut self, n: usize) {
        while self.valid.len() < n {
            self.offs.push(self.data.len() as i32);
            self.valid.push(false);
        }
    }
    fn start(&mut self, i: usize, m: &mut Misuse) -> bool {
        self.pad(i);
        if self.valid.len() != i {
            m.0 = true;
            return false;
        }
        true
    }
    fn end(&mut self) {
        self.offs.push(self.data.len() as i32);
        self.valid.push(true);
    }
    pub fn put(&mut self, i: usize, s: &str, m: &mut Misuse) {
        if self.start(i, m) {
            self.data.extend_from_slice(s.as_bytes());
            self.end();
        }
    }
    /// Row `i` written by `f` (JSON text straight into the column's bytes).
    pub fn put_with(&mut self, i: usize, m: &mut Misuse, f: impl FnOnce(&mut Vec<u8>)) {
        if self.start(i, m) {
            f(&mut self.data);
            self.end();
        }
    }
    /// The same text for rows i..i+count (a keyframe sequence's links): the bytes are
    /// copied in doublings, not row by row.
    pub fn fill(&mut self, i: usize, count: usize, s: &str, m: &mut Misuse) {
        if count == 0 || !self.start(i, m) {
            return;
        }
        let (at, len) = (self.data.len(), s.len());
        self.data.reserve(len * count);
        self.data.extend_from_slice(s.as_bytes());
        while self.data.len() - at < len * count {
            let done = self.data.len() - at;
            self.data.extend_from_within(at..at + done.min(len * count - done));
        }
        self.offs.extend((1..=count).map(|k| (at + k * len) as i32));
        self.valid.resize(self.valid.len() + count, true);
    }
    fn push_item(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.data.extend_from_slice(s.as_bytes());
                self.end();
            }
            None => {
                self.offs.push(self.data.len() as i32);
                self.valid.push(false);
            }
        }
    }
    pub fn truncate(&mut self, n: usize) {
        if n < self.valid.len() {
            self.data.truncate(self.offs[n] as usize);
            self.offs.truncate(n + 1);
            self.valid.truncate(n);
        }
    }
    pub fn finish(&mut self, n: usize) -> ArrayRef {
        self.pad(n);
        // i32 offsets: a call's rows come from at most MAX_ELEMENT bytes of input (a few times
        // that as text): never reached, but a wrapped offset must be a panic (an error in
        // Python), not a column that lies
        assert!(self.data.len() <= i32::MAX as usize, "a text column beyond 2 GB");
        let (mut data, mut offs) = (take_sized(&mut self.data), take_sized(&mut self.offs));
        self.offs.push(0);
        data.shrink_to_fit(); // Arrow keeps the buffers until written: no slack
        offs.shrink_to_fit();
        let nb = take_nulls(&mut self.valid);
        // SAFETY: the offsets are pushed non-decreasing from 0 to data.len() (checked above to
        // fit i32) by this module only, and data is only ever extended by whole &str values
        // or JSON text written from them: valid UTF-8 cut at character boundaries. Arrow's
        // checked constructor would validate both again, a pass over every text byte.
        Arc::new(unsafe { StringArray::new_unchecked(offsets(offs), Buffer::from_vec(data), nb) })
    }
}

// -- fixed width ----------------------------------------------------------------------------

#[derive(Default)]
pub struct PrimCol<T: Copy + Default> {
    vals: Vec<T>,
    valid: Vec<bool>,
}

impl<T: Copy + Default> PrimCol<T> {
    fn pad(&mut self, n: usize) {
        while self.valid.len() < n {
            self.vals.push(T::default());
            self.valid.push(false);
        }
    }
    pub fn put(&mut self, i: usize, v: T, m: &mut Misuse) {
        if self.valid.len() != i {
            // rows skipped (nulls) or written twice; most puts are the next row
            self.pad(i);
            if self.valid.len() != i {
                m.0 = true;
                return;
            }
        }
        self.vals.push(v);
        self.valid.push(true);
    }
    pub fn fill(&mut self, i: usize, count: usize, v: T, m: &mut Misuse) {
        for k in 0..count {
            self.put(i + k, v, m);
        }
    }
    /// A value or a null (an explicit null of the input).
    pub fn put_opt(&mut self, i: usize, v: Option<T>, m: &mut Misuse) {
        if let Some(v) = v {
            self.put(i, v, m);
        }
    }
    pub fn truncate(&mut self, n: usize) {
        self.vals.truncate(n);
        self.valid.truncate(n);
    }
    fn take(&mut self, n: usize) -> (Vec<T>, Option<NullBuffer>) {
        self.pad(n);
        let mut vals = take_sized(&mut self.vals);
        vals.shrink_to_fit(); // Arrow keeps the buffer until written: no doubling slack
        (vals, take_nulls(&mut self.valid))
    }
}

pub type I64Col = PrimCol<i64>;
pub type F64Col = PrimCol<f64>;
pub type BoolCol = PrimCol<bool>;

/// Timestamps: microseconds since the epoch, UTC.
#[derive(Default)]
pub struct TsCol(pub PrimCol<i64>);

pub trait Finish {
    fn finish(&mut self, n: usize) -> ArrayRef;
    fn truncate(&mut self, n: usize);
}

impl Finish for StrCol {
    fn finish(&mut self, n: usize) -> ArrayRef {
        StrCol::finish(self, n)
    }
    fn truncate(&mut self, n: usize) {
        StrCol::truncate(self, n)
    }
}

/// A value of a fixed-width column, and its Arrow array.
pub trait Prim: Copy + Default {
    fn array(vals: Vec<Self>, nulls: Option<NullBuffer>) -> ArrayRef;
}

impl Prim for i64 {
    fn array(vals: Vec<i64>, nulls: Option<NullBuffer>) -> ArrayRef {
        Arc::new(PrimitiveArray::<Int64Type>::new(ScalarBuffer::from(vals), nulls))
    }
}

impl Prim for f64 {
    fn array(vals: Vec<f64>, nulls: Option<NullBuffer>) -> ArrayRef {
        Arc::new(PrimitiveArray::<Float64Type>::new(ScalarBuffer::from(vals), nulls))
    }
}

impl Prim for bool {
    fn array(vals: Vec<bool>, nulls: Option<NullBuffer>) -> ArrayRef {
        Arc::new(BooleanArray::new(BooleanBuffer::from(vals), nulls))
    }
}

impl<T: Prim> Finish for PrimCol<T> {
    fn finish(&mut self, n: usize) -> ArrayRef {
        let (v, nb) = self.take(n);
        T::array(v, nb)
    }
    fn truncate(&mut self, n: usize) {
        PrimCol::truncate(self, n)
    }
}

impl Finish for TsCol {
    fn finish(&mut self, n: usize) -> ArrayRef {
        let (v, nb) = self.0.take(n);
        Arc::new(
            PrimitiveArray::<TimestampMicrosecondType>::new(ScalarBuffer::from(v), nb)
                .with_timezone("UTC"),
        )
    }
    fn truncate(&mut self, n: usize) {
        self.0.truncate(n)
    }
}

// -- lists ----------------------------------------------------------------------------------

/// list<string>: the items may be null.
pub struct StrListCol {
    offs: Vec<i32>,
    valid: Vec<bool>,
    items: StrCol,
}

impl Default for StrListCol {
    fn default() -> Self {
        StrListCol { offs: vec![0], valid: Vec::new(), items: StrCol::default() }
    }
}

impl StrListCol {
    fn pad(&mut self, n: usize) {
        while self.valid.len() < n {
            self.offs.push(self.items.len() as i32);
            self.valid.push(false);
        }
    }
    pub fn put<'a>(&mut self, i: usize, items: impl IntoIterator<Item = Option<&'a str>>, m: &mut Misuse) {
        self.pad(i);
        if self.valid.len() != i {
            m.0 = true;
            return;
        }
        for s in items {
            self.items.push_item(s);
        }
        self.offs.push(self.items.len() as i32);
        self.valid.push(true);
    }
    /// Items that are built (a joined taxonomy path) rather than borrowed.
    pub fn put_owned(&mut self, i: usize, items: Vec<Option<String>>, m: &mut Misuse) {
        self.put(i, items.iter().map(|s| s.as_deref()), m)
    }
}

impl Finish for StrListCol {
    fn finish(&mut self, n: usize) -> ArrayRef {
        self.pad(n);
        let items_len = self.items.len();
        let items = self.items.finish(items_len);
        let offs = std::mem::replace(&mut self.offs, vec![0]);
        let valid = std::mem::take(&mut self.valid);
        let field = Arc::new(Field::new("item", DataType::Utf8, true));
        Arc::new(ListArray::new(field, offsets(offs), items, nulls(&valid)))
    }
    fn truncate(&mut self, n: usize) {
        if n < self.valid.len() {
            self.items.truncate(self.offs[n] as usize);
            self.offs.truncate(n + 1);
            self.valid.truncate(n);
        }
    }
}

/// list<list<float64>> (polygon points); items and values are never null here.
pub struct PointsCol {
    offs: Vec<i32>,
    valid: Vec<bool>,
    inner: Vec<i32>,
    vals: Vec<f64>,
}

impl Default for PointsCol {
    fn default() -> Self {
        PointsCol { offs: vec![0], valid: Vec::new(), inner: vec![0], vals: Vec::new() }
    }
}

impl PointsCol {
    fn pad(&mut self, n: usize) {
        while self.valid.len() < n {
            self.offs.push((self.inner.len() - 1) as i32);
            self.valid.push(false);
        }
    }
    pub fn reserve(&mut self, floats: usize) {
        self.vals.reserve(floats);
        self.inner.reserve(floats / 2);
    }
    pub fn put(&mut self, i: usize, points: &[impl AsRef<[f64]>], m: &mut Misuse) {
        self.pad(i);
        if self.valid.len() != i {
            m.0 = true;
            return;
        }
        for p in points {
            self.vals.extend_from_slice(p.as_ref());
            self.inner.push(self.vals.len() as i32);
        }
        self.offs.push((self.inner.len() - 1) as i32);
        self.valid.push(true);
    }
}

impl Finish for PointsCol {
    fn finish(&mut self, n: usize) -> ArrayRef {
        self.pad(n);
        let col = std::mem::take(self);
        let vfield = Arc::new(Field::new("item", DataType::Float64, true));
        let values = Arc::new(PrimitiveArray::<Float64Type>::new(ScalarBuffer::from(col.vals), None));
        let inner = Arc::new(ListArray::new(vfield, offsets(col.inner), values, None));
        let ifield = Arc::new(Field::new("item", inner.data_type().clone(), true));
        Arc::new(ListArray::new(ifield, offsets(col.offs), inner, nulls(&col.valid)))
    }
    fn truncate(&mut self, n: usize) {
        if n < self.valid.len() {
            let k = self.offs[n] as usize;
            self.vals.truncate(self.inner[k] as usize);
            self.inner.truncate(k + 1);
            self.offs.truncate(n + 1);
            self.valid.truncate(n);
        }
    }
}

use arrow_array::Array;
