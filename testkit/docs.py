"""Running the examples of a Markdown document: ``curl`` commands, Python programs, their output.

A document is read as a sequence of fenced blocks. A ``sh`` block holding one ``curl`` command is
sent as the equivalent HTTP request; an ``http`` block right after it is the answer it must get
(status line, the headers listed, and a JSON body, compared as JSON). A ``python`` block is run
as a program of its own, as a reader would run it, and a ``text`` block right after it is its exact
output. Examples address the servers as a reader's machine would (``http://localhost:8080``,
``nats://127.0.0.1:4222``); those addresses are replaced by the test's servers.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from testkit.workers import REPO

__all__ = [
    "Block",
    "CurlRequest",
    "DOCS_HTTP",
    "DOCS_NATS",
    "Example",
    "HttpAnswer",
    "blocks",
    "examples",
    "parse_answer",
    "parse_curl",
    "run_python",
    "send",
]

DOCS_HTTP = "http://localhost:8080"
DOCS_NATS = "nats://127.0.0.1:4222"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int


@dataclass(frozen=True)
class Example:
    """A runnable block and, when the document shows one, what it must produce."""

    block: Block
    expected: Block | None


@dataclass(frozen=True)
class CurlRequest:
    method: str
    url: str
    headers: dict[str, str]
    data: bytes | None


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: Any


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [
        Block(match.group(1), match.group(2), text.count("\n", 0, match.start()) + 1)
        for match in _FENCE.finditer(text)
    ]


def examples(path: Path) -> list[Example]:
    """The runnable blocks of a document, each with the answer or output shown after it."""
    found = blocks(path)
    out = []
    for index, block in enumerate(found):
        runnable = block.lang == "python" or (block.lang == "sh" and block.text.lstrip().startswith("curl "))
        if not runnable:
            continue
        following = found[index + 1] if index + 1 < len(found) else None
        wanted = "http" if block.lang == "sh" else "text"
        out.append(Example(block, following if following is not None and following.lang == wanted else None))
    return out


def parse_curl(command: str, base_url: str) -> CurlRequest:
    """The request a ``curl`` command line sends (the options the documents use)."""
    args = shlex.split(command.replace("\\\n", " "))
    assert args[0] == "curl", command
    method, url, headers, data = "", "", {}, None
    words = iter(args[1:])
    for word in words:
        if word in ("-i", "-s", "--include", "--silent"):
            continue
        if word in ("-X", "--request"):
            method = next(words)
        elif word in ("-H", "--header"):
            name, _, value = next(words).partition(":")
            headers[name.strip()] = value.strip()
        elif word in ("-d", "--data", "--data-raw"):
            data = next(words).encode()
        elif word.startswith("-"):
            raise AssertionError(f"the docs test does not know curl option {word}")
        else:
            url = word.replace(DOCS_HTTP, base_url)
    if data is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")  # as curl does
    return CurlRequest(method or ("POST" if data is not None else "GET"), url, headers, data)


def parse_answer(text: str) -> HttpAnswer:
    head, _, body = text.partition("\n\n")
    status_line, *header_lines = head.splitlines()
    status = int(status_line.split()[1])
    headers = {name.strip(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return HttpAnswer(status, headers, json.loads(body) if body.strip() else None)


async def send(session: ClientSession, request: CurlRequest) -> HttpAnswer:
    # skip_auto_headers: curl sends no Content-Type unless told (or unless it sends data).
    async with session.request(
        request.method, request.url, headers=request.headers, data=request.data,
        skip_auto_headers=("Content-Type",),
    ) as response:
        text = await response.text()
        return HttpAnswer(response.status, dict(response.headers), json.loads(text) if text else None)


async def run_python(code: str, replacements: dict[str, str], *, timeout: float = 60.0) -> str:
    """Run ``code`` as ``python -`` from the repository root; its stdout (fails on exit != 0)."""
    for old, new in replacements.items():
        code = code.replace(old, new)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-",
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(code.encode()), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"the example did not finish within {timeout}s:\n{code}") from None
    assert process.returncode == 0, f"the example failed:\n{code}\n--- stderr ---\n{stderr.decode()}"
    return stdout.decode()
