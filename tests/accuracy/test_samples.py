"""One sample loader: .npz, .npy, token ids, images, WAV, folders, random:N."""

import wave

import numpy as np
import pytest
from PIL import Image

import npuc
from npuc.compiler.samples import load_samples, parse_preprocess
from npuc.ir.errors import NpucError

from .models import image_model, mlp, token_model


def test_npz_with_a_batch_axis_splits_into_samples(tmp_path):
    g = npuc.import_onnx(mlp())
    np.savez(tmp_path / "cal.npz", x=np.arange(48, dtype=np.float32).reshape(3, 16))
    s = load_samples(str(tmp_path / "cal.npz"), g)
    assert len(s) == 3 and s[2]["x"].shape == (1, 16) and s[2]["x"][0, 0] == 32


def test_folder_mixes_npz_and_npy(tmp_path):
    g = npuc.import_onnx(mlp())
    np.savez(tmp_path / "a.npz", x=np.ones((2, 16), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((16,), np.float32))
    s = load_samples(str(tmp_path), g)
    assert [float(d["x"].sum()) for d in s] == [16.0, 16.0, 0.0]


def test_token_ids_in_text_pad_cut_and_mask(tmp_path):
    g = npuc.import_onnx(token_model(length=6))
    (tmp_path / "ids.txt").write_text("1 2 3\n\n4,5,6,7,8,9,10\n")
    s = load_samples(str(tmp_path / "ids.txt"), g)
    assert s[0]["input_ids"].tolist() == [[1, 2, 3, 0, 0, 0]]
    assert s[0]["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0]]
    assert s[1]["input_ids"].tolist() == [[4, 5, 6, 7, 8, 9]]
    np.save(tmp_path / "ids.npy", np.array([[3, 4], [5, 6]]))
    assert load_samples(str(tmp_path / "ids.npy"), g)[1]["input_ids"].tolist() == \
        [[5, 6, 0, 0, 0, 0]]
    (tmp_path / "bad.txt").write_text("1 2\nthree\n")
    with pytest.raises(NpucError, match="bad.txt:2"):
        load_samples(str(tmp_path / "bad.txt"), g)


def test_images_with_a_preprocessing_spec(tmp_path):
    g = npuc.import_onnx(image_model(h=6, w=5))
    pixels = np.zeros((12, 10, 3), np.uint8)
    pixels[..., 0] = 255
    Image.fromarray(pixels).save(tmp_path / "red.png")
    spec = "mean=0.5:0.5:0.5,std=0.5:0.5:0.5"
    s = load_samples(str(tmp_path / "red.png"), g, spec)
    x = s[0]["x"]
    assert x.shape == (1, 3, 6, 5)  # resized to the input, NCHW from its shape
    assert np.allclose(x[0, 0], 1.0) and np.allclose(x[0, 1], -1.0)
    bgr = load_samples(str(tmp_path / "red.png"), g, spec + ",color=bgr")[0]["x"]
    assert np.allclose(bgr[0, 2], 1.0)
    with pytest.raises(NpucError, match="--preprocess"):
        parse_preprocess("resize=big")


def test_wav_is_mono_float_padded_to_the_input(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Abs", ["audio"], ["y"])], "a",
                              [helper.make_tensor_value_info("audio", TensorProto.FLOAT,
                                                             [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])])
    g = npuc.import_onnx(helper.make_model(graph))
    pcm = np.array([[16384, 0], [-16384, 0], [32767, 32767]], np.int16)
    with wave.open(str(tmp_path / "a.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    x = load_samples(str(tmp_path / "a.wav"), g)[0]["audio"]
    assert x.shape == (1, 8)
    assert np.allclose(x[0, :3], [0.25, -0.25, 32767 / 32768]) and not x[0, 3:].any()


def test_random_warns_on_the_terminal_and_bad_paths_are_named(tmp_path, capsys):
    g = npuc.import_onnx(mlp())
    assert len(load_samples("random:3", g)) == 3
    assert "RANDOM" in capsys.readouterr().err
    with pytest.raises(NpucError, match="nothing.npz"):
        load_samples(str(tmp_path / "nothing.npz"), g)
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(NpucError, match="unknown kind of file"):
        load_samples(str(tmp_path / "model.onnx"), g)
