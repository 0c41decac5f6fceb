"""Nothing the harness reads runs code: a crafted model folder (pickled weights that run a command, a
config naming remote code) and a grid file full of code-like strings are refused or ignored, and the
marker file their code would create never appears. (Checkpoints: tests/test_checkpoint.py.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.backbones import BackboneError, load_backbone

ROOT = Path(__file__).resolve().parent.parent


def test_pickled_weights_that_run_code_are_refused_and_run_nothing(tiny_folder, tmp_path, runs_code) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_folder, folder)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "marker"
    torch.save({"embeddings.word_embeddings.weight": runs_code(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(BackboneError) as refused:
        load_backbone(str(folder))
    assert not marker.exists()
    assert "its model weights cannot be loaded" in str(refused.value)


def test_a_config_naming_remote_code_runs_none_of_it(tiny_folder, tmp_path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_folder, folder)
    marker = tmp_path / "marker"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                    "from transformers import BertModel as EvilModel, BertConfig as EvilConfig\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    try:
        load_backbone(str(folder))
    except BackboneError:
        pass  # refusing the folder is as good as ignoring its code
    assert not marker.exists()


def test_a_grid_file_of_code_like_strings_is_refused_and_runs_nothing(tmp_path) -> None:
    marker = tmp_path / "marker"
    grid = tmp_path / "evil.toml"
    payload = f"__import__('os').system('touch {marker}')"
    grid.write_text(f'description = "x"\nbackbones = ["{payload}"]\nmethods = ["{payload}"]\nseeds = [0]\n')
    done = subprocess.run([sys.executable, "-m", "bench", "--grid", str(grid), "--results", str(tmp_path / "r.csv")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert not marker.exists() and not (tmp_path / "r.csv").exists()
