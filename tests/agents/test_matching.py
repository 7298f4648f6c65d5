"""The no-model intent matcher, on paraphrases, typos and unrelated text."""
import pytest

from agents.runtime.matching import IntentIndex, normalize

INTENTS = IntentIndex([
    ("account", "help with my account"), ("account", "I can't log in"), ("account", "reset my password"),
    ("account", "account problem"),
    ("hours", "what are your opening hours"), ("hours", "when are you open"), ("hours", "opening times"),
    ("refund", "I want a refund"), ("refund", "give me my money back"), ("refund", "return an order"),
])


@pytest.mark.parametrize(("text", "expected"), [
    ("I can't log in", "account"),
    ("i cannot login", "account"),
    ("cant log into my account", "account"),
    ("need help with my acount", "account"),
    ("forgot my password", "account"),
    ("pasword reset", "account"),
    ("my account has a problem", "account"),
    ("what time do you open?", "hours"),
    ("opening hours please", "hours"),
    ("when do you open", "hours"),
    ("are you open on sunday", "hours"),
    ("i want my money back", "refund"),
    ("refund please", "refund"),
    ("how do i return my order", "refund"),
    ("WHAT ARE YOUR OPENING HOURS!!!", "hours"),
])
def test_paraphrases_find_their_workflow(text, expected):
    match = INTENTS.best(text)
    assert match is not None, text
    assert match.key == expected


@pytest.mark.parametrize("text", [
    "the weather is nice today", "order a pizza", "order a large pizza", "hello", "tell me a joke",
    "what is the capital of france", "blue", "message number 3", "not-an-email", "open the pod bay doors", "",
    "?!",
])
def test_unrelated_text_matches_nothing(text):
    assert INTENTS.best(text) is None


def test_scores_are_between_zero_and_one_and_exact_is_best():
    exact = INTENTS.best("reset my password")
    assert exact.score == pytest.approx(1.0)
    assert all(0 <= m.score <= 1.0 + 1e-9 for m in INTENTS.score_all("reset the passwords"))


def test_normalize_drops_case_accents_and_punctuation():
    assert normalize("Héllo, WORLD! Can't") == "hello world cant"
    assert normalize("I cannot") == "i cant"


def test_an_empty_index_matches_nothing():
    assert IntentIndex([]).best("anything") is None
