//! Dataloop items into rows: a port of stream/formats/dataloop.py, whose module docstring
//! lists every rule and which stays the specification. Where this port is not sure to do what
//! the Python reader does (a reserved extra key, a timestamp spelled unusually, an int a
//! float64 column cannot hold exactly, an unusual frame rate, an item it raises on), `add`
//! returns `Err(Decline)`: the Python reader converts that item.

use crate::cols::*;
use crate::json::{dump, dump_obj, get, has, Plan, V};
use crate::rows::*;
use crate::tables::*;

const SOURCE: &str = "dataloop";
const TS_DIGITS: usize = 3; // Dataloop writes milliseconds: 2022-06-07T09:13:41.000Z

const DATA_KEYS: [&str; 6] = ["filename", "dir", "name", "url", "stream", "thumbnail"];
const ITEM_KNOWN: &[&str] = &["filename", "dir", "name", "url", "stream", "thumbnail", "id",
    "datasetId", "createdAt", "updatedAt", "metadata", "annotations"];
const ITEM_MARKERS: [&str; 3] = ["id", "_id", "filename"];
const RESULT_KEYS: [&str; 4] = ["attributes", "metadata", "description", "labelSuggestions"];
const ANNOTATION_KNOWN: &[&str] = &["creator", "updatedBy", "source", "attributes", "metadata",
    "description", "labelSuggestions", "id", "createdAt", "updatedAt", "type", "label", "coordinates"];
const SNAPSHOT_KNOWN: &[&str] = &["frame", "objectVisible", "label", "fixed", "type"];
const CUBE_CORNERS: [&str; 8] = ["front_tl", "front_tr", "front_br", "front_bl",
    "back_tl", "back_tr", "back_br", "back_bl"];
const POLYGONS: [&str; 3] = ["segment", "polygon", "polyline"];
const TEXT_OBJECTS: [&str; 2] = ["subtitle", "item_description"];

/// Where a value sits in an item: what the reader looks into is built as a tree, the keys it
/// only keeps in `extra` stay text (`json::Plan`).
#[derive(Clone, Copy, Default)]
pub enum Shape {
    #[default]
    Item,
    Annotations,
    Annotation,
    Tree,
    Text,
}

impl Plan for Shape {
    fn raw(self) -> bool {
        matches!(self, Shape::Text)
    }
    fn key(self, key: &str) -> Shape {
        match self {
            Shape::Item if key == "annotations" => Shape::Annotations,
            Shape::Item if key == "elements" => Shape::Tree, // a text-classification document's
            Shape::Item if ITEM_KNOWN.contains(&key) || key == "itemMetadata" || key == "_id" => Shape::Tree,
            Shape::Annotation if ANNOTATION_KNOWN.contains(&key) => Shape::Tree,
            Shape::Item | Shape::Annotation => Shape::Text,
            _ => Shape::Tree,
        }
    }
    fn item(self) -> Shape {
        match self {
            Shape::Annotations => Shape::Annotation,
            _ => Shape::Tree,
        }
    }
}

/// The Dataloop platform for the engine: items into the shared tables.
pub struct Dl;

impl Platform for Dl {
    type Shape = Shape;

    fn add(out: &mut Out, v: &V, cx: &mut Ctx) -> R<usize> {
        let V::Obj(obj) = v else { return Err(Decline) }; // the Python reader raises
        if cx.container == "elements" {
            return elements(out, obj, cx);
        }
        if !ITEM_MARKERS.iter().any(|k| has(obj, k)) {
            return Err(Decline);
        }
        item(out, obj, cx).map(|_| 1)
    }
}

// -- value rules ----------------------------------------------------------------------------

/// `is_num(v)` and the float64 column's value: an int beyond 2**53 is declined.
fn number(v: Option<&V>) -> R<Option<f64>> {
    match v {
        Some(V::Float(f)) => Ok(Some(*f)),
        Some(V::Int(n)) if (-EXACT_INT..=EXACT_INT).contains(n) => Ok(Some(*n as f64)),
        Some(V::Int(_)) => Err(Decline),
        _ => Ok(None),
    }
}

