"""The results CSV: round trip, whole rows, refusal to touch another schema, stable run ids."""

from __future__ import annotations

import csv

import pytest

from bench.record.provenance import cpu_features, environment, machine_of, this_cpu
from bench.record.schema import COLUMNS, SchemaError, run_id
from bench.record.store import append_row, check_schema, finished_rows, read_rows


def row(**values) -> dict:
    base = {"schema_version": 1, "run_id": "abc", "grid": "g", "task": "t", "backbone": "b",
            "method": "m", "seed": 0, "acc": 0.8125, "git_dirty": False, "status": "ok",
            "error": 'quote " comma, newline\nend'}
    return {**base, **values}


def test_csv_round_trips(tmp_path) -> None:
    path = tmp_path / "runs.csv"
    append_row(path, row())
    append_row(path, row(run_id="def", acc=0.1 + 0.2, status="failed"))
    rows = read_rows(path)
    assert [r["run_id"] for r in rows] == ["abc", "def"]
    assert list(rows[0]) == COLUMNS
    assert float(rows[1]["acc"]) == 0.1 + 0.2  # repr keeps every bit of a float
    assert rows[0]["error"] == 'quote " comma, newline\nend'
    assert rows[0]["git_dirty"] == "false"
    with path.open() as handle:
        assert next(csv.reader(handle)) == COLUMNS


def test_finished_rows_skip_failed_runs(tmp_path) -> None:
    path = tmp_path / "runs.csv"
    append_row(path, row(run_id="ok1"))
    append_row(path, row(run_id="col", status="collapsed"))
    append_row(path, row(run_id="bad", status="failed"))
    assert set(finished_rows(path)) == {"ok1", "col"}


def test_another_schema_is_refused_and_left_untouched(tmp_path) -> None:
    path = tmp_path / "runs.csv"
    path.write_text("run_id,acc\nx,0.5\n")
    before = path.read_bytes()
    with pytest.raises(SchemaError, match="another schema"):
        append_row(path, row())
    with pytest.raises(SchemaError, match="left untouched"):
        check_schema(path)
    assert path.read_bytes() == before


def test_unreadable_file_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "runs.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SchemaError, match="cannot read|another schema"):
        read_rows(path)


def test_bad_rows_are_refused_before_writing(tmp_path) -> None:
    path = tmp_path / "runs.csv"
    with pytest.raises(ValueError, match="outside the schema"):
        append_row(path, row(surprise=1))
    with pytest.raises(ValueError, match="status"):
        append_row(path, row(status="great"))
    assert not path.exists()


def test_run_id_is_stable_and_sensitive() -> None:
    identity = {"grid": "sizes", "seed": 0, "hparams": {"lr": 0.01, "epochs": 3}}
    assert run_id(identity) == run_id({"hparams": {"epochs": 3, "lr": 0.01}, "seed": 0, "grid": "sizes"})
    assert run_id(identity) != run_id({**identity, "seed": 1})
    assert len(run_id(identity)) == 16


@pytest.mark.parametrize(("cpuinfo", "features"), [
    # a Zen 3 EPYC VM (no AVX-512), an Intel Xeon VM with avx512_bf16 and one with AMX too
    ("model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx fma avx2 sha_ni\n", "avx2"),
    ("flags\t: avx2 avx512f avx512bw avx512_vnni avx512_bf16\n", "avx2 avx512f avx512_bf16"),
    ("flags\t: amx_tile avx512_bf16 avx2 amx_bf16 avx512f amx_int8\n", "avx2 avx512f avx512_bf16 amx_bf16"),
    ("Features\t: fp asimd evtstrm sve bf16 i8mm\n", "asimd sve bf16"),
    ("flags\t: fpu sse2\n", "none"),  # known to have none of them, unlike unknown
    ("model name\t: a CPU that lists no flags\n", ""),
])
def test_cpu_features_name_the_instruction_sets_that_change_speed(cpuinfo, features) -> None:
    assert cpu_features(cpuinfo) == features


def test_a_rows_machine_is_its_gpu_else_its_cpu_with_features_when_recorded() -> None:
    assert machine_of({"accelerator": "NVIDIA H200", "cpu": "AMD EPYC", "cpu_features": "avx2"}) == "NVIDIA H200"
    assert machine_of({"accelerator": "", "cpu": "AMD EPYC", "cpu_features": "avx2"}) == "AMD EPYC (avx2)"
    assert machine_of({"accelerator": "", "cpu": "AMD EPYC", "cpu_features": ""}) == "AMD EPYC"  # before v4
    assert machine_of({"cpu": ""}) == "unknown CPU"
    assert this_cpu() == machine_of({**environment(), "accelerator": ""})  # what a CPU row recorded here says


def test_rows_record_this_cpus_features() -> None:
    from bench.record.provenance import environment

    assert environment()["cpu_features"] == cpu_features()
