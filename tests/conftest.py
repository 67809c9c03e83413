"""Fixtures every test module shares; helpers live in tests/support/. Each family's tiny folder,
and each artifact exported from it, is made once per test session (per xdist worker: the tests
of one family run on one worker) and shared by every module that uses it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from support.checks import REFERENCE_ERRORS
from support.cli import run_in_process
from support.tiny_connectors import TINY

from mmexport import connectors


def pytest_collection_modifyitems(config, items):
    """GPU tests skip without a GPU; a family's tests share one xdist worker (and its session fixtures)."""
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip)
        case = getattr(item, "callspec", None) and item.callspec.params.get("case")
        if case:
            item.add_marker(pytest.mark.xdist_group(name=f"family-{case}"))


@pytest.fixture
def cli(capsys):
    """Run `mmexport ARGS` in this process (fast) and capture what it prints."""
    return lambda *args: run_in_process(capsys, *args)


@pytest.fixture
def tiny(monkeypatch):
    """A connector with its small test preset ('tiny') added."""

    def add(name: str) -> str:
        connector = connectors.get(name.replace("-v2", "") if name == "ldp-v2" else name)
        monkeypatch.setitem(connector.presets, "tiny", TINY[name])
        return connector.name

    return add


class TinyModels:
    """case -> (folder, model): each family's tiny folder (bf16, with its processor), made once."""

    def __init__(self, factory: pytest.TempPathFactory):
        self.factory, self.made = factory, {}

    def __call__(self, case: str):
        from support.families import save_model

        if case not in self.made:
            folder = self.factory.mktemp(case.replace("-", ""))
            self.made[case] = (folder, save_model(case, folder))
        return self.made[case]


class Artifacts:
    """(case, part) -> an fp32 artifact exported from the case's folder, made once."""

    def __init__(self, models: TinyModels, factory: pytest.TempPathFactory):
        self.models, self.factory, self.made = models, factory, {}

    def __call__(self, case: str, part: str = "vision") -> Path:
        import mmexport

        if (case, part) not in self.made:
            out = self.factory.mktemp(f"{case.replace('-', '')}-{part}") / f"{part}.onnx"
            mmexport.make(model=self.models(case)[0], vision_tower=part != "connector", video=part == "video", output=out)
            self.made[case, part] = out
        return self.made[case, part]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    return TinyModels(tmp_path_factory)


@pytest.fixture(scope="session")
def artifacts(tiny_models, tmp_path_factory):
    return Artifacts(tiny_models, tmp_path_factory)


def pytest_terminal_summary(terminalreporter):
    if REFERENCE_ERRORS:
        terminalreporter.section("ONNX vs original implementation (worst over shapes)")
        for test, (rel, cos) in sorted(REFERENCE_ERRORS.items()):
            terminalreporter.write_line(f"{test}: max rel {rel:.2e}, cosine {cos:.9f}")


def pytest_configure(config):
    """Under xdist each worker gets its share of the cores for PyTorch (ONNX Runtime sessions size
    their own pools), so workers do not fight over threads."""
    import os

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