fn obj_of<'a>(v: Option<&'a V<'a>>) -> &'a Obj<'a> {
    match v {
        Some(V::Obj(o)) => o,
        _ => &[],
    }
}

fn text_of<'a>(v: Option<&'a V<'a>>) -> Option<&'a str> {
    match v {
        Some(V::Str(s)) => Some(s),
        _ => None,
    }
}

/// `_id`: `id` into its text column; the old `_id` (left in `extra`) or `synthetic` stand in.
fn id<'a>(obj: &'a Obj<'a>, col: &mut StrCol, i: usize, extra: &mut Extra<'a>,
          synthetic: impl FnOnce() -> String, m: &mut Misuse) -> R<String> {
    let v = get(obj, "id");
    let (mut text, keep) = id_fit(v.unwrap_or(&V::Null), false)?;
    if let (Some(v), true) = (v, keep) {
        extra.keep("id", v);
    }
    if text.is_none() {
        if v.is_none() {
            extra.absent("id");
        }
        text = id_fit(get(obj, "_id").unwrap_or(&V::Null), false)?.0;
    }
    let text = text.unwrap_or_else(synthetic);
    col.put(i, &text, m);
    Ok(text)
}

/// `media_fps`: metadata.fps, else metadata.system.fps, else the ffmpeg average frame rate
/// 'n/d' (plain decimals only: another spelling Python's float() reads is declined).
fn media_fps(meta: &Obj, system: &Obj) -> R<Option<f64>> {
    for v in [get(meta, "fps"), get(system, "fps")] {
        if let Some(x) = number(v)? {
            if x > 0.0 {
                return Ok(Some(x));
            }
        }
    }
    let Some(rate) = text_of(get(obj_of(get(system, "ffmpeg")), "avg_frame_rate")) else {
        return Ok(None);
    };
    let (num, den) = rate.split_once('/').unwrap_or((rate, ""));
    let decimal = |s: &str| -> R<f64> {
        let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
        let digits = |p: &str| !p.is_empty() && p.len() < 300 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || !digits(frac) {
            return Err(Decline);
        }
        s.parse::<f64>().map_err(|_| Decline)
    };
    let n = decimal(num)?;
    let d = if den.is_empty() { 1.0 } else { decimal(den)? };
    if d == 0.0 {
        return Ok(None); // ZeroDivisionError
    }
    let v = n / d;
    Ok((v > 0.0).then_some(v))
}

/// `attributes_of`: the v2 dict when it has entries, else v1 as written.
fn attributes_of<'a>(v1: Option<&'a V<'a>>, v2: Option<&'a V<'a>>) -> Option<&'a V<'a>> {
    match v2 {
        Some(V::Obj(o)) if !o.is_empty() => v2,
        _ => v1,
    }
}

// -- geometry -------------------------------------------------------------------------------

/// The geometry columns of a results or keyframes row.
struct Geo<'c> {
    x: &'c mut F64Col,
    y: &'c mut F64Col,
    width: &'c mut F64Col,
    height: &'c mut F64Col,
    rotation: &'c mut F64Col,
    points: &'c mut PointsCol,
}

macro_rules! geo {
    ($t:expr) => {
        Geo { x: &mut $t.x, y: &mut $t.y, width: &mut $t.width, height: &mut $t.height,
              rotation: &mut $t.rotation, points: &mut $t.points }
    };
}

fn point(p: Option<&V>) -> R<Option<[f64; 2]>> {
    let o = match p {
        Some(V::Obj(o)) => o,
        _ => return Ok(None),
    };
    Ok(match (number(get(o, "x"))?, number(get(o, "y"))?) {
        (Some(x), Some(y)) => Some([x, y]),
        _ => None,
    })
}

