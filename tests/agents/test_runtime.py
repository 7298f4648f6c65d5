"""The engine, with no database and no HTTP: each step type, waiting steps, jumps, guards, async ports and
cancellation."""
import asyncio
import copy
import itertools
import threading

import pytest

from agents.demo import DEMO_PROJECT
from agents.runtime import MAX_STEPS, Action, AgentSpec, Ports, run_turn

LAUNCH = Action("launch", None)


def text(value: str) -> Action:
    return Action("text", value)


def button(label: str, value) -> Action:
    return Action("button", {"label": label, "value": value})


def spec_of(*workflows, **parts) -> AgentSpec:
    return AgentSpec.from_document({"workflows": list(workflows), **parts}, project_id="p", version_id="v")


def flow(*steps, connections=(), id="wf", intents=()):
    """A workflow whose steps run in the order given unless `connections` says otherwise."""
    all_steps = [{"id": "start", "type": "start", "data": {"intents": list(intents)}}, *steps]
    if not connections:
        connections = [(a["id"], "next", b["id"]) for a, b in itertools.pairwise(all_steps)]
    return {"id": id, "name": id, "steps": all_steps,
            "connections": [{"source": s, "port": p, "target": t} for s, p, t in connections]}


def step(id, type, **data):
    return {"id": id, "type": type, "data": data}


async def collect(turn) -> list[dict]:
    return [item async for item in turn]


async def traces_of(spec, state, action, **kwargs) -> list[dict]:
    return await collect(run_turn(spec, state, action, **kwargs))


class Session:
    """Runs turns one after another, carrying the state like the turn service does."""

    def __init__(self, spec, state=None, **kwargs):
        self.spec, self.state, self.kwargs = spec, state or {}, kwargs

    async def __call__(self, action, **kwargs):
        turn = run_turn(self.spec, self.state, action, **{**self.kwargs, **kwargs})
        traces = await collect(turn)
        self.state, self.turn = turn.state, turn
        return traces


def messages(traces):
    return [t["payload"]["message"] for t in traces if t["type"] == "text"]


# --- the demo, walked through


async def test_demo_walk_free_plan():
    session = Session(AgentSpec.from_document(DEMO_PROJECT, project_id="p", version_id="v"))

    greeting = await session(LAUNCH)
    assert [t["type"] for t in greeting] == ["text", "text", "choice"]
    assert messages(greeting)[0] == "Hi there! Welcome to Acme Support."
    assert messages(await session(button("Account help", "account"))) == ["What's the email on your account?"]
    assert "valid email" in messages(await session(text("not-an-email")))[0]
    assert session.state["waiting"]["attempts"] == 1
    done = await session(text(" Jane@Example.COM "))

    assert messages(done) == ["Thanks! We'll email jane@example.com within 2 business days."]
    assert done[-1] == {"type": "end", "payload": {}}
    assert session.turn.ended and session.state["waiting"] is None and session.state["stack"] == []
    assert session.state["variables"] == {"customer_name": "there", "plan_tier": "free", "email": "jane@example.com",
                                          "priority": "normal"}


async def test_demo_walk_premium_plan():
    session = Session(AgentSpec.from_document(DEMO_PROJECT, project_id="p", version_id="v"),
                      {"variables": {"plan_tier": "premium", "customer_name": "Jane"}})
    assert messages(await session(LAUNCH))[0] == "Hi Jane! Welcome to Acme Support."
    await session(button("Account help", "account"))
    done = await session(text("jane@example.com"))
    assert "priority high" in messages(done)[0]
    assert session.state["variables"]["priority"] == "high"


# --- steps


async def test_message_templates_use_variables_defaults_and_built_ins():
    spec = spec_of(flow(step("m", "message", text="Hi {{ name|default('there') }} ({{ user_id }}, turn {{ turn }}) "
                                                  "{{ missing.deeply.nested }}!")),
                   variables=[{"name": "name"}])
    traces = await traces_of(spec, {}, LAUNCH, context={"user_id": "u1", "turn": 3})
    assert messages(traces) == ["Hi there (u1, turn 3) !"]


async def test_last_utterance_is_available():
    spec = spec_of(flow(step("m", "message", text="You said: {{ last_utterance }}"), intents=["echo this"]))
    assert messages(await traces_of(spec, {}, text("echo this please"))) == ["You said: echo this please"]


