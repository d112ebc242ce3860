//! Label Studio tasks into rows: a port of stream/formats/labelstudio.py and the rules of
//! stream/formats/common.py, which stay the specification. Where the Python reader would do
//! something this port does not (a reserved extra key, a timestamp spelled unusually, a value
//! Arrow would refuse, a task it raises on), `add` returns `Err(Decline)` and the task's rows
//! are dropped: the Python reader converts that task.

use std::borrow::Cow;

use crate::cols::*;
use crate::json::{dump, dump_obj, get, get_some, has, parse_with, Plan, V};
use crate::tables::*;

pub struct Decline;
type R<T> = Result<T, Decline>;
type Obj<'a> = [(Cow<'a, str>, V<'a>)];

const EXACT_INT: i64 = 1 << 53;
const SOURCE: &str = "labelstudio";
const ABSENT: &str = "~absent";
const LISTED: &str = "~list";
const RESERVED: [&str; 3] = ["~absent", "~list", "~escaped"];

const TASK_KNOWN: &[&str] = &["total_annotations", "cancelled_annotations", "total_predictions",
    "id", "project", "data", "meta", "created_at", "updated_at",
    "annotations", "completions", "predictions", "drafts"];
const ANNOTATION_KNOWN: &[&str] = &["was_cancelled", "ground_truth", "lead_time", "model_version",
    "score", "result_count", "id", "completed_by", "created_at", "updated_at", "updated_by", "result"];
const RESULT_KNOWN: &[&str] = &["from_name", "to_name", "type", "origin", "score", "parentID",
    "readonly", "original_width", "original_height", "image_rotation", "id", "value"];
const RELATION_KNOWN: &[&str] = &["from_id", "to_id", "direction", "labels", "type"];
const KEYFRAME_KNOWN: &[&str] = &["frame", "time", "enabled", "x", "y", "width", "height",
    "rotation", "auto"];
const LISTS: [(&str, &str); 4] = [("annotations", "annotation"), ("completions", "annotation"),
    ("predictions", "prediction"), ("drafts", "draft")];
const TIME_TYPES: &[&str] = &["timeserieslabels"];

/// Keys of a result's `value` this reader looks into (and any key ending in "labels").
const VALUE_READ: &[&str] = &["labels", "choices", "taxonomy", "text", "x", "y", "width", "height",
    "rotation", "points", "start", "end", "globalOffsets", "channel", "number", "rating", "sequence",
    "framesCount", "frameCount"];

/// Where a value sits in a task: what the reader looks into is built as a tree, the rest (a
/// task's data and meta, keys it keeps in `extra`, an RLE list) stays text (`json::Plan`).
#[derive(Clone, Copy, Default)]
pub enum Shape {
    #[default]
    Task,
    Lists,
    Annotation,
    Results,
    Result,
    /// A result's value: text, checked when it is parsed (`Out::results`).
    Later,
    Value,
    Points,
    Point,
    Tree,
    Text,
}

impl Plan for Shape {
    fn raw(self) -> bool {
        matches!(self, Shape::Text | Shape::Later)
    }
    fn checked(self) -> bool {
        !matches!(self, Shape::Later)
    }
    fn key(self, key: &str) -> Shape {
        let read = |known: &[&str]| if known.contains(&key) { Shape::Tree } else { Shape::Text };
        match self {
            Shape::Task if LISTS.iter().any(|(k, _)| *k == key) => Shape::Lists,
            Shape::Task if key == "data" || key == "meta" => Shape::Text,
            Shape::Task if key == "task" => Shape::Tree, // a legacy storage annotation's
            Shape::Task => read(TASK_KNOWN),
            Shape::Annotation if key == "result" => Shape::Results,
            Shape::Annotation if key == "skipped" => Shape::Tree,
            Shape::Annotation => read(ANNOTATION_KNOWN),
            Shape::Result if key == "value" => Shape::Later,
            Shape::Result if RELATION_KNOWN.contains(&key) => Shape::Tree,
            Shape::Result => read(RESULT_KNOWN),
            Shape::Value if key == "points" => Shape::Points,
            Shape::Value if key.ends_with("labels") => Shape::Tree,
            Shape::Value => read(VALUE_READ),
            _ => Shape::Tree,
        }
    }
    fn item(self) -> Shape {
        match self {
            Shape::Lists => Shape::Annotation,
            Shape::Results => Shape::Result,
            Shape::Points => Shape::Point,
            _ => Shape::Tree,
        }
    }
    fn floats(self) -> bool {
        matches!(self, Shape::Point)
    }
}

