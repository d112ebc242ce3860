"""A seeded minute of fuzzing (scripts/fuzz.py, the same loop): mutated sample files, each
converted and exported under a memory cap, must give an exact round trip or one error line."""
from __future__ import annotations

import sys

import pytest
from helpers import load_script

fuzz = load_script("fuzz")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the loop forks and caps RLIMIT_AS (Linux)")


@pytest.mark.slow
def test_mutants_round_trip_or_fail_with_one_line():
    counts = fuzz.run(seed=11, mutants=150)
    print(dict(counts))
    assert sum(counts.values()) == 150
    assert not {o: n for o, n in counts.items() if o in fuzz.FINDINGS}, dict(counts)
    assert counts["roundtrip"] > 0 and counts["bad_input"] > 0  # both paths were exercised


def test_the_loop_sees_a_finding():
    """Control: a run that cannot finish (no time at all) is reported, not passed."""
    data = (fuzz.SEEDS / "labelstudio" / "classification.json").read_bytes()
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        outcome, _ = fuzz.run_one(data, "c.json", Path(tmp) / "w", timeout=0.0)
        assert outcome == "hang" and outcome in fuzz.FINDINGS
        outcome, _ = fuzz.run_one(data, "c.json", Path(tmp) / "w")
        assert outcome == "roundtrip"
