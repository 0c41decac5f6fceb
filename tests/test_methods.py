"""Method behaviour on tiny random BERT, MPNet and DistilBERT backbones: what trains, what stays
frozen, that prompts/prefixes change the logits, that padding changes nothing, and exact counts."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel, MPNetConfig, MPNetModel

from methods import METHODS
from methods import build as build_method
from methods.base import MethodRefused
from methods.settings import TrainingSettings

HIDDEN, LAYERS, VOCAB, LABELS = 32, 2, 50, 2


def tiny_backbone(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    common = dict(vocab_size=VOCAB, max_position_embeddings=64, pad_token_id=0)
    if family == "bert":
        return BertModel(BertConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=4,
                                    intermediate_size=64, **common), add_pooling_layer=False)
    if family == "mpnet":
        return MPNetModel(MPNetConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=4,
                                      intermediate_size=64, **common), add_pooling_layer=False)
    return DistilBertModel(DistilBertConfig(dim=HIDDEN, n_layers=LAYERS, n_heads=4, hidden_dim=64, **common))


FAMILIES = ["bert", "mpnet", "distilbert"]
HEAD = HIDDEN * LABELS + LABELS


def build(method: str, family: str, **hparams) -> torch.nn.Module:
    torch.manual_seed(1)
    return build_method(method, tiny_backbone(family), LABELS, **hparams)


def batch() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[2, 7, 8, 9, 10, 3], [2, 11, 12, 3, 0, 0], [2, 13, 3, 0, 0, 0]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "target": torch.tensor([0, 1, 1])}


CASES = [(method, family) for method in METHODS for family in FAMILIES]


def build_or_skip(method: str, family: str, **hparams) -> torch.nn.Module:
    """The method on the family's tiny backbone; a combination the method refuses is skipped here (its
    refusal is tested in test_a_method_refuses_a_backbone_it_cannot_change)."""
    try:
        return build(method, family, **hparams)
    except MethodRefused as exc:
        pytest.skip(f"{method} refuses {family}: {exc}")


@pytest.mark.parametrize("method, family", CASES)
@pytest.mark.parametrize("train_head", [True, False])
def test_only_what_the_method_declares_trains(method: str, family: str, train_head: bool) -> None:
    model = build_or_skip(method, family, train_head=train_head, head_dropout=0.0)
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.trainable_parameters(), lr=0.5)
    model.train_step(**batch())["loss"].backward()
    optimizer.step()
    for name, param in model.named_parameters():
        should_train = train_head if name.startswith("head.") else model.trains(name)
        assert param.requires_grad == should_train, name
        if should_train:
            assert param.grad is not None, f"{name} received no gradient"
            if param.grad.abs().sum() > 0:
                assert not torch.equal(param, before[name]), f"{name} did not change"
        else:
            assert param.grad is None, f"frozen {name} received a gradient"
            assert torch.equal(param, before[name]), f"frozen {name} changed"
    own = [n for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    assert own, "the method trains nothing of its own"
    moved = [n for n in own if not torch.equal(dict(model.named_parameters())[n], before[n])]
    assert moved, "no parameter of the method moved in one step"  # (LoRA's A only moves once B has)


@pytest.mark.parametrize("method, family", CASES)
def test_the_methods_parameters_change_the_logits(method: str, family: str) -> None:
    model = build_or_skip(method, family)
    b = batch()
    assert model.ineffective(b["input_ids"], b["attention_mask"]) is None


def test_a_method_with_no_effect_is_caught() -> None:
    from methods.finetune.model import FineTune

    class Dead(FineTune):
        def setup(self) -> None:
            self.backbone.requires_grad_(False)
            self.unused = torch.nn.Parameter(torch.zeros(3))

    model = Dead(tiny_backbone("bert"), LABELS, METHODS["finetune"].settings(), TrainingSettings())
    b = batch()
    assert "leaves the logits unchanged" in model.ineffective(b["input_ids"], b["attention_mask"])
    model.unused.requires_grad_(False)
    assert "trains no parameter" in model.ineffective(b["input_ids"], b["attention_mask"])


@pytest.mark.parametrize("family", ["mpnet", "distilbert"])
def test_a_method_refuses_a_backbone_it_cannot_change(family: str, monkeypatch) -> None:
    """PEFT's prefix tuning hands its prefixes over as past_key_values, which MPNet and DistilBERT do not
    read: it is refused; forced past the refusal, the effect check sees that it changes nothing."""
    with pytest.raises(MethodRefused, match="past_key_values"):
        build("peft-prefix", family)
    from dataclasses import replace

    from methods.families import FAMILIES

    monkeypatch.setitem(FAMILIES._entries, family, replace(FAMILIES[family], uses_past_key_values=True))
    model = build("peft-prefix", family)
    unpadded = torch.tensor([[2, 7, 8, 9, 10, 3], [2, 11, 12, 13, 14, 3]])
    assert "leaves the logits unchanged" in model.ineffective(unpadded, torch.ones_like(unpadded))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_prompt_or_prefix_changes_the_output(method: str, family: str) -> None:
    model = build(method, family).eval()
    plain = build_method("finetune", model.backbone if method == "prompt" else tiny_backbone(family), LABELS).eval()
    plain.head.load_state_dict(model.head.state_dict())
    b = batch()
    with torch.no_grad():
        states = model.encode(b["input_ids"], b["attention_mask"])
        logits = model(b["input_ids"], b["attention_mask"])
        plain_states = plain.encode(b["input_ids"], b["attention_mask"])
        plain_logits = plain(b["input_ids"], b["attention_mask"])
        own = next(p for n, p in model.named_parameters() if not n.startswith(("backbone.", "head.")))
        own.add_(torch.randn_like(own))  # random, not constant: LayerNorm removes a uniform shift
        shifted_states = model.encode(b["input_ids"], b["attention_mask"])
        shifted_logits = model(b["input_ids"], b["attention_mask"])
    assert (states - plain_states).abs().max() > 1e-3
    assert (states - shifted_states).abs().max() > 1e-3
    assert not torch.equal(logits, plain_logits) and not torch.equal(logits, shifted_logits)


@pytest.mark.parametrize("method, family", CASES)
def test_right_padding_does_not_change_logits(method: str, family: str) -> None:
    model = build_or_skip(method, family).eval()
    ids = torch.tensor([[2, 7, 8, 9, 3]])
    padded = torch.tensor([[2, 7, 8, 9, 3, 0, 0, 0, 0]])
    with torch.no_grad():
        alone = model(ids, torch.ones_like(ids))
        in_padding = model(padded, (padded != 0).long())
        b = batch()
        in_batch = model(b["input_ids"], b["attention_mask"])[1]
        second = model(b["input_ids"][1:2, :4], b["attention_mask"][1:2, :4])[0]
    torch.testing.assert_close(alone, in_padding, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(in_batch, second, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_trainable_counts_match_closed_form(family: str) -> None:
    backbone_params = sum(p.numel() for p in tiny_backbone(family).parameters())
    prompt = build("prompt", family, prompt_len=5).parameter_counts()
    assert prompt["trainable_params_excl_head"] == 5 * HIDDEN
    assert prompt["trainable_params"] == 5 * HIDDEN + HEAD
    prefix = build("prefix", family, prefix_len=7).parameter_counts()
    assert prefix["trainable_params_excl_head"] == 7 * LAYERS * 2 * HIDDEN
    assert prefix["trainable_params"] == 7 * LAYERS * 2 * HIDDEN + HEAD
    projected = build("prefix", family, prefix_len=7, projection=True, projection_hidden=16).parameter_counts()
    assert projected["trainable_params_excl_head"] == 7 * HIDDEN + (HIDDEN * 16 + 16) + (16 * LAYERS * 2 * HIDDEN
                                                                                         + LAYERS * 2 * HIDDEN)
    finetune = build("finetune", family).parameter_counts()
    assert finetune["trainable_params"] == backbone_params + HEAD == finetune["total_params"]
    frozen_head = build("prompt", family, prompt_len=5, train_head=False).parameter_counts()
    assert frozen_head["trainable_params"] == frozen_head["trainable_params_excl_head"] == 5 * HIDDEN


@pytest.mark.parametrize("method, family", CASES)
@pytest.mark.parametrize("train_head", [True, False])
def test_every_methods_trainable_count_matches_its_closed_form(method: str, family: str, train_head: bool) -> None:
    model = build_or_skip(method, family, train_head=train_head)
    counts = model.parameter_counts()
    assert counts["trainable_params_excl_head"] == model.expected_trainable()
    assert counts["trainable_params"] == model.expected_trainable() + (HEAD if train_head else 0)


def linear_weights(model: torch.nn.Module, containing: str = "") -> int:
    return sum(m.weight.numel() for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and containing in n)


@pytest.mark.parametrize("family", FAMILIES)
def test_flops_finetune_is_6n(family: str) -> None:
    model = build("finetune", family)
    assert model.train_flops_per_token() == 6 * linear_weights(model)


@pytest.mark.parametrize("method", ["prompt", "prefix", "bitfit", "ia3", "peft-prompt"])
@pytest.mark.parametrize("family", FAMILIES)
def test_flops_of_frozen_weight_methods_are_4n_plus_the_head(method: str, family: str) -> None:
    """Activation gradients through every layer, weight gradients only for the head's Linear."""
    model = build(method, family)
    assert model.train_flops_per_token() == 4 * linear_weights(model) + 2 * HIDDEN * LABELS
    frozen_head = build(method, family, train_head=False)
    assert frozen_head.train_flops_per_token() == 4 * linear_weights(frozen_head)


