"""docs/transport.md: its Python example runs as shown and prints what the page says."""

from __future__ import annotations

from pathlib import Path

from testkit.docs import examples, run_python

DOC = Path(__file__).resolve().parents[2] / "docs" / "transport.md"


async def test_the_examples_run_and_print_what_the_page_shows() -> None:
    found = [e for e in examples(DOC) if e.block.lang == "python"]
    assert found, "the page has a Python example"
    for example in found:
        output = await run_python(example.block.text, {})
        assert example.expected is not None, "each example shows its output"
        assert output == example.expected.text
