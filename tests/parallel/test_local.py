"""Fan-out on local worker processes: order, shared data, retries, lost workers, Ctrl-C,
and calibration that gives the same model as one process."""

import multiprocessing

import numpy as np
import pytest

from npuc.compiler import fanout_local
from npuc.compiler.parallel import Fanout, FanoutError, fan_out, share, split_range
from npuc.ir.errors import NpucError
from tests.parallel import tasks


def test_results_come_back_in_item_order():
    assert fan_out(tasks.square, list(range(9)), Fanout(workers=2)) == [i * i for i in range(9)]


def test_each_worker_runs_in_a_session_of_its_own():
    import os

    workers = fan_out(tasks.session, list(range(4)), Fanout(workers=2))
    assert all(sid == pid != os.getsid(0) for pid, sid in workers)  # each leads its own


def test_split_range_covers_everything_once():
    for n in range(0, 30):
        for parts in range(1, 8):
            ranges = split_range(n, parts) if n else []
            assert [i for a, b in ranges for i in range(a, b)] == list(range(n))


def test_workers_read_one_memory_mapped_copy_of_the_shared_data():
    fanout = Fanout(workers=2)
    weights = np.arange(1000, dtype=np.float32)
    shared = share({"weights": weights, "bias": 0.5}, fanout)
    parts = split_range(1000, 4)
    got = fan_out(tasks.weighted_sum, parts, fanout, shared=shared)
    assert got == [float(weights[a:b].sum()) + 0.5 for a, b in parts]
    assert all(fan_out(tasks.is_shared_mapping, parts, fanout, shared=shared))


def test_a_task_that_raises_is_retried_and_reported(tmp_path):
    fanout = Fanout(workers=2)
    got = fan_out(tasks.flaky, list(range(4)), fanout, shared=share(str(tmp_path), fanout))
    assert got == [100, 101, 102, 103]
    assert len(fanout.events) == 2
    assert all("transient failure" in e and "retrying" in e for e in fanout.events)


def test_a_killed_worker_is_replaced_and_its_task_run_again(tmp_path):
    fanout = Fanout(workers=2)
    got = fan_out(tasks.dies_once, list(range(4)), fanout, shared=share(str(tmp_path), fanout))
    assert got == [0, 10, 20, 30]
    assert any("worker was lost" in e for e in fanout.events)


def test_a_task_that_keeps_failing_fails_the_run():
    fanout = Fanout(workers=2, retries=1)
    with pytest.raises(FanoutError, match="failed 2 times.*broken for good.*no result"):
        fan_out(tasks.always_fails, [0, 1], fanout)


def test_a_user_error_is_not_retried():
    fanout = Fanout(workers=2)
    with pytest.raises(NpucError, match="no such file"):
        fan_out(tasks.bad_input, [7], fanout)
    assert fanout.events == []


def test_interrupt_stops_the_workers():
    class Interrupting:
        """A progress bar whose first update is where the user pressed Ctrl-C."""

        def update(self, n):
            raise KeyboardInterrupt

    items = [0, 1, 2]
    with pytest.raises(KeyboardInterrupt):
        fanout_local.run(_first_then_sleep, items, Fanout(workers=2), None, [1] * 3,
                         Interrupting())
    assert multiprocessing.active_children() == []


def _first_then_sleep(item):
    return item if item == 0 else tasks.sleeps(item)


def test_fewer_than_one_worker_is_a_usage_error():
    with pytest.raises(NpucError, match="--workers must be at least 1"):
        Fanout(workers=0)


def test_compile_with_two_workers_writes_the_same_artifacts():
    from npuc.compiler import driver

    one = driver.compile("zoo:resnet-tiny", "warboy", calibration="random:6")
    two = driver.compile("zoo:resnet-tiny", "warboy", calibration="random:6",
                         fanout=Fanout(workers=2))
    assert sorted(one.files) == sorted(two.files)
    for name in one.files:
        assert one.files[name] == two.files[name], name


def test_quantize_command_with_workers(tmp_path, capsys):
    from npuc.compiler.cli import main

    outs = []
    for extra in ([], ["--workers", "2"]):
        out = tmp_path / f"q{len(outs)}.npuir"
        assert main(["quantize", "zoo:resnet-tiny", "-t", "warboy", "-c", "random:4",
                     "--method", "entropy", "-o", str(out), *extra]) == 0
        outs.append(out)
    assert (tmp_path / "q0.npuir.bin").read_bytes() == (tmp_path / "q1.npuir.bin").read_bytes()
    text = [o.read_text().split("\n", 1)[1] for o in outs]  # the first line names the blob
    assert text[0] == text[1]
    assert main(["quantize", "zoo:resnet-tiny", "-t", "warboy", "-c", "random:4",
                 "-o", str(tmp_path / "x.npuir"), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_samples_verified_on_workers_give_the_same_outputs():
    from npuc import zoo
    from npuc.compiler import driver
    from npuc.compiler.verify_samples import run_samples

    compiled = driver.compile("zoo:resnet-tiny", "warboy", calibration="random:2")
    samples = [zoo.sample_inputs(compiled.proto, batch=1, seed=i) for i in range(5)]
    one = run_samples("zoo:resnet-tiny", compiled, samples)
    two = run_samples("zoo:resnet-tiny", compiled, samples, Fanout(workers=2))
    assert len(two.got) == len(two.want) == len(two.ir) == 5
    assert two.reference == one.reference == "onnxruntime"
    for kind in ("got", "want", "ir"):
        for a, b in zip(getattr(one, kind), getattr(two, kind)):
            assert sorted(a) == sorted(b)
            assert all(a[k].tobytes() == b[k].tobytes() for k in a), kind


def test_ray_is_imported_only_when_asked_for():
    import subprocess
    import sys

    code = ("import sys\n"
            "from npuc.compiler.cli import build_parser\n"
            "import npuc.compiler.parallel, npuc.compiler.fanout_local, npuc.compiler.matrix\n"
            "import npuc.compiler.quantize.calibrate\n"
            "build_parser()\n"
            "assert 'ray' not in sys.modules, 'ray was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ray_missing_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(NpucError, match=r"pip install 'npuc\[ray\]'"):
        Fanout(ray="").slots()


def test_verify_of_a_folder_of_samples_on_workers_prints_what_one_process_prints(
        tmp_path, capsys):
    import numpy as np

    from npuc import zoo
    from npuc.compiler.cli import main

    folder = tmp_path / "samples"
    folder.mkdir()
    for i in range(4):
        np.savez(folder / f"s{i}.npz", **zoo.sample_inputs("resnet-tiny", batch=1, seed=i))
    printed = []
    for extra in ([], ["--workers", "2"]):
        code = main(["verify", "zoo:resnet-tiny", "-t", "warboy", "--calibration",
                     "random:2", "--inputs", str(folder), "--json", *extra])
        printed.append((code, capsys.readouterr().out))
    assert printed[0] == printed[1]
    assert '"samples": 4' in printed[0][1]