async def test_set_evaluates_expressions():
    spec = spec_of(flow(step("s", "set", assign={"count": "count + 1", "label": "'n=' ~ (count + 1)",
                                                 "flags": "[1, 2]"}),
                        step("m", "message", text="{{ count }} {{ label }}")),
                   variables=[{"name": "count", "default": 0}])
    session = Session(spec)
    await session(LAUNCH)
    assert messages(await session(LAUNCH)) == ["2 n=3"]  # assignments run in order, each seeing the one before
    assert session.state["variables"]["flags"] == [1, 2]


@pytest.mark.parametrize(("tier", "expected"), [("premium", "VIP"), ("free", "Standard"), (None, "Standard")])
async def test_condition_picks_true_or_false(tier, expected):
    spec = spec_of(flow(step("c", "condition", **{"if": "tier == 'premium'"}), step("vip", "message", text="VIP"),
                        step("std", "message", text="Standard"),
                        connections=[("start", "next", "c"), ("c", "true", "vip"), ("c", "false", "std")]))
    state = {"variables": {"tier": tier}} if tier else {}
    assert messages(await traces_of(spec, state, LAUNCH)) == [expected]


async def test_media_step_sends_a_visual():
    spec = spec_of(flow(step("v", "media", url="https://cdn.example.com/{{ img }}.png", mimeType="image/png",
                             alt="A map")))
    traces = await traces_of(spec, {"variables": {"img": "map"}}, LAUNCH)
    assert traces == [{"type": "visual", "payload": {"url": "https://cdn.example.com/map.png", "mimeType": "image/png",
                                                       "alt": "A map"}}]


async def test_handoff_stops_the_turn():
    spec = spec_of(flow(step("h", "handoff", reason="Needs a human"), connections=[("start", "next", "h")]))
    turn = run_turn(spec, {}, LAUNCH)
    assert await collect(turn) == [{"type": "handoff", "payload": {"reason": "Needs a human"}}]
    assert turn.handoff and not turn.ended


async def test_jump_continues_in_another_workflow_and_returns_through_next():
    main = flow(step("j", "jump", workflowId="other"), step("after", "message", text="back in main"),
                connections=[("start", "next", "j"), ("j", "next", "after")])
    other = flow(step("o", "message", text="in other"), id="other")
    session = Session(spec_of(main, other))
    assert messages(await session(LAUNCH)) == ["in other", "back in main"]
    assert session.state["stack"] == []


async def test_a_jump_remembers_where_it_came_from_while_waiting():
    main = flow(step("j", "jump", workflowId="ask"), step("after", "message", text="Thanks {{ name }}"),
                connections=[("start", "next", "j"), ("j", "next", "after")])
    ask = flow(step("q", "capture", prompt="Name?", variable="name"), id="ask")
    session = Session(spec_of(main, ask))
    await session(LAUNCH)
    assert session.state["stack"] == [{"workflowId": "wf", "stepId": "j"}]
    assert messages(await session(text("Ann"))) == ["Thanks Ann"]


# --- capture


@pytest.mark.parametrize(("validate", "extra", "good", "stored", "bad"), [
    ("email", {}, "Ann@Example.org", "ann@example.org", "ann@"),
    ("number", {}, "1,250", 1250, "twelve"),
    ("number", {}, "2.5", 2.5, "2.5.1"),
    ("phone", {}, "+1 (555) 010-9999", "+15550109999", "12"),
    ("regex", {"pattern": r"[A-Z]{3}-\d{3}"}, "ABC-123", "ABC-123", "abc-123"),
    (None, {}, "anything at all", "anything at all", None),
])
async def test_capture_validates_and_stores(validate, extra, good, stored, bad):
    spec = spec_of(flow(step("c", "capture", prompt="?", variable="answer", validate=validate, **extra),
                        step("ok", "message", text="Got {{ answer }}")))
    session = Session(spec)
    await session(LAUNCH)
    if bad is not None:
        assert (await session(text(bad)))[0]["type"] == "text"
        assert session.state["waiting"]["kind"] == "capture"
        assert "answer" not in session.state["variables"]
    assert messages(await session(text(good))) == [f"Got {stored}"]
    assert session.state["variables"]["answer"] == stored


