"""Make sample_data/labelstudio/video_interpolated.json from video_tracks.json.

Label Studio can export video tracks with `interpolate_key_frames` (docs/formats.md A7). This script
applies the same rule to our hand-written export so the query layer's tests have a reproducible
oracle for "the shape of a track at frame f".

The rule, for every `videorectangle` result of an *annotation* (Label Studio applies it in its
AnnotationSerializer only; predictions and drafts keep their keyframes as stored):

- the keyframes are sorted by `frame` and all kept unchanged;
- for each *enabled* keyframe A, frames are generated strictly between A and the next keyframe
  B (whether B is enabled or not), or, when A is the last keyframe, from A.frame + 1 up to and
  including `value.framesCount`; a disabled keyframe generates nothing after it;
- a generated frame f is a copy of A (so `enabled` is true) with `"auto": true`, and with
  t = (f - A.frame) / (B.frame - A.frame):
    x, y, width, height, rotation = A + (B - A) * t   (after the last keyframe: A's values)
    time = round(A.time + (B.time - A.time) * t, 2);
  after the last keyframe, t = (f - A.frame) / (framesCount - A.frame) and
    time = round(A.time + (duration - A.time) * t, 2)  (A.time rounded if there is no duration);
- the sequence is then sorted by frame (keyframes and generated frames never share a frame).

Usage: python scripts/interpolate_ls_video.py [input.json [output.json]]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data" / "labelstudio"
SHAPE = ("x", "y", "width", "height", "rotation")


def generated(a: dict, b: dict | None, frames_count: int, duration: float) -> list[dict]:
    """Frames Label Studio adds after keyframe `a` (up to `b`, or to the end of the video)."""
    if not a["enabled"]:
        return []
    end = b["frame"] if b is not None else frames_count + 1
    span = (b["frame"] if b is not None else frames_count) - a["frame"]
    out = []
    for f in range(a["frame"] + 1, end):
        t = (f - a["frame"]) / span
        frame = dict(a, frame=f, auto=True)
        if b is not None:
            for k in SHAPE:  # an unchanged value is copied as written (0 stays 0, not 0.0)
                frame[k] = a[k] if a[k] == b[k] else a[k] + (b[k] - a[k]) * t
            frame["time"] = round(a["time"] + (b["time"] - a["time"]) * t, 2)
        else:
            frame["time"] = round(a["time"] + (duration - a["time"]) * t, 2) if duration else round(a["time"], 2)
        out.append(frame)
    return out


def interpolate(result: dict) -> dict:
    """One result with its sequence expanded (results of other types are returned as they are)."""
    if result.get("type") != "videorectangle":
        return result
    value = result["value"]
    keys = sorted(value["sequence"], key=lambda k: k["frame"])
    seq = list(keys)
    for i, a in enumerate(keys):
        b = keys[i + 1] if i + 1 < len(keys) else None
        seq += generated(a, b, value.get("framesCount", 0), value.get("duration", 0))
    seq.sort(key=lambda k: k["frame"])
    return dict(result, value=dict(value, sequence=seq))


def main(src: Path, dst: Path) -> None:
    tasks = json.loads(src.read_text(encoding="utf-8"))  # a small hand-written sample
    for task in tasks:
        for ann in task.get("annotations", []):
            ann["result"] = [interpolate(r) for r in ann["result"]]
    dst.write_text(json.dumps(tasks, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0]) if args else SAMPLES / "video_tracks.json",
         Path(args[1]) if len(args) > 1 else SAMPLES / "video_interpolated.json")
