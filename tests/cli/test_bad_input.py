"""Bad input: one clear line, exit 2 (usage) or 1 (failure), no traceback, nothing half-written."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from safetensors.torch import save_file
from support.cli import assert_one_line, files_in
from support.references import llava_projector

from mmexport.errors import UsageError


def mlp_state(vision=32, llm=48, prefix="multi_modal_projector."):
    return {f"{prefix}{k}": v for k, v in llava_projector(vision, llm).state_dict().items()}


def test_unknown_connector_lists_valid_names(cli):
    assert_one_line(cli("onnx", "--connector", "nope"), 2, "unknown connector 'nope'", "qformer", "mlp")


def test_unknown_preset_lists_valid_names(cli):
    assert_one_line(cli("onnx", "-c", "mlp", "--preset", "llava-99b"), 2, "llava-99b", "llava-1.5-7b")


def test_unknown_flag(cli):
    assert_one_line(cli("onnx", "-c", "mlp", "--frobnicate"), 2, "--frobnicate")


def test_missing_required_option(cli):
    assert_one_line(cli("onnx"), 2, "--connector")


def test_missing_weights_file(cli, tmp_path):
    assert_one_line(cli("onnx", "-c", "mlp", "-w", tmp_path / "absent.safetensors", "-o", tmp_path / "m.onnx"), 2, "not found")
    assert files_in(tmp_path) == []


def test_empty_weights_file(cli, tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"")
    assert_one_line(cli("onnx", "-c", "mlp", "-w", tmp_path / "w.safetensors", "-o", tmp_path / "m.onnx"), 1, "empty")


def test_truncated_safetensors(cli, tmp_path):
    save_file(mlp_state(), tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "w.safetensors").write_bytes(data[: len(data) // 2])
    assert_one_line(cli("onnx", "-c", "mlp", "-w", tmp_path / "w.safetensors", "-o", tmp_path / "m.onnx"), 1, "w.safetensors")
    assert files_in(tmp_path) == ["w.safetensors"]


def test_truncated_bin(cli, tmp_path):
    torch.save(mlp_state(), tmp_path / "w.bin")
    data = (tmp_path / "w.bin").read_bytes()
    (tmp_path / "w.bin").write_bytes(data[: len(data) // 2])
    assert_one_line(cli("onnx", "-c", "mlp", "-w", tmp_path / "w.bin", "-o", tmp_path / "m.onnx"), 1, "cannot read")


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_malicious_pickle_is_refused_and_does_not_run(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "evil.bin", "wb") as handle:
        pickle.dump({"model.mm_projector.0.weight": Payload()}, handle)
    assert_one_line(cli("onnx", "-c", "mlp", "-w", tmp_path / "evil.bin", "-o", tmp_path / "m.onnx"), 1, "not a plain weights file")
    assert not (tmp_path / "PWNED").exists()


def test_pickle_of_objects_is_refused(cli, tmp_path):
    torch.save({"config": {"a": 1}, "model": torch.nn.Linear(2, 2)}, tmp_path / "w.pt")
    assert_one_line(cli("onnx", "-c", "mlp", "-w", tmp_path / "w.pt", "-o", tmp_path / "m.onnx"), 1, "not a plain weights file")


def test_checkpoint_of_another_connector(cli, tmp_path):
    save_file(mlp_state(), tmp_path / "mlp.safetensors")
    assert_one_line(cli("onnx", "-c", "qformer", "-w", tmp_path / "mlp.safetensors", "-o", tmp_path / "q.onnx"), 1, "no 'qformer' weights")


def test_missing_connector_keys_are_named(cli, tmp_path):
    state = mlp_state()
    del state["multi_modal_projector.linear_2.bias"]
    save_file(state, tmp_path / "w.safetensors")
    assert_one_line(cli("onnx", "-c", "mlp", "-w", tmp_path / "w.safetensors", "-o", tmp_path / "m.onnx"), 1, "missing connector keys", "linear_2.bias")


def test_mis_shaped_connector_keys_are_named(cli, tmp_path):
    state = mlp_state()
    state["multi_modal_projector.linear_2.weight"] = torch.randn(48, 40)
    save_file(state, tmp_path / "w.safetensors")
    assert_one_line(cli("onnx", "-c", "mlp", "-w", tmp_path / "w.safetensors", "-o", tmp_path / "m.onnx"), 1, "mis-shaped", "linear_2.weight")


def test_index_pointing_outside_its_folder_is_refused(cli, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    save_file(mlp_state(), tmp_path / "outside.safetensors")
    (folder / "model.safetensors.index.json").write_text('{"weight_map": {"multi_modal_projector.linear_1.weight": "../outside.safetensors"}}')
    assert_one_line(cli("onnx", "-c", "mlp", "-w", folder, "-o", tmp_path / "m.onnx"), 1, "outside its folder")


def test_output_in_missing_folder(cli, tmp_path):
    assert_one_line(cli("onnx", "-c", "linear", "-o", tmp_path / "no" / "m.onnx"), 2, "does not exist")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_output_in_read_only_folder(cli, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    assert_one_line(cli("onnx", "-c", "linear", "-o", folder / "m.onnx"), 2, "not writable")


def test_output_must_be_onnx(cli, tmp_path):
    assert_one_line(cli("onnx", "-c", "linear", "-o", tmp_path / "m.txt"), 2, ".onnx")


def test_check_without_manifest(cli, tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"not onnx")
    assert_one_line(cli("check", tmp_path / "x.onnx"), 2, "no manifest")


def test_check_with_corrupt_manifest(cli, tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"not onnx")
    (tmp_path / "x.onnx.json").write_text("{broken")
    assert_one_line(cli("check", tmp_path / "x.onnx"), 2, "not valid JSON")


def test_check_with_foreign_manifest(cli, tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"not onnx")
    (tmp_path / "x.onnx.json").write_text('{"hello": 1}')
    assert_one_line(cli("check", tmp_path / "x.onnx"), 2, "not an mmexport manifest")


def test_a_truncated_artifact_says_it_no_longer_matches_its_record(cli, tmp_path):
    """A file cut short (a copy that did not finish) is named as such at every stage that reads it."""
    import mmexport

    assert cli("onnx", "-c", "mlp", "--preset", "llava-1.5-7b", "-o", tmp_path / "m.onnx").code == 0
    data = (tmp_path / "m.onnx").read_bytes()
    (tmp_path / "m.onnx").write_bytes(data[: len(data) // 3])
    for args in (("check", tmp_path / "m.onnx"), ("quantize", tmp_path / "m.onnx", "--precision", "fp16"), ("bench", tmp_path / "m.onnx", "--backends", "ort")):
        assert_one_line(cli(*args), 2, "does not match the sha256 in its record", "copy it again")
    with pytest.raises(UsageError, match="does not match the sha256"):
        mmexport.load(tmp_path / "m.onnx")
    assert not (tmp_path / "m.fp16.onnx").exists()


def test_debug_shows_the_traceback(cli):
    result = cli("--debug", "onnx", "-c", "mlp", "-w", "/nonexistent/w.safetensors")
    assert result.code == 2 and "Traceback" in result.stderr


def test_token_count_not_a_multiple_of_four(cli, tmp_path):
    result = cli("onnx", "-c", "concat-linear", "--shape", "batch=1,tokens=1001", "-o", tmp_path / "c.onnx")
    assert_one_line(result, 2, "tokens", "multiple of 4")
    assert files_in(tmp_path) == []


def test_token_count_on_a_fixed_grid(cli, tmp_path):
    assert_one_line(cli("onnx", "-c", "c-abstractor", "--shape", "batch=1,tokens=255", "-o", tmp_path / "c.onnx"), 2, "no dynamic axis tokens", "256")


def test_malformed_shape_option(cli, tmp_path):
    assert_one_line(cli("onnx", "-c", "mlp", "--shape", "batch:2", "-o", tmp_path / "m.onnx"), 2, "AXIS=SIZE")


@pytest.mark.parametrize(
    "args,phrase",
    [
        (["triton", "nope.onnx", "--repo", "repo"], "artifact not found: nope.onnx"),
        (["triton", "notes.txt", "--repo", "repo", "--kind", "tpu"], "--kind must be cpu or gpu"),
        (["serve", "notes.txt"], "neither an .onnx nor an .engine"),
        (["serve", "notes.txt", "--http-port", "99999"], "--http-port"),
    ],
)
def test_triton_and_serve_bad_input(cli, tmp_path, monkeypatch, args, phrase):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a model")
    assert_one_line(cli(*args), 2, phrase)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_preset_that_contradicts_the_weights(cli, tmp_path):
    """--preset llava-1.5-7b (1024 -> 4096) with 32 -> 48 weights: a usage error naming both
    values, and the existing output stays as it was (it was once silently replaced)."""
    save_file(mlp_state(), tmp_path / "w.safetensors")
    out = tmp_path / "m.onnx"
    assert cli("onnx", "-c", "mlp", "-w", tmp_path / "w.safetensors", "-o", out).code == 0  # dims from the weights
    before = out.read_bytes(), (tmp_path / "m.onnx.json").read_bytes()
    result = cli("onnx", "-c", "mlp", "--preset", "llava-1.5-7b", "-w", tmp_path / "w.safetensors", "-o", out)
    assert_one_line(result, 2, "--preset llava-1.5-7b does not match the weights", "vision_dim=32 in the weights, 1024 in the preset")
    assert (out.read_bytes(), (tmp_path / "m.onnx.json").read_bytes()) == before
