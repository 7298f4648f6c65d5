"""`jump`: continues in another workflow (at its start, or at `stepId` when that step exists). The jump is pushed on
`state.stack`, so when the other workflow's path ends without an `end` step the walk comes back and takes the
jump's `next` port, if it has one."""
from agents.runtime.steps.base import StepBuild, StepRun, StepType, Traces


class JumpStep(StepType):
    name = "jump"
    ports = frozenset({"next"})  # taken when the jumped-to workflow finishes without an end step

    def prepare(self, build: StepBuild) -> None:
        workflow_id = build.data.get("workflowId")
        if not isinstance(workflow_id, str) or workflow_id not in build.workflow_ids:
            build.error(f"A jump names an existing workflowId (got {workflow_id!r}).")

    async def run(self, run: StepRun) -> Traces:
        target = run.spec.workflows[run.step.data["workflowId"]]
        run.state["stack"].append({"workflowId": run.workflow_id, "stepId": run.step.id})
        yield run.debug("info", f"Jumping to workflow {target.id}")
        step_id = run.step.data.get("stepId")
        run.go_to(target.id, step_id if step_id in target.steps else target.start_step_id)