@pytest.mark.parametrize("targets", ["qv", "all"])
@pytest.mark.parametrize("family", FAMILIES)
def test_flops_lora_is_4n_plus_6_lora_weights(targets: str, family: str) -> None:
    model = build("lora", family, targets=targets)
    lora = linear_weights(model, "lora_")
    assert lora == model.expected_trainable() > 0
    base = linear_weights(model) - lora
    assert model.train_flops_per_token() == 4 * base + 6 * lora + 2 * HIDDEN * LABELS


def test_flops_peft_prefix_is_4n_plus_the_head() -> None:
    model = build("peft-prefix", "bert")
    assert model.train_flops_per_token() == 4 * linear_weights(model) + 2 * HIDDEN * LABELS


def test_prefix_projection_trains_and_changes_logits() -> None:
    model = build("prefix", "bert", projection=True, projection_hidden=16)
    model.train_step(**batch())["loss"].backward()
    assert model.prefix_tokens.grad is not None and model.prefix_tokens.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.projection.parameters())


def test_unknown_hyperparameter_is_refused() -> None:
    with pytest.raises(ValueError, match="accepted"):
        build("prompt", "bert", prompt_length=3)


def test_duplicate_registration_is_refused() -> None:
    from methods.registry import MethodEntry, declare

    with pytest.raises(ValueError, match="registered twice"):
        declare(MethodEntry("prompt", "methods.prompt.model:PromptTuning", "again", METHODS["prompt"].settings))


