"""What every entry of every registry promises, checked entry by entry (no training, no torch model).

A new grid, budget, method, backbone, family, task or launcher is added as one entry; these tests are
parametrised over the registries, so the entry is held to the contract of its kind without a test of
its own: it is named by its key, it names only things that exist, its defaults are valid settings, and
an unknown name is refused with one line listing every entry.
"""

from __future__ import annotations

import pytest

from bench.backbones import BACKBONES
from bench.config.grid_files import GRIDS, expand_sweeps
from bench.config.grids import BUDGETS, valid_seed
from bench.launchers import LAUNCHERS, Launcher
from bench.registry import Registry, UnknownName
from bench.tasks import TASKS
from methods.families import FAMILIES
from methods.registry import METHODS

REGISTRIES: dict[str, Registry] = {"grid": GRIDS, "budget": BUDGETS, "method": METHODS, "backbone": BACKBONES,
                                   "family": FAMILIES, "task": TASKS, "launcher": LAUNCHERS}
NAMED = {"grid": "name", "budget": "name", "method": "name", "backbone": "name", "family": "model_type",
         "launcher": "name"}


def entries(kind: str) -> list:
    return [pytest.param(name, id=f"{kind}:{name}") for name in REGISTRIES[kind]]


@pytest.mark.parametrize("kind", REGISTRIES)
def test_every_registry_has_entries_and_refuses_an_unknown_name_listing_them_all(kind: str) -> None:
    registry = REGISTRIES[kind]
    assert len(registry) > 0
    with pytest.raises(UnknownName) as caught:
        registry["no-such-entry"]
    message = str(caught.value)
    assert "\n" not in message and "'no-such-entry'" in message
    assert all(name in message.split("accepted: ", 1)[1] for name in registry)
    assert "no-such-entry" not in registry and ["unhashable"] not in registry


@pytest.mark.parametrize("kind", NAMED)
def test_every_entry_is_named_by_its_key(kind: str) -> None:
    registry = REGISTRIES[kind]
    assert [getattr(registry[name], NAMED[kind]) for name in registry] == list(registry)


@pytest.mark.parametrize("name", entries("method"))
def test_a_method_entry_loads_a_method_and_its_defaults_are_valid_settings(name: str) -> None:
    from methods.base import Method

    entry = METHODS[name]
    assert entry.description.strip()
    assert issubclass(entry.load(), Method)
    assert entry.problems(entry.defaults()) == []
    training, own = entry.resolve({})
    assert training.as_dict().items() >= {k: v for k, v in entry.training.items()}.items()
    assert set(own.as_dict()) == set(entry.settings.fields())
    assert entry.problems({"no_such_setting": 1}) and entry.problems({"lr": "fast"})  # bad values are refused


@pytest.mark.parametrize("name", entries("grid"))
def test_a_grid_names_only_registered_methods_backbones_budgets_and_tasks(name: str) -> None:
    grid = expand_sweeps(GRIDS[name])  # a sweep's every combination, as a run gets it
    assert grid.description.strip() and grid.variants and grid.backbones and grid.seeds
    labels = [variant.name for variant in grid.variants]
    assert len({variant.name for variant in GRIDS[name].variants}) == len(GRIDS[name].variants)
    for variant in grid.variants:
        assert variant.method in METHODS
        assert METHODS[variant.method].problems(variant.overrides) == [], variant
    assert all(backbone in BACKBONES for backbone in grid.backbones)
    assert grid.budget in BUDGETS and (grid.task == "auto" or grid.task in TASKS)
    assert all(valid_seed(seed) for seed in grid.seeds)
    assert grid.reference in ("", *labels)


@pytest.mark.parametrize("name", entries("budget"))
def test_a_budget_has_positive_caps_and_sizes(name: str) -> None:
    budget = BUDGETS[name]
    for cap in (budget.train_cap, budget.select_cap, budget.max_epochs):
        assert cap is None or (isinstance(cap, int) and cap > 0)
    assert budget.max_len > 0 and budget.batch_size > 0 and budget.describe()


@pytest.mark.parametrize("name", entries("backbone"))
def test_a_backbone_belongs_to_a_registered_family(name: str) -> None:
    spec = BACKBONES[name]
    assert spec.family in FAMILIES
    assert spec.kind in ("package", "hub", "random", "local") and spec.approx_params > 0 and spec.description.strip()
    assert (spec.kind == "hub") == bool(spec.hub_id) and (spec.kind == "random") == bool(spec.random_config)


@pytest.mark.parametrize("name", entries("family"))
def test_a_family_says_where_lora_and_ia3_attach(name: str) -> None:
    family = FAMILIES[name]
    assert set(family.lora_targets) == {"qv", "all"} and all(family.lora_targets.values())
    assert family.ia3_targets and family.ia3_feedforward


@pytest.mark.parametrize("name", entries("task"))
def test_a_task_has_a_description(name: str) -> None:
    assert TASKS[name].strip()


@pytest.mark.parametrize("name", entries("launcher"))
def test_a_launcher_has_help_options_of_its_own_and_default_options_that_parse(name: str) -> None:
    import argparse

    launcher = LAUNCHERS[name]
    assert isinstance(launcher, Launcher) and launcher.help and callable(launcher.run)
    parser = argparse.ArgumentParser()
    launcher.add_options(parser)  # its flags do not clash with one another
    args = parser.parse_args([])
    assert launcher.given(args) == []  # nothing set: nothing to refuse under another launcher
    launcher.options_of(args)  # its defaults are valid options
    others = {o.flag for other in LAUNCHERS.values() if other is not launcher for o in other.options}
    assert not others & {o.flag for o in launcher.options}, "two launchers may not share a flag"