fn points(ring: &[&V]) -> R<Option<Vec<[f64; 2]>>> {
    if ring.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(ring.len());
    for p in ring {
        match point(Some(p))? {
            Some(xy) => out.push(xy),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// `geometry`: pixel geometry of one coordinates value into row i; true when filled.
fn geometry(g: &mut Geo, i: usize, typ: Option<&str>, co: Option<&V>, m: &mut Misuse) -> R<bool> {
    let (mut typ, mut co) = (typ, co);
    if typ == Some("note") {
        if let Some(V::Obj(o)) = co {
            typ = Some("box");
            co = get(o, "box");
        }
    }
    let Some(typ) = typ else { return Ok(false) };
    match (typ, co) {
        ("box", Some(V::Arr(c))) if c.len() >= 2 => {
            let (Some(a), Some(b)) = (point(c.first())?, point(c.get(1))?) else { return Ok(false) };
            // Python's min keeps the first of equals
            g.x.put(i, if b[0] < a[0] { b[0] } else { a[0] }, m);
            g.y.put(i, if b[1] < a[1] { b[1] } else { a[1] }, m);
            g.width.put(i, (b[0] - a[0]).abs(), m);
            g.height.put(i, (b[1] - a[1]).abs(), m);
            if let Some(r) = number(c.get(2))? {
                g.rotation.put(i, r, m);
            }
            Ok(true)
        }
        ("box", _) => Ok(false),
        (t, Some(co)) if POLYGONS.contains(&t) => {
            let ring = match co {
                V::Arr(c) if matches!(c.first(), Some(V::Arr(_))) => &c[0], // ok: first() is Some
                _ => co,
            };
            let V::Arr(ring) = ring else { return Ok(false) };
            match points(&ring.iter().collect::<Vec<_>>())? {
                Some(pts) => {
                    g.points.put(i, &pts, m);
                    Ok(true)
                }
                None => Ok(false),
            }
        }
        ("point", co) => match point(co)? {
            Some([x, y]) => {
                g.x.put(i, x, m);
                g.y.put(i, y, m);
                Ok(true)
            }
            None => Ok(false),
        },
        ("ellipse", Some(V::Obj(o))) => {
            let (Some([x, y]), Some(rx), Some(ry)) =
                (point(get(o, "center"))?, number(get(o, "rx"))?, number(get(o, "ry"))?) else {
                return Ok(false);
            };
            g.x.put(i, x, m);
            g.y.put(i, y, m);
            g.width.put(i, 2.0 * rx, m);
            g.height.put(i, 2.0 * ry, m);
            angle(g, i, o, m)
        }
        ("cube", Some(V::Obj(o))) => {
            let corners: Vec<&V> = CUBE_CORNERS.iter().filter_map(|k| get(o, k)).collect();
            match points(&corners)? {
                Some(pts) => {
                    g.points.put(i, &pts, m);
                    angle(g, i, o, m)
                }
                None => Ok(false),
            }
        }
        _ => Ok(false),
    }
}

fn angle(g: &mut Geo, i: usize, o: &Obj, m: &mut Misuse) -> R<bool> {
    if let Some(a) = number(get(o, "angle"))? {
        g.rotation.put(i, a, m);
    }
    Ok(true)
}

// -- the reader -----------------------------------------------------------------------------

fn item(out: &mut Out, obj: &Obj, cx: &Ctx) -> R<()> {
    let i = out.t.n;
    let mut extra = Extra::of(obj, ITEM_KNOWN)?;
    let (t, m) = (&mut out.t, &mut out.misuse);
    let task_id = id(obj, &mut t.task_id, i, &mut extra, || format!("~{}#{}", cx.file, cx.position), m)?;
    if let Some(v) = get(obj, "datasetId") {
        let (text, keep) = id_fit(v, false)?;
        if let Some(text) = text {
            t.project_id.put(i, &text, m);
        }
        if keep {
            extra.keep("datasetId", v);
        }
    }
    t.source.put(i, SOURCE, m);
    t.position.put(i, cx.position, m);
    t.file.put(i, cx.file, m);
    t.container.put(i, cx.container, m);
    t.form.put(i, "item", m);
    t.data.put_with(i, m, |o| dump_obj(DATA_KEYS.iter().filter_map(|k| get(obj, k).map(|v| (*k, v))), o));
    let key = ["metadata", "itemMetadata"].into_iter().find(|k| has(obj, k));
    let meta = key.and_then(|k| get(obj, k));
    if let Some(mv) = meta {
        t.meta.put_with(i, m, |o| dump(mv, o));
        if key == Some("itemMetadata") {
            extra.absent("metadata");
        }
    }
    ts_col_digits(obj, "createdAt", &mut t.created_at, i, &mut extra, TS_DIGITS, m)?;
    ts_col_digits(obj, "updatedAt", &mut t.updated_at, i, &mut extra, TS_DIGITS, m)?;
    if let Some(name) = text_of(get(obj, "name")) {
        t.media_name.put(i, name, m);
    }
    let meta = obj_of(meta);
    let system = obj_of(get(meta, "system"));
    let mimetype = text_of(get(system, "mimetype"));
    if let Some(mt) = mimetype {
        t.mimetype.put(i, mt, m);
    }
    let mimetype = mimetype.unwrap_or("");
    for (key, col) in [("width", &mut t.width), ("height", &mut t.height)] {
        if let Some(V::Int(n)) = get(system, key) {
            col.put(i, *n, m);
        }
    }
    let fps = media_fps(meta, system)?;
    t.fps.put_opt(i, fps, m);
    if let Some(d) = number(get(system, "duration"))? {
        t.duration.put(i, d, m);
    }
    let anns = child_list(obj, "annotations", &mut t.list_keys, i, &mut extra, m);
    put_extra(&mut t.extra, i, &extra, m);
    t.n += 1;
    if let Some(anns) = anns {
        let video = mimetype.starts_with("video/");
        let media = Media { video, timed: video || mimetype.starts_with("audio/"), fps };
        for (p, ann) in anns.iter().enumerate() {
            annotation(out, ann, &task_id, p as i64, &media, cx)?;
        }
    }
    Ok(())
}

/// `_element`: every element of a text-classification document (`"shebang": "dataloop"`) is
/// a tasks row, its `meta` the document's other keys; the document is one item's content.
fn elements(out: &mut Out, doc: &Obj, cx: &Ctx) -> R<usize> {
    let Some(V::Arr(els)) = get(doc, "elements") else { return Err(Decline) };
    let mut meta = Vec::new();
    dump_obj(doc.iter().filter(|(k, _)| *k != "elements").map(|(k, v)| (*k, v)), &mut meta);
    let meta = String::from_utf8(meta).map_err(|_| Decline)?;
    let (t, m) = (&mut out.t, &mut out.misuse);
    for (p, el) in els.iter().enumerate() {
        let V::Obj(eo) = el else { return Err(Decline) }; // the Python reader raises
        let (i, position) = (t.n, cx.position + p as i64);
        t.source.put(i, SOURCE, m);
        t.task_id.put(i, &format!("~{}#{}", cx.file, position), m);
        t.position.put(i, position, m);
        t.file.put(i, cx.file, m);
        t.container.put(i, cx.container, m);
        let annotatable = matches!(get(eo, "annotatable"), Some(V::Bool(true)));
        t.form.put(i, if annotatable { "element" } else { "context" }, m);
        t.data.put_with(i, m, |o| dump(el, o));
        t.meta.put(i, &meta, m);
        t.list_keys.put(i, std::iter::empty(), m);
        t.extra.put(i, "{}", m);
        t.n += 1;
    }
    Ok(els.len())
}

/// What an item's media type means for its annotations.
struct Media {
    video: bool,
    timed: bool,
    fps: Option<f64>,
}

fn annotation(out: &mut Out, ann: &V, task_id: &str, p: i64, media: &Media, cx: &Ctx) -> R<()> {
    let V::Obj(o) = ann else { return Err(Decline) }; // the Python reader raises
    let i = out.a.n;
    let (a, m) = (&mut out.a, &mut out.misuse);
    let mut extra = Extra::of(o, ANNOTATION_KNOWN)?;
    let aid = id(o, &mut a.annotation_id, i, &mut extra, || format!("~{task_id}/a{p}"), m)?;
    let link = Link { source: SOURCE, task_id, file: cx.file, task_position: cx.position,
                      kind: "annotation", annotation_id: &aid, annotation_position: p };
    a.link_task(i, 1, &link, m);
    a.position.put(i, p, m);
    a.form.put(i, "object", m);
    typed(o, "creator", &mut a.completed_by, i, &mut extra, m);
    typed(o, "updatedBy", &mut a.updated_by, i, &mut extra, m);
    typed(o, "source", &mut a.origin, i, &mut extra, m);
    if let Some(creator) = text_of(get(o, "creator")) {
        if creator.contains('@') { // Dataloop users are emails
            a.completed_by_email.put(i, creator, m);
        }
    }
    ts_col_digits(o, "createdAt", &mut a.created_at, i, &mut extra, TS_DIGITS, m)?;
    ts_col_digits(o, "updatedAt", &mut a.updated_at, i, &mut extra, TS_DIGITS, m)?;
    let system = obj_of(get(obj_of(get(o, "metadata")), "system"));
    if let Some(V::Bool(b)) = get(system, "automated") {
        a.automated.put(i, *b, m);
    }
    a.list_keys.put(i, std::iter::empty(), m);
    put_extra(&mut a.extra, i, &extra, m);
    a.n += 1;
    result(out, o, &link, system, media)
}

/// `_result`: the annotation's one results row (and its keyframes).
fn result(out: &mut Out, ann: &Obj, link: &Link, system: &Obj, media: &Media) -> R<()> {
    let i = out.r.n;
    let snapshots = match get(system, "snapshots_") {
        Some(V::Arr(s)) if media.video => Some(s),
        _ => None,
    };
    // a track's metadata in `extra` without the snapshots that became keyframe rows
    let (cut_system, cut_md): (Vec<_>, Vec<_>);
    let cut = match snapshots {
        Some(_) => {
            cut_system = system.iter().filter(|(k, _)| *k != "snapshots_").copied().collect();
            cut_md = obj_of(get(ann, "metadata")).iter()
                .map(|&(k, v)| if k == "system" { (k, V::Obj(&cut_system)) } else { (k, v) })
                .collect();
            Some(V::Obj(&cut_md))
        }
        None => None,
    };
    let (c, m) = (&mut out.r, &mut out.misuse);
    let mut extra = Extra::default();
    for k in RESULT_KEYS {
        if let Some(v) = get(ann, k) {
            extra.keep(k, v);
        }
    }
    let typ = match get(ann, "type") {
        Some(V::Str(t)) => {
            c.r#type.put(i, t, m);
            Some(&**t)
        }
        Some(v) => {
            extra.keep("type", v); // kept as is; no geometry can be read without a type name
            None
        }
        None => None,
    };
    match get(ann, "label") {
        Some(V::Str(l)) => c.labels.put(i, [Some(&**l)], m),
        Some(v) => extra.keep("label", v),
        None => {}
    }
    let rid = id_fit(get(system, "objectId").unwrap_or(&V::Null), false)?.0
        .unwrap_or_else(|| link.annotation_id.to_string());
    c.link(i, 1, link, m);
    c.region_id.put(i, &rid, m);
    c.position.put(i, 0, m);
    if let Some(parent) = text_of(get(system, "parentId")) {
        c.parent_id.put(i, parent, m);
    }
    let attributes = attributes_of(get(ann, "attributes"), get(system, "attributes"));
    if let Some(at) = attributes {
        c.attributes.put_with(i, m, |o| dump(at, o));
    }
    let co = get(ann, "coordinates");
    if let Some(co) = co {
        c.value.put_with(i, m, |o| dump(co, o));
    }
    if geometry(&mut geo!(c), i, typ, co, m)? {
        c.unit.put(i, "pixel", m);
    } else if let (Some("text_mark"), Some(V::Obj(co))) = (typ, co) {
        if let (Some(V::Int(s)), Some(V::Int(e))) = (get(co, "start"), get(co, "end")) {
            c.span_start.put(i, *s, m);
            c.span_end.put(i, *e, m);
        }
    } else if let (Some("text"), Some(V::Str(s))) = (typ, co) {
        c.text.put(i, s, m);
    } else if let (Some(t), Some(V::Obj(co))) = (typ, co) {
        if TEXT_OBJECTS.contains(&t) {
            if let Some(s) = text_of(get(co, "text")) {
                c.text.put(i, s, m);
            }
        }
    }
    if media.timed || typ == Some("subtitle") {
        if let Some(x) = number(get(system, "startTime"))? {
            c.time_start.put(i, x, m);
        }
        if let Some(x) = number(get(system, "endTime"))? {
            c.time_end.put(i, x, m);
        }
    }
    if media.video {
        if let Some(V::Int(f)) = get(system, "frame") {
            c.frame_start.put(i, *f, m);
        }
        if let Some(V::Int(f)) = get(system, "endFrame") {
            c.frame_end.put(i, *f, m);
        }
    }
    if let Some(md) = &cut {
        extra.set("metadata", E::Ref(md));
    }
    put_extra(&mut c.extra, i, &extra, m);
    c.n += 1;
    if let Some(snaps) = snapshots {
        let track = Track { ann, system, rid: &rid, typ, attributes };
        keyframes(out, snaps, &track, link, media.fps)?;
    }
    Ok(())
}

/// A video track's annotation, for its keyframe rows.
struct Track<'t> {
    ann: &'t Obj<'t>,
    system: &'t Obj<'t>,
    rid: &'t str,
    typ: Option<&'t str>,
    attributes: Option<&'t V<'t>>,
}

/// `_keyframes`: position 0 the track's start state (from the annotation), 1.. the snapshots.
fn keyframes(out: &mut Out, snaps: &[V], tr: &Track, link: &Link, fps: Option<f64>) -> R<()> {
    let (k, m) = (&mut out.k, &mut out.misuse);
    for p in 0..=snaps.len() {
        let i = k.n;
        k.link(i, 1, link, m);
        k.region_id.put(i, tr.rid, m);
        k.result_position.put(i, 0, m);
        k.position.put(i, p as i64, m);
        let frame = if p == 0 {
            let frame = get(tr.system, "frame");
            if let Some(V::Int(f)) = frame {
                k.frame.put(i, *f, m);
            }
            k.enabled.put(i, true, m);
            if let Some(l) = text_of(get(tr.ann, "label")) {
                k.label.put(i, l, m);
            }
            if let Some(at) = tr.attributes {
                k.attributes.put_with(i, m, |o| dump(at, o));
            }
            geometry(&mut geo!(k), i, tr.typ, get(tr.ann, "coordinates"), m)?;
            k.extra.put(i, "{}", m);
            frame
        } else {
            let V::Obj(snap) = &snaps[p - 1] else { return Err(Decline) }; // ok: p <= len
            let mut extra = Extra::of(snap, SNAPSHOT_KNOWN)?;
            typed(snap, "frame", &mut k.frame, i, &mut extra, m);
            typed(snap, "objectVisible", &mut k.enabled, i, &mut extra, m);
            typed(snap, "label", &mut k.label, i, &mut extra, m);
            typed(snap, "fixed", &mut k.fixed, i, &mut extra, m);
            typed(snap, "type", &mut k.r#type, i, &mut extra, m);
            if let Some(at) = attributes_of(get(snap, "attributes"), get(snap, "namedAttributes")) {
                k.attributes.put_with(i, m, |o| dump(at, o));
            }
            geometry(&mut geo!(k), i, tr.typ, get(snap, "data"), m)?;
            put_extra(&mut k.extra, i, &extra, m);
            get(snap, "frame")
        };
        if let (Some(fps), Some(V::Int(f))) = (fps, frame) {
            k.time.put(i, *f as f64 / fps, m); // Python's int / float rounds the int alike
        }
        k.n += 1;
    }
    Ok(())
}
