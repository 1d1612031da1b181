"""The zoo's draws cache: a compile's second build replays the first's weights."""

import numpy as np
import pytest

from npuc import zoo
from npuc.compiler.zoo import draws


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NPUC_ZOO_CACHE", str(tmp_path))
    monkeypatch.delenv(draws.ENV, raising=False)
    monkeypatch.setattr(draws, "MIN_BYTES", 0)  # keep even a tiny model's draws
    return tmp_path


def _build(name="resnet-tiny", **options):
    arrays = {}
    proto = zoo.build(name, arrays=arrays, **options)
    return proto.SerializeToString(), {k: np.array(v) for k, v in arrays.items()}


def _files(cache):
    folder = cache / "draws"
    return sorted(folder.iterdir()) if folder.exists() else []


def _same(a, b):
    assert a[0] == b[0]
    assert a[1].keys() == b[1].keys()
    for k in a[1]:
        assert a[1][k].tobytes() == b[1][k].tobytes(), k


def test_second_build_replays_the_first_and_is_identical(cache, monkeypatch):
    monkeypatch.setenv(draws.ENV, "0")
    fresh = _build()
    assert not _files(cache)
    monkeypatch.delenv(draws.ENV)
    _same(_build(), fresh)  # recorded
    assert len(_files(cache)) == 1

    class NoDrawing:
        def __getattr__(self, name):
            raise AssertionError("drew instead of replaying")

    monkeypatch.setattr(np.random, "default_rng", lambda seed: NoDrawing())
    _same(_build(), fresh)


def test_options_and_names_have_files_of_their_own(cache):
    _build("bert-tiny")
    _build("bert-tiny", layers=1)
    _build("resnet-tiny")
    assert len(_files(cache)) == 3


def test_a_request_that_changed_draws_again_and_rewrites(cache, monkeypatch):
    fresh = _build()
    original = zoo.builder.GraphBuilder.normal

    def wider(self, shape, std, mean=0.0):  # as if the builder's code changed
        return original(self, shape, std * 2, mean)

    monkeypatch.setattr(zoo.builder.GraphBuilder, "normal", wider)
    changed = _build()
    assert changed[0] != fresh[0] or any(
        changed[1][k].tobytes() != fresh[1][k].tobytes() for k in fresh[1])
    assert len(_files(cache)) == 1  # the same name and options: the file was rewritten
    monkeypatch.setattr(zoo.builder.GraphBuilder, "normal", original)
    _same(_build(), fresh)
    _same(_build(), fresh)


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_a_damaged_file_is_drawn_again(cache, damage):
    fresh = _build()
    (path,) = _files(cache)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(data[:-3] + b"xyz")
    _same(_build(), fresh)
    assert path.read_bytes() == data  # rewritten


def test_a_draw_changed_in_place_by_the_builder_is_recorded_as_drawn(cache, monkeypatch):
    original = zoo.builder.GraphBuilder.normal

    def scribbling(self, shape, std, mean=0.0):
        array = original(self, shape, std, mean)
        copy = array.copy()
        array[...] = 7.0  # the caller's business after the draw: the cache keeps the draw
        return copy

    monkeypatch.setattr(zoo.builder.GraphBuilder, "normal", scribbling)
    fresh = _build()
    _same(_build(), fresh)


def test_small_models_are_not_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("NPUC_ZOO_CACHE", str(tmp_path))
    _build("resnet-tiny")
    assert not _files(tmp_path)


def test_builds_without_arrays_do_not_use_the_cache(cache):
    zoo.build("resnet-tiny")
    assert not _files(cache)
