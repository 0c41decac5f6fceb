"""A local model folder (``save_pretrained``): its config, weights and tokenizer files checked before
anything loads (a cut weights file is found from its framing alone), then loaded without remote code."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a model is built, so listing and checking names stay fast
    from torch import nn

from bench.backbones.spec import BackboneError, BackboneSpec

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
