"""``npuc estimate`` and ``npuc compare`` from the command line."""

import json

from npuc.compiler.cli import main


def test_estimate_a_decoder_writes_the_same_json_twice(tmp_path, capsys):
    args = ["estimate", "zoo:decoder-tiny", "--target", "rngd", "--workload", "in=8,out=8",
            "--chips", "2", "--qps", "50"]
    assert main(args + ["-o", str(tmp_path / "a.json")]) == 0
    table = capsys.readouterr().out
    assert "time to first token" in table and "cards for 50 req/s" in table
    assert main(args + ["-o", str(tmp_path / "b.json")]) == 0
    a = (tmp_path / "a.json").read_bytes()
    assert a == (tmp_path / "b.json").read_bytes()
    e = json.loads(a)
    assert e["kind"] == "decoder" and e["chips"] == 2
    s = e["serving"]
    assert s["tp"] * s["pp"] * s["dp"] == 2
    assert e["output_tokens_per_s"] > 0 and e["time_per_output_token_s"] > 0
    assert e["max_sequences"] == s["sequences"] * s["dp"]


def test_estimate_pinned_tensor_parallel(capsys):
    assert main(["estimate", "zoo:decoder-tiny", "--target", "rngd", "--chips", "2", "--tp",
                 "2", "--batch", "4", "--json"]) == 0
    e = json.loads(capsys.readouterr().out)
    assert (e["serving"]["tp"], e["serving"]["sequences"]) == (2, 4)
    assert e["serving"]["stage"]["all_reduce_s"] > 0


def test_estimate_a_vision_model_sweeps_batches(capsys):
    assert main(["estimate", "zoo:resnet-tiny", "--target", "rngd", "--batch", "1,2",
                 "--json", "--qps", "1e6"]) == 0
    e = json.loads(capsys.readouterr().out)
    assert [r["batch"] for r in e["batches"]] == [1, 2]
    best = max(e["batches"], key=lambda r: r["samples_per_s"])
    assert e["offline"]["batch"] == best["batch"]
    assert e["cards_for_load"] >= 1e6 / e["samples_per_s"]
    assert e["joules_per_inference"] == 150 / e["samples_per_s"]


def test_bad_options_are_one_line_errors(capsys):
    for args, message in [
        (["--workload", "in=8"], "give both in=N and out=M"),
        (["--workload", "x=1,out=2"], "expected in=N,out=M"),
        (["--latency-target", "fast"], "expected a positive time"),
        (["--tp", "2"], "--tp 2 x --pp 1 does not divide 1 chips"),
        (["--workload", "in=200000000,out=1"], "does not fit 1 x rngd"),
    ]:
        assert main(["estimate", "zoo:decoder-tiny", "--target", "rngd", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("npuc: error: ") and message in err and err.count("\n") == 1


def test_compare_writes_a_report_with_its_plots(tmp_path, capsys):
    html = tmp_path / "report.html"
    assert main(["compare", "zoo:decoder-tiny", "--targets", "rngd,atom,cpu", "--workload",
                 "in=8,out=8", "--qps", "100", "--html", str(html), "-o",
                 str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "1 x rngd" in out and "1 x atom" in out
    text = html.read_text()
    for plot in ("plot-latency", "plot-roofline", "plot-cards"):
        assert f'id="{plot}"><svg' in text
    assert text.count("<svg") == 3
    data = json.loads((tmp_path / "c.json").read_text())
    assert [e["target"] for e in data["estimates"]] == ["rngd", "atom", "cpu"]


def test_estimating_a_70b_decoder_reads_none_of_its_weights(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, NPUC_ZOO_CACHE=str(tmp_path))
    # the child reports its own peak memory after the command: VmHWM starts afresh at
    # exec, where ru_maxrss keeps the forking parent's
    code = ("import sys; from npuc.compiler.cli import main; "
            "rc = main(sys.argv[1:]); "
            "print([line.split()[1] for line in open('/proc/self/status') "
            "if line.startswith('VmHWM')][0], file=sys.stderr); "
            "sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, "estimate", "zoo:llama3.1-70b",
                           "--target", "rngd", "--chips", "8", "--quantize", "fp8",
                           "--workload", "in=2048,out=128", "--json"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    e = json.loads(proc.stdout)
    assert e["profile"]["parameters"] == 70_553_706_496
    assert e["serving"]["weight_bytes_per_chip"] * e["serving"]["tp"] * \
        e["serving"]["pp"] == e["profile"]["parameters"]  # fp8: a byte each
    # 282 GB of float32 weights behind it, mapped and never read
    assert int(proc.stderr.split()[-1]) < 1 << 20  # KiB: 1 GiB
    data = tmp_path / "llama3.1-70b" / "weights.bin"
    assert data.stat().st_size > 280e9 and data.stat().st_blocks * 512 < 1 << 20


def test_compare_measures_accuracy_on_given_inputs(tmp_path, capsys):
    import numpy as np

    from npuc import zoo

    np.savez(tmp_path / "in.npz", **zoo.sample_inputs("resnet-tiny", batch=1))
    assert main(["compare", "zoo:resnet-tiny", "--targets", "rngd", "--batch", "1",
                 "--inputs", str(tmp_path / "in.npz"), "--json"]) == 0
    a = json.loads(capsys.readouterr().out)["estimates"][0]["accuracy"]
    assert a["passed"] and a["reference"] == "onnxruntime" and a["sqnr_db_min"] > 25
