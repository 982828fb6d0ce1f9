"""The Stage protocol states everything the pipeline reads from a stage, and every stage declares all of it."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from chatobs.processing import pipeline
from chatobs.processing.alerts.rules import AlertsStage
from chatobs.processing.content import ContentStage
from chatobs.processing.cost import CostStage
from chatobs.processing.metrics.stage import MetricsStage
from chatobs.processing.redaction import RedactionStage
from chatobs.processing.sampling import SamplingStage

_DECLARED = set(pipeline.Stage.__annotations__) | {
    n for n, v in vars(pipeline.Stage).items() if callable(v) and not n.startswith("_")
}


def test_pipeline_reads_only_what_the_protocol_declares() -> None:
    tree = ast.parse(Path(inspect.getfile(pipeline)).read_text())
    read = {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "stage"
    }
    assert read and read <= _DECLARED, read - _DECLARED
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not calls & {"getattr", "hasattr"}, "a stage attribute read around the protocol"


@pytest.mark.parametrize("stage", [ContentStage, CostStage, MetricsStage, AlertsStage, SamplingStage, RedactionStage])
def test_every_stage_declares_the_protocol(stage: type) -> None:
    missing = {n for n in _DECLARED if not hasattr(stage, n) and n not in getattr(stage, "__annotations__", {})}
    instance_only = {n for n in missing if n == "name" and "self.name" in inspect.getsource(stage)}
    assert missing - instance_only == set()
    assert isinstance(stage.__dict__.get("pass_on_error"), bool)
