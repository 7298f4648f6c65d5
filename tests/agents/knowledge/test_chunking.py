"""Chunking along a document's structure: heading paths, sizes, overlap, positions, and never across sections."""
import random

from agents.knowledge.chunking import chunk_document


def words(n: int, word: str = "alpha") -> str:
    """n words in sentences of ten."""
    items = [f"{word}{i}" for i in range(n)]
    return " ".join(" ".join(items[i:i + 10]) + "." for i in range(0, n, 10))


DOC = """Intro paragraph before any heading.

# Refunds

You can ask for a refund within 30 days.

## How long it takes

Five working days.

```python
# not a heading: code
print("refund")
```

## Exceptions

Gift cards are not refundable.

# Shipping

We ship worldwide.

Express
-------

Next day delivery in cities.
"""


def test_heading_paths_follow_the_structure():
    chunks = chunk_document(DOC, size_words=180, overlap_words=30, metadata={"source": "help"})
    assert [(c.heading_path, c.content) for c in chunks] == [
        ([], "Intro paragraph before any heading."),
        (["Refunds"], "You can ask for a refund within 30 days."),
        (["Refunds", "How long it takes"],
         'Five working days.\n\n```python\n# not a heading: code\nprint("refund")\n```'),
        (["Refunds", "Exceptions"], "Gift cards are not refundable."),
        (["Shipping"], "We ship worldwide."),
        (["Shipping", "Express"], "Next day delivery in cities."),
    ]
    assert [c.position for c in chunks] == list(range(6))
    assert all(c.metadata == {"source": "help"} for c in chunks)
    assert [c.word_count for c in chunks] == [5, 9, 11, 5, 3, 5]


def test_metadata_is_copied_per_chunk():
    metadata = {"tags": "a"}
    chunks = chunk_document("One.\n\n# Two\n\nThree.", size_words=50, overlap_words=0, metadata=metadata)
    chunks[0].metadata["tags"] = "changed"
    assert metadata == {"tags": "a"} and chunks[1].metadata == {"tags": "a"}
    assert chunk_document("Some text.", size_words=50, overlap_words=5)[0].metadata == {}


def test_paragraphs_are_packed_whole_up_to_the_size():
    paragraphs = [words(40, f"p{i}w") for i in range(10)]
    chunks = chunk_document("\n\n".join(paragraphs), size_words=100, overlap_words=0)
    # 40 + 40 fit in 100, a third does not: two whole paragraphs a chunk, each kept whole.
    assert [c.content for c in chunks] == ["\n\n".join(paragraphs[i:i + 2]) for i in range(0, 10, 2)]
    assert all(c.word_count == 80 for c in chunks)


def test_overlap_repeats_the_end_of_the_previous_chunk():
    paragraphs = [words(40, f"p{i}w") for i in range(10)]
    chunks = chunk_document("\n\n".join(paragraphs), size_words=100, overlap_words=20)
    assert len(chunks) > 1
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.word_count <= 100
        head = after.content.split("\n\n")[0]
        assert before.content.endswith(head)  # the chunk starts with the previous one's last sentences
        assert 10 <= len(head.split()) <= 20
    text = " ".join(" ".join(c.content.split()) for c in chunks)
    for paragraph in paragraphs:  # nothing lost
        assert " ".join(paragraph.split()) in text


def test_no_overlap_across_sections():
    text = f"# A\n\n{words(150, 'a')}\n\n# B\n\n{words(30, 'b')}"
    chunks = chunk_document(text, size_words=100, overlap_words=20)
    assert [c.heading_path for c in chunks] == [["A"], ["A"], ["B"]]
    assert chunks[2].content == words(30, "b")  # the first chunk of a section starts with its own text
    assert not any("b" in w[0] for c in chunks[:2] for w in c.content.split())


def test_a_long_paragraph_is_cut_at_sentence_boundaries():
    paragraph = words(1000, "w")
    chunks = chunk_document(f"# Long\n\n{paragraph}", size_words=100, overlap_words=10)
    assert len(chunks) >= 10
    assert all(c.word_count <= 100 and c.heading_path == ["Long"] for c in chunks)
    assert all(c.content.endswith(".") for c in chunks)  # sentences of ten words end each piece
    joined = " ".join(c.content for c in chunks)
    assert all(f"w{i}" in joined.split() or f"w{i}." in joined.split() for i in range(1000))


def test_a_sentence_longer_than_a_chunk_is_cut_at_words():
    paragraph = " ".join(f"x{i}" for i in range(500))  # no sentence ends at all
    chunks = chunk_document(paragraph, size_words=60, overlap_words=0)
    assert all(c.word_count <= 60 for c in chunks)
    assert " ".join(c.content for c in chunks) == paragraph


def test_heading_without_body_only_names_its_subsections():
    chunks = chunk_document("# Guide\n## Setup\nInstall it.\n## Use\nRun it.", size_words=50, overlap_words=5)
    assert [(c.heading_path, c.content) for c in chunks] == [(["Guide", "Setup"], "Install it."),
                                                             (["Guide", "Use"], "Run it.")]


def test_empty_and_degenerate_input():
    assert chunk_document("", size_words=100, overlap_words=10) == []
    assert chunk_document("  \n\n \n", size_words=100, overlap_words=10) == []
    assert chunk_document("# Only a heading", size_words=100, overlap_words=10) == []
    # an overlap as large as the size is capped at half of it, so chunks still advance
    chunks = chunk_document(words(300), size_words=50, overlap_words=80)
    assert all(c.word_count <= 50 for c in chunks) and len(chunks) < 15


def test_plain_text_and_markdown_paths_agree():
    """Text without markdown syntax skips the parser; the parser gives the same chunks for it."""
    rng = random.Random(4)
    paragraphs = [" ".join(rng.choice(["tea", "cup", "pot", "milk"]) for _ in range(rng.randint(5, 90))) + "."
                  for _ in range(40)]
    plain = "\n\n".join(paragraphs)
    via_parser = "# T\n\n" + plain
    a = chunk_document(plain, size_words=120, overlap_words=15)
    b = chunk_document(via_parser, size_words=120, overlap_words=15)
    assert [(c.content, c.word_count) for c in a] == [(c.content, c.word_count) for c in b]
    assert all(c.heading_path == ["T"] for c in b)
