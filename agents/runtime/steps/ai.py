"""`ai`: one LLM reply to its `prompt` (a template; the user's words when it has none), streamed chunk by chunk
through `Ports.llm`, with the project's instructions and the recent history. With no LLM it says the fallback
message, so a flow still answers."""
from agents.runtime.steps.base import StepRun, StepType, Traces

HISTORY_FOR_LLM = 20  # entries of history sent with a prompt


class AiStep(StepType):
    name = "ai"
    template_fields = ("prompt",)

    async def run(self, run: StepRun) -> Traces:
        prompt = run.render(run.step.templates.get("prompt")) or run.user_text or ""
        async for item in llm_reply(run, prompt):
            yield item
        run.follow("next")


async def llm_reply(run: StepRun, prompt: str) -> Traces:
    if run.ports.llm is None:
        yield run.debug("warn", "No LLM is configured; answering with the fallback message")
        yield run.say(run.spec.fallback_message)
        return
    messages = [{"role": "system", "content": run.spec.instructions}] if run.spec.instructions else []
    messages += run.state["history"][-HISTORY_FOR_LLM:] + [{"role": "user", "content": prompt}]
    async for item in run.stream(run.ports.llm(messages)):
        yield item
