//! Label Studio tasks into rows: a port of stream/formats/labelstudio.py and the rules of
//! stream/formats/common.py, which stay the specification. Where the Python reader would do
//! something this port does not (a reserved extra key, a timestamp spelled unusually, a value
//! Arrow would refuse, a task it raises on), `add` returns `Err(Decline)` and the task's rows
//! are dropped: the Python reader converts that task.

use std::borrow::Cow;

use bumpalo::Bump;

use crate::json::{self, dump, dump_obj, get, get_some, has, parse_with, Plan, V};
use crate::rows::*;
use crate::tables::*;

const SOURCE: &str = "labelstudio";

const TASK_KNOWN: &[&str] = &["total_annotations", "cancelled_annotations", "total_predictions",
    "id", "project", "data", "meta", "created_at", "updated_at",
    "annotations", "completions", "predictions", "drafts"];
const ANNOTATION_KNOWN: &[&str] = &["was_cancelled", "ground_truth", "lead_time", "model_version",
    "score", "result_count", "id", "completed_by", "created_at", "updated_at", "updated_by", "result"];
const RESULT_KNOWN: &[&str] = &["from_name", "to_name", "type", "origin", "score", "parentID",
    "readonly", "original_width", "original_height", "image_rotation", "id", "value"];
const RELATION_KNOWN: &[&str] = &["from_id", "to_id", "direction", "labels", "type"];
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
            // a legacy storage annotation's own keys (`result`, ...) are read as an annotation's
            Shape::Task if ANNOTATION_KNOWN.contains(&key) || key == "skipped" => Shape::Tree,
            Shape::Task => read(TASK_KNOWN),
            Shape::Annotation if key == "result" => Shape::Results,
            Shape::Annotation if key == "skipped" => Shape::Tree,
            Shape::Annotation => read(ANNOTATION_KNOWN),
            Shape::Result if key == "value" => if json::LATER.get() { Shape::Later } else { Shape::Value },
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

/// The Label Studio platform for the engine: its plan, and its tasks into the shared tables.
pub struct Ls;

impl Platform for Ls {
    type Shape = Shape;

    fn add(out: &mut Out, v: &V, cx: &mut Ctx) -> R<usize> {
        out.add_task(v, cx).map(|_| 1)
    }
}

impl Out {
    fn add_task(&mut self, v: &V, cx: &mut Ctx) -> R<()> {
        let V::Obj(obj) = v else { return Err(Decline) };
        if has(obj, "data") {
            return self.task(obj, cx, "task").map(|_| ());
        }
        if let Some(V::Obj(task)) = get(obj, "task") {
            if has(obj, "result") {
                // a legacy storage annotation: its task, then itself (all keys but `task`) as
                // the task's annotation at position -1
                let task_id = self.task(task, cx, "storage-annotation")?;
                return self.annotation(v, &task_id, "annotation", -1, None, cx);
            }
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

    /// A task's rows (`form`: "task", or "storage-annotation" for a legacy storage
    /// annotation's task); returns its task id.
    fn task(&mut self, obj: &Obj, cx: &mut Ctx, form: &str) -> R<String> {
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
        self.task_common(i, cx, form);
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
        Ok(task_id)
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
        let storage: Vec<&str>; // position -1: a legacy storage annotation, its task under `task`
        let known = if position < 0 {
            storage = [ANNOTATION_KNOWN, &["task"]].concat();
            &storage[..]
        } else {
            ANNOTATION_KNOWN
        };
        let mut extra = Extra::of(o, known)?;
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
        let result = child_list(o, "result", &mut a.list_keys, i, &mut extra, m);
        put_extra(&mut a.extra, i, &extra, m);
        a.n += 1;
        if let Some(items) = result {
            link.annotation_id = &aid;
            self.results(items, &link)?;
        }
        Ok(())
    }

    fn results(&mut self, items: &[V], link: &Link) -> R<()> {
        let mut scratch = Bump::new(); // a value kept as text (V::Raw) is parsed into this
        for (p, r) in items.iter().enumerate() {
            scratch.reset();
            let V::Obj(ro) = r else { return Err(Decline) };
            let typ = get(ro, "type");
            if let Some(V::Str(t)) = typ {
                if *t == "relation" {
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
                        parsed = parse_with(text, Shape::Value, &scratch).ok_or(Decline)?;
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
                            vo.iter().filter(|(k, _)| *k != "sequence").map(|(k, v)| (*k, v)), out));
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
            for x in xs.iter() {
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
                    for pt in pts.iter() {
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
            // one pass over the keys (a video has hundreds of thousands of keyframes): what
            // `Extra::of` and a `typed` per keyframe key make (labelstudio.py KEYFRAME_PLAIN),
            // misfits after the unknown keys, in that order
            let i = i0 + j;
            let mut extra = Extra::default();
            let mut misfits: [Option<(&str, &V)>; 9] = [None; 9];
            for (key, v) in o.iter() {
                let (slot, fits) = match &**key {
                    "frame" => (0, k.frame.accept(i, v, m)),
                    "time" => (1, k.time.accept(i, v, m)),
                    "enabled" => (2, k.enabled.accept(i, v, m)),
                    "x" => (3, k.x.accept(i, v, m)),
                    "y" => (4, k.y.accept(i, v, m)),
                    "width" => (5, k.width.accept(i, v, m)),
                    "height" => (6, k.height.accept(i, v, m)),
                    "rotation" => (7, k.rotation.accept(i, v, m)),
                    "auto" => (8, k.auto.accept(i, v, m)),
                    key => {
                        extra.unknown(key, v)?;
                        continue;
                    }
                };
                if !fits {
                    misfits[slot] = Some((&**key, v));
                }
            }
            for (key, v) in misfits.into_iter().flatten() {
                extra.keep(key, v);
            }
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