async def test_capture_gives_up_through_fail_after_max_attempts():
    spec = spec_of(flow(step("c", "capture", prompt="Email?", variable="email", validate="email", maxAttempts=2,
                             retryPrompt="Try again, {{ last_utterance }} is not an email"),
                        step("ok", "message", text="ok"), step("gave_up", "message", text="Let's move on."),
                        connections=[("start", "next", "c"), ("c", "next", "ok"), ("c", "fail", "gave_up")]))
    session = Session(spec)
    await session(LAUNCH)
    assert messages(await session(text("nope"))) == ["Try again, nope is not an email"]
    assert messages(await session(text("still no"))) == ["Let's move on."]
    assert session.state["waiting"] is None


async def test_capture_without_fail_port_keeps_asking():
    spec = spec_of(flow(step("c", "capture", prompt="Email?", variable="email", validate="email", maxAttempts=1)))
    session = Session(spec)
    await session(LAUNCH)
    for attempt in (1, 2, 3):
        assert "valid email" in messages(await session(text("x")))[0]
        assert session.state["waiting"]["attempts"] == attempt


async def test_launch_while_waiting_repeats_the_prompt():
    session = Session(AgentSpec.from_document(DEMO_PROJECT, project_id="p", version_id="v"))
    await session(LAUNCH)
    await session(button("Account help", "account"))
    assert messages(await session(LAUNCH)) == ["What's the email on your account?"]
    assert session.state["waiting"]["stepId"] == "email"


# --- buttons


@pytest.fixture
def menu_session():
    return Session(AgentSpec.from_document(DEMO_PROJECT, project_id="p", version_id="v"))


@pytest.mark.parametrize("answer", [
    button("Account help", "account"),
    button("Something else", "account"),      # the value decides
    text("Account help"), text("account"), text("I have a login problem"),  # label, value, utterance
])
async def test_buttons_are_picked_by_action_label_value_or_utterance(menu_session, answer):
    await menu_session(LAUNCH)
    assert messages(await menu_session(answer)) == ["What's the email on your account?"]


async def test_unmatched_text_on_buttons_takes_no_match(menu_session):
    await menu_session(LAUNCH)
    traces = await menu_session(text("bananas"))
    assert messages(traces) == ["Please pick one of the options.", "What can I help you with?"]
    assert traces[-1]["type"] == "choice"


async def test_buttons_without_no_match_ask_again():
    spec = spec_of(flow(step("b", "buttons", text="Pick", buttons=[{"label": "Yes", "value": True}])))
    session = Session(spec)
    await session(LAUNCH)
    assert await session(text("purple")) == [{"type": "text", "payload": {"message": "Pick"}},
                                       {"type": "choice", "payload": {"buttons": [{"label": "Yes", "value": True}]}}]
    assert session.state["waiting"]["kind"] == "buttons"


# --- free text, fallback, guards, debug


async def test_free_text_starts_the_matching_workflow_or_falls_back():
    spec = AgentSpec.from_document(DEMO_PROJECT, project_id="p", version_id="v")
    assert "Monday to Friday" in messages(await traces_of(spec, {}, text("when do you open")))[0]
    fallback = await traces_of(spec, {}, text("sing me a song"))
    assert messages(fallback) == [DEMO_PROJECT["settings"]["fallbackMessage"]]


async def test_a_looping_workflow_stops_at_the_step_limit():
    spec = spec_of(flow(step("a", "message", text="a"), step("b", "message", text="b"),
                        connections=[("start", "next", "a"), ("a", "next", "b"), ("b", "next", "a")]))
    turn = run_turn(spec, {}, LAUNCH)
    traces = await collect(turn)
    assert traces[-1] == {"type": "error", "payload": {
        "error": f"This turn ran more than {MAX_STEPS} steps; the workflow probably loops.", "code": "STEP_LIMIT"}}
    assert turn.steps_run == MAX_STEPS + 1
    assert len(traces) == MAX_STEPS  # start + 99 messages, then the error


async def test_debug_traces_only_when_asked():
    spec = AgentSpec.from_document(DEMO_PROJECT, project_id="p", version_id="v")
    quiet = await traces_of(spec, {}, text("when do you open"))
    loud = await traces_of(spec, {}, text("when do you open"), debug=True)
    assert "debug" not in {t["type"] for t in quiet}
    assert any("Matched intent of workflow wf_hours" in t["payload"]["message"] for t in loud if t["type"] == "debug")
    assert [t for t in loud if t["type"] != "debug"] == quiet