def test_a_declaration_with_bad_defaults_or_a_shadowing_setting_is_refused() -> None:
    from dataclasses import dataclass

    from methods.registry import MethodEntry, declare
    from methods.settings import Settings, positive_int, setting

    @dataclass(frozen=True)
    class Shadowing(Settings):
        lr: int = setting(1, positive_int, "clashes with the training lr")

    with pytest.raises(ValueError, match="shadow training settings"):
        declare(MethodEntry("shadowing", "methods.finetune.model:FineTune", "x", Shadowing))
    with pytest.raises(ValueError, match="defaults are invalid"):
        declare(MethodEntry("bad-lr", "methods.finetune.model:FineTune", "x", training={"lr": -1.0}))
    with pytest.raises(ValueError, match="not training settings"):
        declare(MethodEntry("typo", "methods.finetune.model:FineTune", "x", training={"learning_rate": 1e-3}))
    assert not {"shadowing", "bad-lr", "typo"} & set(METHODS)


def test_every_declared_method_loads_a_method_with_typed_settings() -> None:
    from methods.base import Method

    for name, entry in METHODS.items():
        model = build(name, "bert")
        assert isinstance(model, Method) and isinstance(model.settings, entry.settings), name
        assert model.settings.as_dict() == entry.settings.defaults()
        assert model.train_settings.lr == entry.defaults()["lr"]


def test_a_method_is_one_folder_found_without_editing_a_shared_file(tmp_path) -> None:
    """A copy of ``methods/`` with one new folder (declaration and implementation) lists and builds the
    new method; no file of the copy but the new folder's was edited."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    shutil.copytree(root / "methods", tmp_path / "methods", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "methods" / "scaled").mkdir()
    (tmp_path / "methods" / "scaled" / "__init__.py").write_text(
        "from methods.registry import MethodEntry, declare\n"
        "declare(MethodEntry('scaled', 'methods.scaled.model:Scaled', 'a learned output scale'))\n")
    (tmp_path / "methods" / "scaled" / "model.py").write_text(
        "import torch\nfrom methods.finetune.model import FineTune\n"
        "class Scaled(FineTune):\n"
        "    def setup(self):\n        self.scale = torch.nn.Parameter(torch.ones(()))\n")
    probe = ("import sys; import methods; from transformers import BertConfig, BertModel\n"
             "backbone = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, "
             "num_attention_heads=4, intermediate_size=64), add_pooling_layer=False)\n"
             "model = methods.build('scaled', backbone, 2)\n"
             "print(','.join(methods.METHODS), type(model).__name__, methods.__file__)\n")
    env = {"PYTHONPATH": f"{tmp_path}{__import__('os').pathsep}{root}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    names, cls, where = out.stdout.rsplit(" ", 2)
    assert set(names.split(",")) == {*METHODS, "scaled"}, out.stdout
    assert cls == "Scaled" and where.strip().startswith(str(tmp_path))


def test_a_peft_method_whose_settings_are_not_peft_settings_is_refused() -> None:
    from methods.registry import PEFT_ADAPTER, MethodEntry, declare
    from methods.settings import Settings

    with pytest.raises(ValueError, match="must subclass methods.settings.PeftSettings"):
        declare(MethodEntry("untyped-peft", PEFT_ADAPTER, "x", Settings))
    assert "untyped-peft" not in METHODS
    for entry in METHODS.values():
        if entry.implementation == PEFT_ADAPTER:
            from methods.settings import PeftSettings

            assert issubclass(entry.settings, PeftSettings), entry.name