/// A value of an `extra` object: the input's own, or one the converter adds.
enum E<'a> {
    Ref(&'a V<'a>),
    Str(&'static str),
    Keys(Vec<&'static str>),
}

/// An `extra` object under construction, in the key order the Python dict would have.
#[derive(Default)]
struct Extra<'a>(Vec<(&'a str, E<'a>)>);

impl<'a> Extra<'a> {
    /// `extra_of`: the keys without a typed column; a reserved key is declined.
    fn of(obj: &'a Obj<'a>, known: &[&str]) -> R<Self> {
        let mut out = Vec::new();
        for (k, v) in obj {
            if !known.contains(&&**k) {
                if RESERVED.contains(&&**k) {
                    return Err(Decline);
                }
                out.push((&**k, E::Ref(v)));
            }
        }
        Ok(Extra(out))
    }
    fn set(&mut self, key: &'a str, v: E<'a>) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = v,
            None => self.0.push((key, v)),
        }
    }
    fn keep(&mut self, key: &'a str, v: &'a V<'a>) {
        self.set(key, E::Ref(v))
    }
    /// extra.setdefault("~absent", []).append(key)
    fn absent(&mut self, key: &'static str) {
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
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn dump(&self, out: &mut Vec<u8>) {
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
fn id_fit(v: &V, int_default: bool) -> R<(Option<String>, bool)> {
    Ok(match v {
        V::Str(s) => (Some(s.to_string()), int_default && canonical_int(s)?),
        V::Int(n) => (Some(n.to_string()), !int_default),
        _ => (None, true),
    })
}

/// `_canonical_int`: `str(int(s)) == s` for digit strings. Declines what Python would raise
/// on or compute slowly (several leading '-', very long digit runs).
fn canonical_int(s: &str) -> R<bool> {
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

/// A number for a float64 column as pyarrow makes it (writer.to_array): a bool is 1.0 or
/// 0.0; an int beyond 2**53, text, a list or an object becomes null.
fn num(v: Option<&V>) -> Option<f64> {
    match v {
        Some(V::Float(f)) => Some(*f),
        Some(V::Int(n)) if (-EXACT_INT..=EXACT_INT).contains(n) => Some(*n as f64),
        Some(V::Bool(b)) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// `ts_fit` for the platform's own spelling (2021-03-09T21:52:49.513742Z): microseconds
/// since the epoch, or None when Python's fromisoformat would refuse the date; any other
/// spelling is declined.
fn ts_canonical(s: &str) -> R<Option<i64>> {
    let b = s.as_bytes();
    let digit = |i: usize| b[i].is_ascii_digit(); // ok: i < 27 == b.len(), checked first
    if b.len() != 27 || !(b'1'..=b'9').contains(&b[0]) || ![1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
        .iter().all(|&i| digit(i)) || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':'
        || b[16] != b':' || b[19] != b'.' || !(20..26).all(digit) || b[26] != b'Z'
    {
        return Err(Decline);
    }
    let num = |a: usize, z: usize| b[a..z].iter().fold(0i64, |n, c| n * 10 + (c - b'0') as i64);
    let (y, mo, d) = (num(0, 4), num(5, 7), num(8, 10));
    let (h, mi, sec, us) = (num(11, 13), num(14, 16), num(17, 19), num(20, 26));
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
    Ok(Some(((days * 24 + h) * 60 + mi) * 60 * 1_000_000 + sec * 1_000_000 + us))
}

fn is_labels_type(t: &str) -> bool {
    t.ends_with("labels")
}

/// A list<string> cell as pyarrow makes it: a list of strings and nulls as is; another list,
/// a number or an object becomes null. Text is declined (pyarrow splits it into characters).
fn str_items<'a>(v: &'a V<'a>) -> R<Option<Vec<Option<&'a str>>>> {
    match v {
        V::Arr(xs) => Ok(xs.iter().map(|x| match x {
            V::Str(s) => Some(Some(&**s)),
            V::Null => Some(None),
            _ => None,
        }).collect()),
        V::Str(_) => Err(Decline),
        _ => Ok(None),
    }
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

    /// One task into rows, or Err(Decline) with no rows added.
    pub fn add(&mut self, v: &V, cx: &mut Ctx) -> R<()> {
        let marks = self.marks();
        let res = self.add_task(v, cx);
        if res.is_err() {
            self.rollback(marks);
        }
        res
    }

    fn add_task(&mut self, v: &V, cx: &mut Ctx) -> R<()> {
        let V::Obj(obj) = v else { return Err(Decline) };
        if has(obj, "data") {
            return self.task(obj, cx);
        }
        if matches!(get(obj, "task"), Some(V::Obj(_))) && has(obj, "result") {
            return Err(Decline); // legacy storage annotation
        }
        if cx.container == "object" {
            return Err(Decline); // not a task: the Python reader says so
        }
        // flat import object: the object is the data
        let i = self.t.n;
        let (t, m) = (&mut self.t, &mut self.misuse);
        let id = format!("~{}#{}", cx.file, cx.position);
        t.task_id.put(i, &id, m);
        self.task_common(i, cx, "flat");
        let (t, m) = (&mut self.t, &mut self.misuse);
        t.data.put_with(i, m, |out| dump(v, out));
        t.list_keys.put(i, std::iter::empty(), m);
        t.extra.put(i, "{}", m);
        t.n += 1;
        Ok(())
    }

    fn task_common(&mut self, i: usize, cx: &Ctx, form: &str) {
        let (t, m) = (&mut self.t, &mut self.misuse);
        t.source.put(i, SOURCE, m);
        t.position.put(i, cx.position, m);
        t.file.put(i, cx.file, m);
        t.container.put(i, cx.container, m);
        t.form.put(i, form, m);
    }

    fn task(&mut self, obj: &Obj, cx: &mut Ctx) -> R<()> {
        let i = self.t.n;
        let mut extra = Extra::of(obj, TASK_KNOWN)?;
        let m = &mut self.misuse;
        let t = &mut self.t;
        let synth = || format!("~{}#{}", cx.file, cx.position);
        let task_id = id_col(obj, "id", &mut t.task_id, i, &mut extra, Some(&synth), true, true, m)?
            .unwrap_or_default();
        id_col(obj, "project", &mut t.project_id, i, &mut extra, None, true, true, m)?;
        if let Some(d) = get(obj, "data") {
            t.data.put_with(i, m, |out| dump(d, out));
        }
        if let Some(d) = get(obj, "meta") {
            t.meta.put_with(i, m, |out| dump(d, out));
        }
        ts_col(obj, "created_at", &mut t.created_at, i, &mut extra, m)?;
        ts_col(obj, "updated_at", &mut t.updated_at, i, &mut extra, m)?;
        typed(obj, "total_annotations", &mut t.total_annotations, i, &mut extra, m);
        typed(obj, "cancelled_annotations", &mut t.cancelled_annotations, i, &mut extra, m);
        typed(obj, "total_predictions", &mut t.total_predictions, i, &mut extra, m);
        let mut lists: Vec<&str> = Vec::new();
        for (k, v) in obj {
            if LISTS.iter().any(|(key, _)| key == k) {
                match v {
                    V::Arr(_) => lists.push(&**k),
                    V::Null => extra.keep(k, v),
                    _ => return Err(Decline), // the Python reader raises: not an export
                }
            }
        }
        t.list_keys.put(i, lists.iter().map(|s| Some(*s)), m);
        put_extra(&mut t.extra, i, &extra, m);
        t.n += 1;
        self.task_common(i, cx, "task");
        let both = lists.contains(&"annotations") && lists.contains(&"completions");
        for (key, kind) in LISTS {
            if lists.contains(&key) {
                let listed = if both && key == "completions" { Some("completions") } else { None };
                if let Some(V::Arr(anns)) = get(obj, key) {
                    for (p, ann) in anns.iter().enumerate() {
                        self.annotation(ann, &task_id, kind, p as i64, listed, cx)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn annotation(&mut self, ann: &V, task_id: &str, kind: &'static str, position: i64,
                  listed: Option<&'static str>, cx: &mut Ctx) -> R<()> {
        let i = self.a.n;
        let (a, m) = (&mut self.a, &mut self.misuse);
        let mut link = Link { source: SOURCE, task_id, file: cx.file, task_position: cx.position, kind,
                              annotation_id: "", annotation_position: position };
        a.link_task(i, 1, &link, m);
        a.position.put(i, position, m);
        let o = match ann {
            V::Obj(o) => o,
            V::Int(_) | V::Str(_) => {
                let (text, keep) = id_fit(ann, true)?;
                if let Some(text) = text {
                    a.annotation_id.put(i, &text, m);
                }
                a.form.put(i, "id", m);
                let mut extra = Extra::default();
                if keep {
                    extra.keep("id", ann);
                }
                if let Some(l) = listed {
                    extra.set(LISTED, E::Str(l));
                }
                if !extra.is_empty() {
                    put_extra(&mut a.extra, i, &extra, m);
                }
                a.list_keys.put(i, std::iter::empty(), m);
                a.n += 1;
                return Ok(());
            }
            _ => return Err(Decline),
        };
        let mut extra = Extra::of(o, ANNOTATION_KNOWN)?;
        if let Some(l) = listed {
            extra.set(LISTED, E::Str(l));
        }
        let letter = listed.unwrap_or(kind).chars().next().unwrap_or('a'); // ok: constants
        let synth = || format!("~{}/{}{}", task_id, letter, position);
        let aid = id_col(o, "id", &mut a.annotation_id, i, &mut extra, Some(&synth), true, true, m)?
            .unwrap_or_default();
        a.form.put(i, "object", m);
        if let Some(by) = get(o, "completed_by") {
            if let V::Obj(bo) = by {
                let (text, _) = id_fit(get(bo, "id").unwrap_or(&V::Null), true)?;
                if let Some(text) = text {
                    a.completed_by.put(i, &text, m);
                }
                if let Some(V::Str(email)) = get(bo, "email") {
                    a.completed_by_email.put(i, email, m);
                }
                extra.keep("completed_by", by);
            } else {
                id_col(o, "completed_by", &mut a.completed_by, i, &mut extra, None, true, true, m)?;
            }
        }
        id_col(o, "updated_by", &mut a.updated_by, i, &mut extra, None, true, true, m)?;
        ts_col(o, "created_at", &mut a.created_at, i, &mut extra, m)?;
        ts_col(o, "updated_at", &mut a.updated_at, i, &mut extra, m)?;
        typed(o, "was_cancelled", &mut a.was_cancelled, i, &mut extra, m);
        typed(o, "ground_truth", &mut a.ground_truth, i, &mut extra, m);
        typed(o, "lead_time", &mut a.lead_time, i, &mut extra, m);
        typed(o, "model_version", &mut a.model_version, i, &mut extra, m);
        typed(o, "score", &mut a.score, i, &mut extra, m);
        typed(o, "result_count", &mut a.result_count, i, &mut extra, m);
        if !has(o, "was_cancelled") {
            if let Some(V::Bool(b)) = get(o, "skipped") {
                a.was_cancelled.put(i, *b, m);
                extra.absent("was_cancelled");
            }
        }
        let result = match get(o, "result") {
            Some(V::Arr(items)) => {
                a.list_keys.put(i, [Some("result")], m);
                Some(items)
            }
            other => {
                a.list_keys.put(i, std::iter::empty(), m);
                if let Some(v) = other {
                    extra.keep("result", v);
                }
                None
            }
        };
        put_extra(&mut a.extra, i, &extra, m);
        a.n += 1;
        if let Some(items) = result {
            link.annotation_id = &aid;
            self.results(items, &link)?;
        }
        Ok(())
    }

    fn results(&mut self, items: &[V], link: &Link) -> R<()> {
        for (p, r) in items.iter().enumerate() {
            let V::Obj(ro) = r else { return Err(Decline) };
            let typ = get(ro, "type");
            if let Some(V::Str(t)) = typ {
                if t == "relation" {
                    self.relation(ro, link, p as i64)?;
                    continue;
                }
            }
            let i = self.r.n;
            let (c, m) = (&mut self.r, &mut self.misuse);
            let mut extra = Extra::of(ro, RESULT_KNOWN)?;
            let synth = || format!("~{}", p);
            let rid = id_col(ro, "id", &mut c.region_id, i, &mut extra, Some(&synth), false, true, m)?
                .unwrap_or_default();
            c.link(i, 1, link, m);
            c.position.put(i, p as i64, m);
            typed(ro, "from_name", &mut c.from_name, i, &mut extra, m);
            typed(ro, "to_name", &mut c.to_name, i, &mut extra, m);
            typed(ro, "type", &mut c.r#type, i, &mut extra, m);
            typed(ro, "origin", &mut c.origin, i, &mut extra, m);
            typed(ro, "score", &mut c.score, i, &mut extra, m);
            typed(ro, "parentID", &mut c.parent_id, i, &mut extra, m);
            typed(ro, "readonly", &mut c.readonly, i, &mut extra, m);
            typed(ro, "original_width", &mut c.original_width, i, &mut extra, m);
            typed(ro, "original_height", &mut c.original_height, i, &mut extra, m);
            typed(ro, "image_rotation", &mut c.image_rotation, i, &mut extra, m);
            if let Some(v) = get(ro, "value") {
                // read as text (V::Raw) and parsed here, one value at a time: a task's values
                // are never all trees at once, and the column gets the text as it came
                let parsed;
                let tree = match v {
                    V::Raw(text) => {
                        parsed = parse_with(text, Shape::Value).ok_or(Decline)?;
                        &parsed
                    }
                    v => v,
                };
                if let V::Obj(vo) = tree {
                    let typ = match typ {
                        Some(V::Str(t)) => &**t,
                        _ => "",
                    };
                    let seq = if typ == "videorectangle" { get(vo, "sequence") } else { None };
                    let mut cut = false;
                    if let Some(V::Arr(seq)) = seq {
                        if !seq.is_empty() {
                            self.keyframes(seq, vo, link, &rid, p as i64, i)?;
                            cut = true;
                        }
                    }
                    self.value(vo, typ, ro, i)?;
                    let (c, m) = (&mut self.r, &mut self.misuse);
                    if cut {
                        c.value.put_with(i, m, |out| dump_obj(
                            vo.iter().filter(|(k, _)| k != "sequence").map(|(k, v)| (&**k, v)), out));
                    } else {
                        c.value.put_with(i, m, |out| dump(v, out));
                    }
                } else {
                    c.value.put_with(i, m, |out| dump(v, out));
                }
            }
            let (c, m) = (&mut self.r, &mut self.misuse);
            put_extra(&mut c.extra, i, &extra, m);
            c.n += 1;
        }
        Ok(())
    }

    /// `_value`: typed copies of the value's common parts.
    fn value(&mut self, v: &Obj, typ: &str, r: &Obj, i: usize) -> R<()> {
        let (c, m) = (&mut self.r, &mut self.misuse);
        let mut labels = if is_labels_type(typ) { get_some(v, typ) } else { None };
        if labels.is_none() {
            labels = get_some(v, "labels");
        }
        if let Some(l) = labels {
            if let Some(items) = str_items(l)? {
                c.labels.put(i, items, m);
            }
        }
        let ch = get_some(v, "choices").or_else(|| get_some(v, "taxonomy"));
        if let Some(V::Arr(xs)) = ch {
            let mut items: Vec<Option<String>> = Vec::with_capacity(xs.len());
            let mut fits = true;
            for x in xs {
                items.push(match x {
                    V::Str(s) => Some(s.to_string()),
                    V::Null => None,
                    V::Arr(parts) => {
                        let mut joined = String::new();
                        for (j, p) in parts.iter().enumerate() {
                            let V::Str(p) = p else { return Err(Decline) };
                            if j > 0 {
                                joined.push_str(" > ");
                            }
                            joined.push_str(p);
                        }
                        Some(joined)
                    }
                    _ => {
                        fits = false; // a number or an object: pyarrow nulls the whole list
                        None
                    }
                });
            }
            if fits {
                c.choices.put_owned(i, items, m);
            }
        }
        match get_some(v, "text") {
            None => {}
            Some(V::Str(s)) => c.text.put(i, s, m),
            Some(l @ V::Arr(_)) => {
                if let Some(items) = str_items(l)? {
                    c.texts.put(i, items, m);
                }
            }
            Some(_) => {} // a number or an object: null in `text` (it stays in `value`)
        }
        let mut geo = false;
        for (key, col) in [("x", &mut c.x), ("y", &mut c.y), ("width", &mut c.width),
                           ("height", &mut c.height), ("rotation", &mut c.rotation)] {
            if let Some(x) = get(v, key) {
                geo = true;
                col.put_opt(i, num(Some(x)), m);
            }
        }
        if let Some(p) = get(v, "points") {
            geo = true;
            match p {
                V::Null => {}
                V::Arr(pts) => {
                    let mut rows: Vec<Cow<[f64]>> = Vec::with_capacity(pts.len());
                    for pt in pts {
                        rows.push(match pt {
                            V::Floats(fs) => Cow::Borrowed(&fs[..]),
                            V::Arr(xy) => Cow::Owned(xy.iter().map(|x| match x {
                                V::Float(f) => Ok(*f),
                                V::Int(n) if (-EXACT_INT..=EXACT_INT).contains(n) => Ok(*n as f64),
                                _ => Err(Decline),
                            }).collect::<R<Vec<f64>>>()?),
                            _ => return Err(Decline),
                        });
                    }
                    c.points.put(i, &rows, m);
                }
                _ => return Err(Decline),
            }
        }
        if geo {
            c.unit.put(i, "percent", m);
        }
        if has(v, "start") {
            let (mut s, mut e) = (get(v, "start"), get(v, "end"));
            if let Some(V::Obj(go)) = get(v, "globalOffsets") {
                s = get(go, "start");
                e = get(go, "end");
            } else if TIME_TYPES.contains(&typ) || has(v, "channel") || has(r, "original_length")
                || matches!(s, Some(V::Float(_))) || matches!(e, Some(V::Float(_))) {
                c.time_start.put_opt(i, num(s), m);
                c.time_end.put_opt(i, num(e), m);
                s = None;
                e = None;
            } else if typ == "paragraphlabels" {
                s = None;
                e = None;
            }
            if let (Some(V::Int(s)), Some(V::Int(e))) = (s, e) {
                c.span_start.put(i, *s, m);
                c.span_end.put(i, *e, m);
            }
        }
        if let Some(n) = get_some(v, "number").or_else(|| get_some(v, "rating")) {
            c.number.put_opt(i, num(Some(n)), m);
        }
        Ok(())
    }

    fn relation(&mut self, r: &Obj, link: &Link, p: i64) -> R<()> {
        let i = self.rel.n;
        let (c, m) = (&mut self.rel, &mut self.misuse);
        let mut extra = Extra::of(r, RELATION_KNOWN)?;
        c.link(i, 1, link, m);
        c.position.put(i, p, m);
        typed(r, "from_id", &mut c.from_id, i, &mut extra, m);
        typed(r, "to_id", &mut c.to_id, i, &mut extra, m);
        typed(r, "direction", &mut c.direction, i, &mut extra, m);
        if let Some(l) = get(r, "labels") {
            match l {
                V::Arr(xs) if xs.iter().all(|x| matches!(x, V::Str(_))) => {
                    c.labels.put(i, xs.iter().map(|x| match x {
                        V::Str(s) => Some(&**s),
                        _ => None,
                    }), m);
                }
                _ => extra.keep("labels", l),
            }
        }
        put_extra(&mut c.extra, i, &extra, m);
        c.n += 1;
        Ok(())
    }

    fn keyframes(&mut self, seq: &[V], v: &Obj, link: &Link, rid: &str, rpos: i64, ri: usize) -> R<()> {
        let (k, m) = (&mut self.k, &mut self.misuse);
        let mut objs: Vec<&Obj> = Vec::with_capacity(seq.len());
        for kf in seq {
            let V::Obj(o) = kf else { return Err(Decline) };
            objs.push(o);
        }
        let i0 = k.n;
        let count = objs.len();
        for (j, o) in objs.iter().enumerate() {
            let i = i0 + j;
            let mut extra = Extra::of(o, KEYFRAME_KNOWN)?;
            typed(o, "frame", &mut k.frame, i, &mut extra, m);
            typed(o, "time", &mut k.time, i, &mut extra, m);
            typed(o, "enabled", &mut k.enabled, i, &mut extra, m);
            typed(o, "x", &mut k.x, i, &mut extra, m);
            typed(o, "y", &mut k.y, i, &mut extra, m);
            typed(o, "width", &mut k.width, i, &mut extra, m);
            typed(o, "height", &mut k.height, i, &mut extra, m);
            typed(o, "rotation", &mut k.rotation, i, &mut extra, m);
            typed(o, "auto", &mut k.auto, i, &mut extra, m);
            k.position.put(i, j as i64, m);
            put_extra(&mut k.extra, i, &extra, m);
        }
        k.link(i0, count, link, m);
        k.region_id.fill(i0, count, rid, m);
        k.result_position.fill(i0, count, rpos, m);
        k.n += count;
        let frame = |o: &Obj| match get(o, "frame") {
            Some(V::Int(f)) => Some(*f),
            _ => None,
        };
        if let Some(first) = objs.iter().find_map(|o| frame(o)) {
            self.r.frame_start.put(ri, first, m);
            if let Some(last) = objs.iter().rev().find(|o| frame(o).is_some()) {
                let count = if has(v, "framesCount") { get(v, "framesCount") } else { get(v, "frameCount") };
                let end = match (get(last, "enabled"), count) {
                    (Some(V::Bool(true)), Some(V::Int(c))) => *c,
                    _ => frame(last).unwrap_or_default(),
                };
                self.r.frame_end.put(ri, end, m);
            }
        }
        Ok(())
    }
}

// -- shared key rules -----------------------------------------------------------------------

/// `_id`: an id-like key into its text column; a missing id gets `synthetic()`.
#[allow(clippy::too_many_arguments)]
fn id_col<'a>(obj: &'a Obj<'a>, key: &'static str, col: &mut StrCol, i: usize, extra: &mut Extra<'a>,
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

fn ts_col<'a>(obj: &'a Obj<'a>, key: &'static str, col: &mut TsCol, i: usize, extra: &mut Extra<'a>,
              m: &mut Misuse) -> R<()> {
    if let Some(v) = get(obj, key) {
        match v {
            V::Str(s) => match ts_canonical(s)? {
                Some(us) => col.0.put(i, us, m),
                None => extra.keep(key, v),
            },
            _ => extra.keep(key, v),
        }
    }
    Ok(())
}

/// A column that takes a value of one JSON type (an int within 2**53 for int64, any number
/// for float64, a bool, a string): the value of a key goes there, or else into `extra`.
trait Typed {
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

fn typed<'a>(obj: &'a Obj<'a>, key: &'static str, col: &mut impl Typed, i: usize,
             extra: &mut Extra<'a>, m: &mut Misuse) {
    if let Some(v) = get(obj, key) {
        if !col.accept(i, v, m) {
            extra.keep(key, v);
        }
    }
}

fn put_extra(col: &mut StrCol, i: usize, extra: &Extra, m: &mut Misuse) {
    if extra.is_empty() {
        col.put(i, "{}", m);
    } else {
        col.put_with(i, m, |out| extra.dump(out));
    }
}
