"""The background pipeline: span processors and the stages finished spans go through before export."""

from .pipeline import PipelineProcessor, ScopeProcessor, Stage

__all__ = ["PipelineProcessor", "ScopeProcessor", "Stage"]