async def test_the_sandbox_refuses_python_internals_without_breaking_the_turn():
    spec = spec_of(flow(step("m", "message", text="{{ ''.__class__.__mro__[1].__subclasses__() }}x"),
                        step("n", "message", text="still here")))
    traces = await traces_of(spec, {}, LAUNCH, debug=True)
    assert messages(traces) == ["still here"]
    assert any("unsafe" in t["payload"]["message"] for t in traces if t["type"] == "debug")


async def test_the_input_state_is_not_mutated_and_history_is_capped():
    spec = AgentSpec.from_document(DEMO_PROJECT, project_id="p", version_id="v")
    state = {"variables": {"customer_name": "Jo"},
             "history": [{"role": "user", "content": str(i)} for i in range(50)]}
    before = copy.deepcopy(state)
    turn = run_turn(spec, state, text("when do you open"))
    await collect(turn)
    assert state == before
    assert len(turn.state["history"]) == 50
    assert turn.state["history"][-2:] == [{"role": "user", "content": "when do you open"},
                                          {"role": "assistant", "content": turn.reply_text}]


async def test_a_turn_is_lazy():
    spec = spec_of(flow(step("a", "message", text="one"), step("b", "message", text="two")))
    turn = run_turn(spec, {}, LAUNCH)
    assert turn.traces == []
    assert (await anext(turn))["payload"]["message"] == "one"
    assert turn.steps_run == 2  # start and the first message; the second has not run yet
    assert [t["payload"]["message"] async for t in turn] == ["two"]


# --- async ports and cancellation


async def test_an_async_port_is_awaited_on_the_turns_own_task():
    seen = {}

    async def tools(name, args):
        seen["thread"], seen["task"] = threading.get_ident(), asyncio.current_task()
        await asyncio.sleep(0.01)  # really suspends: a port run in a thread or called without await would not get here
        return {"ok": True}

    spec = spec_of(flow(step("api", "api", tool="lookup", save={"ok": "ok"}), step("m", "message", text="{{ ok }}")))
    turn = run_turn(spec, {}, LAUNCH, ports=Ports(tools=tools))
    assert messages(await collect(turn)) == ["True"]
    assert seen == {"thread": threading.get_ident(), "task": asyncio.current_task()}


async def test_cancelling_while_a_port_awaits_raises_out_of_the_turn():
    called, released = asyncio.Event(), []

    async def tools(name, args):
        called.set()
        try:
            await asyncio.sleep(3600)
        finally:
            released.append(name)
        return {}

    spec = spec_of(flow(step("api", "api", tool="slow"), step("ok", "message", text="ok"),
                        step("err", "message", text="error port"),
                        connections=[("start", "next", "api"), ("api", "next", "ok"), ("api", "error", "err")]))
    turn = run_turn(spec, {"variables": {"kept": 1}}, LAUNCH, ports=Ports(tools=tools))
    task = asyncio.create_task(collect(turn))
    await called.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert released == ["slow"]
    assert turn.traces == []  # neither the error port nor the next step ran
    assert turn.state["history"] == []  # a stopped turn does not advance the state


async def test_cancelling_a_turn_that_never_awaits_lands_between_steps():
    spec = spec_of(flow(*[step(f"m{i}", "message", text=f"message {i}") for i in range(5)]))
    turn = run_turn(spec, {}, LAUNCH)
    first = asyncio.Event()

    async def consume():
        async for _ in turn:
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert messages(turn.traces) == ["message 0"]
    assert turn.steps_run == 2  # start and the first message: no later step ran


async def test_cancelling_an_llm_stream_closes_it():
    closed, chunks_sent = [], asyncio.Event()

    async def llm(messages, tools=None, json_output=False):
        try:
            yield "Hello"
            chunks_sent.set()
            await asyncio.sleep(3600)
            yield "never"
        finally:
            closed.append(True)

    spec = spec_of(flow(step("ai", "ai", prompt="hi")))
    turn = run_turn(spec, {}, LAUNCH, ports=Ports(llm=llm))
    task = asyncio.create_task(collect(turn))
    await chunks_sent.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed == [True]
    assert [t["type"] for t in turn.traces] == ["completion-start", "text"]
    assert turn.llm_calls == []  # the call never finished
