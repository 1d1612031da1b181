"""The decision log answers ``about(subject)`` from an index that follows every change."""

from npuc.ir.decisions import Decision, DecisionLog


def test_about_follows_records_and_changes_to_the_entries():
    log = DecisionLog()
    a = log.record("tiling", "n1", "one tile", "fits")
    log.record("tiling", "n2", "one tile", "fits")
    b = log.record("partition", "n1", "npu", "supported")
    assert log.about("n1") == [a, b] and log.about("none") == []
    early = Decision("quantize", "n1", "int8", "calibrated")
    log.entries[:0] = [early]  # prepended in place, as a copy of a graph's log is
    assert log.about("n1") == [early, a, b]
    log.entries.extend([Decision("fusion", "n3", "g1", "alone")])
    assert [d.action for d in log.about("n3")] == ["g1"]
    log.entries = [early]
    assert log.about("n1") == [early] and log.about("n2") == []
    c = log.record("tiling", "n1", "2 tiles", "fastest")
    assert log.about("n1") == [early, c]
    assert [d.subject for d in log] == ["n1", "n1"]
