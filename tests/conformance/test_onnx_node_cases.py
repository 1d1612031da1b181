"""The ONNX conformance node cases through import and execute (see harness.py)."""

from collections import Counter

from tests.conformance import harness

# Raise this as support grows; a drop below it is a regression.
MINIMUM_PASSING = 1865


def test_onnx_node_conformance(record_property):
    outcomes = harness.run_all()
    counts = Counter(o.status for o in outcomes)
    summary = harness.summary(outcomes)
    record_property("conformance", summary)
    harness.LAST_SUMMARY = summary
    crashes = [f"{o.name}: {o.detail}" for o in outcomes if o.status == "crash"]
    assert not crashes, "crashes (not one-line npuc errors):\n" + "\n".join(crashes[:20])
    assert counts["pass"] >= MINIMUM_PASSING, summary


def test_unsupported_cases_say_so_in_one_line():
    outcomes = harness.run_all("test_image_decoder")
    assert outcomes and all(o.status == "unsupported" for o in outcomes)
    for o in outcomes:
        assert "\n" not in o.detail and "ImageDecoder" in o.detail
