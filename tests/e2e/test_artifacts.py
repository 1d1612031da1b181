"""The output folder: complete, deterministic, portable."""

import json
import os

import npuc

FILES = {"program.json", "weights.bin", "schedule.json", "summary.json", "decisions.json",
         "report.html"}


def _read_all(folder):
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(FILES)}


def test_compiling_twice_gives_identical_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    npuc.compile("zoo:resnet-tiny", "warboy-2pe", calibration="random:2", output_dir=str(a))
    npuc.compile("zoo:resnet-tiny", "warboy-2pe", calibration="random:2", output_dir=str(b))
    assert set(os.listdir(a)) == FILES | {".npuc-output"}
    assert _read_all(a) == _read_all(b)


def test_summary_has_the_promised_fields_and_no_absolute_paths(tmp_path):
    out = tmp_path / "o"
    npuc.compile("zoo:bert-tiny", "rngd", output_dir=str(out))
    summary = json.loads((out / "summary.json").read_text())
    for key in ("target", "estimated_latency_s", "sram_peak_bytes", "sram_bytes",
                "dram_traffic_bytes", "layers"):
        assert key in summary
    assert summary["layers"] and "estimated_s" in summary["layers"][0]
    for name in FILES - {"weights.bin"}:
        assert str(tmp_path) not in (out / name).read_text()
    assert "<svg" in (out / "report.html").read_text()


def test_a_failed_compile_leaves_no_folder(tmp_path):
    out = tmp_path / "never"
    try:
        npuc.compile("zoo:resnet-tiny", "warboy-2pe", quantize="bf16", output_dir=str(out))
    except npuc.NpucError:
        pass
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".npuc-")]
