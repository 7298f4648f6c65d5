"""`agent`: an agentic sub-loop inside a flow (`agentic.py`), with its own `instructions` (a template, after the
project's), `allowedToolIds` (with the harness's, see `allowed_by`) and `exitCondition` (an expression over the
variables). It waits for the user: reached, it runs the loop on the user's words (a greeting when there are none)
and then leaves by `next` when the exit condition holds, or waits; each answer runs the loop on the new words and
checks again. `maxTurns` bounds the conversation it holds (then `next`). A condition already true when the walk
arrives skips the step. It offers no workflow tools: the flow around it says where the conversation goes.

With no model it says the fallback message (a debug warning) and takes `next`."""
from agents.runtime.agentic import AgentLoop, media_note
from agents.runtime.steps.base import StepBuild, StepRun, StepType, Traces
from agents.runtime.values import is_whole_number


class AgentStep(StepType):
    name = "agent"
    template_fields = ("instructions",)
    waits_for_answer = True

    def prepare(self, build: StepBuild) -> None:
        data = build.data
        allowed = data.get("allowedToolIds")
        if allowed is not None and (not isinstance(allowed, list)
                                    or not all(isinstance(tool, str) and tool for tool in allowed)):
            build.error("allowedToolIds is a list of tool ids.", at=".data.allowedToolIds")
        max_turns = data.get("maxTurns")
        if max_turns is not None and (not is_whole_number(max_turns) or max_turns < 1):
            build.error("maxTurns is a positive integer.", at=".data.maxTurns")
        if data.get("exitCondition") not in (None, ""):  # last: a bad expression stops this step's compilation
            build.expression("exitCondition", data["exitCondition"], at=".data.exitCondition")

    async def run(self, run: StepRun) -> Traces:
        if exited(run):
            yield run.debug("info", f"Agent step {run.step.id}: its exit condition already holds")
            run.follow("next")
            return
        async for item in self.converse(run, run.user_text, turns=1):
            yield item

    async def prompt(self, run: StepRun) -> Traces:
        """The user came back (launch): the conversation goes on where it was; nothing to ask again."""
        return
        yield

    async def answer(self, run: StepRun) -> Traces:
        turns = int(run.waiting.get("attempts") or 0) + 1
        async for item in self.converse(run, run.user_text or media_note(run.action), turns=turns):
            yield item

    async def converse(self, run: StepRun, content: str | None, *, turns: int) -> Traces:
        if run.ports.llm is None:
            yield run.debug("warn", "No LLM is configured; answering with the fallback message")
            yield run.say(run.spec.fallback_message)
            run.follow("next")
            return
        loop = StepAgent(run)
        async for item in loop.run(content):
            yield item
        if loop.stopped:  # ended or handed off: the walk stops here
            return
        if exited(run):
            yield run.debug("info", f"Agent step {run.step.id}: exit condition met")
            run.follow("next")
            return
        max_turns = run.step.data.get("maxTurns")
        if max_turns is not None and turns >= max_turns:
            yield run.debug("info", f"Agent step {run.step.id}: {max_turns} turns reached")
            run.follow("next")
            return
        run.wait(attempts=turns)


def exited(run: StepRun) -> bool:
    expression = run.step.expressions.get("exitCondition")
    return expression is not None and bool(run.evaluate(expression))


class StepAgent(AgentLoop):
    """The loop of one `agent` step: the project's instructions and the step's, the step's allowlist, and done as
    soon as the exit condition holds after a tool round."""

    offers_workflows = False

    def __init__(self, run: StepRun):
        super().__init__(run.turn)
        self.step_run = run

    def instructions(self) -> list[str]:
        return [self.spec.instructions, self.step_run.render(self.step_run.step.templates.get("instructions"))]

    def allowlists(self) -> tuple[tuple[str, ...], ...]:
        return self.spec.harness.allowed_tool_ids, tuple(self.step_run.step.data.get("allowedToolIds") or ())

    def finished(self) -> bool:
        return exited(self.step_run)
