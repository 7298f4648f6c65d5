"""The step types, one module each, and the registry the spec and the engine look them up in.

A new step type is one module here with a `StepType` subclass (see `base.py`), added to `STEP_TYPES` below: the
spec then accepts it (its ports, templates, checks) and the engine runs it, with no other change."""
from collections.abc import Mapping
from types import MappingProxyType

from agents.runtime.steps.agent import AgentStep
from agents.runtime.steps.ai import AiStep
from agents.runtime.steps.api import ApiStep
from agents.runtime.steps.base import Step, StepBuild, StepRun, StepType, Traces
from agents.runtime.steps.buttons import ButtonsStep
from agents.runtime.steps.capture import CaptureStep
from agents.runtime.steps.condition import ConditionStep
from agents.runtime.steps.data_query import DataQueryStep
from agents.runtime.steps.end import EndStep
from agents.runtime.steps.handoff import HandoffStep
from agents.runtime.steps.jump import JumpStep
from agents.runtime.steps.kb import KbStep
from agents.runtime.steps.media import MediaStep
from agents.runtime.steps.message import MessageStep
from agents.runtime.steps.set import SetStep
from agents.runtime.steps.start import StartStep

STEP_TYPES: Mapping[str, StepType] = MappingProxyType({step_type.name: step_type for step_type in (
    StartStep(), MessageStep(), ButtonsStep(), CaptureStep(), ConditionStep(), SetStep(), JumpStep(), MediaStep(),
    EndStep(), HandoffStep(), ApiStep(), AiStep(), KbStep(), AgentStep(), DataQueryStep(),
)})

__all__ = ["STEP_TYPES", "Step", "StepBuild", "StepRun", "StepType", "Traces"]
