"""An OpenAI-compatible test server that answers math questions like an R1-style reasoning model,
in a chosen edge-case style, with a known truth for every response.

Used by ``bench/grading_vs_evalscope.py`` to grade the same answers with lmgauge and EvalScope.
The requested model name is the style; the question is found by its problem text inside the
user message (so any prompt template works). Whether a response is right is decided by a seeded
rule per (style, question), so the truth is known before any grader reads it.

Styles (``STYLES``):

- ``baseline``: ``<think>…</think>`` then a worked answer ending in ``\\boxed{A}``.
- ``close_only``: no opening ``<think>`` (the chat template opened it), ``…reasoning…</think>``,
  then the answer; the reasoning ends with a tentative ``\\boxed{}`` of the *other* value.
- ``cut_thinking``: ``<think>`` opened, a ``\\boxed{}`` inside, cut off by max_tokens
  (``finish_reason: "length"``, no ``</think>``). Truth: no answer, always wrong; the box holds
  the gold answer for half of the questions.
- ``cut_thinking_template_open``: the same cut-off thinking without any tag (the chat template
  put ``<think>`` in the prompt, as the DeepSeek-R1 templates do), ``finish_reason: "length"``.
- ``intermediate_box``: in the answer part, an intermediate ``\\boxed{x}`` before the final
  ``\\boxed{y}``; truth: y. One of x, y is the gold answer.
- ``unpadded_aime``: AIME answers written with the other zero padding (``\\boxed{25}`` for gold
  ``025``, ``\\boxed{070}`` for gold ``70``); truth: equal.

Run alone (for a look with curl)::

    python bench/r1_answer_server.py --data math_500=/work/shared/data/math500.jsonl --port 8111
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

STYLES = ("baseline", "close_only", "cut_thinking", "cut_thinking_template_open", "intermediate_box",
          "unpadded_aime")
AIME = ("aime24", "aime25")
SUFFIX = re.compile(r"\s*Please reason step by step, and put your final answer within \\boxed\{\}\.?\s*$")


@dataclass(frozen=True)
class Question:
    bench: str
    index: int
    problem: str
    gold: str

    @property
    def key(self) -> str:
        return f"{self.bench}#{self.index}"


@dataclass(frozen=True)
class Answer:
    """One response of the server and its truth."""
    content: str
    finish_reason: str
    truth: bool          # would a correct grader mark it right?
    boxed: str           # the value in the final box (or in the cut-off thinking's box)
    edge: bool           # a grader that mishandles the style's edge case gives the wrong verdict here


def load_questions(paths: dict[str, str], limits: dict[str, int] | None = None) -> list[Question]:
    """Questions from jsonl files with a ``problem`` (or ``prompt``, instruction stripped) and an
    ``answer`` field, in file order, the first ``limits[bench]`` of each."""
    out: list[Question] = []
    for bench, path in paths.items():
        rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        if limits and bench in limits:
            rows = rows[: limits[bench]]
        for i, row in enumerate(rows):
            problem = SUFFIX.sub("", str(row.get("problem") or row.get("prompt")))
            out.append(Question(bench, i, problem.strip(), str(row["answer"]).strip()))
    return out


class QuestionIndex:
    """Finds the question whose problem text a prompt contains (the longest one, so a problem
    that is a substring of another cannot shadow it)."""

    def __init__(self, questions: list[Question]):
        self.questions = sorted(questions, key=lambda q: -len(q.problem))
        self._cache: dict[str, Question | None] = {}

    def find(self, text: str) -> Question | None:
        if text not in self._cache:
            self._cache[text] = next((q for q in self.questions if q.problem in text), None)
        return self._cache[text]


def _draw(seed: int, *parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()[:8], "big")


def truth_of(style: str, q: Question, seed: int) -> bool:
    """The seeded rule: is the response to ``q`` in ``style`` right? (about half are)."""
    if style.startswith("cut_thinking"):
        return False
    if style == "unpadded_aime" and _int(q.gold) is not None and _int(q.gold) < 100:
        return True  # every answer whose padding differs from the gold's is a right answer
    return _draw(seed, style, q.key) % 2 == 0


def _int(s: str) -> int | None:
    return int(s) if re.fullmatch(r"\d+", s) else None


def wrong_answer(q: Question, seed: int) -> str:
    """A value that is certainly not the gold answer: an integer off by 1..9 (mod 1000 for AIME),
    or, for a non-integer gold, an integer no MATH answer of that form equals."""
    k = 1 + _draw(seed, "wrong", q.key) % 9
    g = _int(q.gold)
    if q.bench in AIME:
        return str((g + k) % 1000)
    if g is not None:
        return str(g + k)
    return str(1000 + k)


def padded_other(gold: str) -> str:
    """The gold AIME integer with the other zero padding: ``025`` → ``25``, ``70`` → ``070``."""
    g = int(gold)
    return str(g) if gold != str(g) else f"{g:03d}"


_REASONING = ("Okay, let me work through this carefully. First I restate what is asked and list "
              "the given quantities. Trying a small case: with n = 2 the expression gives 5, with "
              "n = 3 it gives 10, so the pattern is not linear. Let me set up the equations instead "
              "and simplify step by step.")


def make_answer(style: str, q: Question, seed: int) -> Answer:
    """The response to question ``q`` in ``style`` (see the module docstring)."""
    right = truth_of(style, q, seed)
    wrong = wrong_answer(q, seed)
    if style == "unpadded_aime":
        final = padded_other(q.gold) if right else f"{int(wrong):03d}"
        return Answer(f"<think>\n{_REASONING}\n</think>\n\nPutting it together, the answer is "
                      f"$\\boxed{{{final}}}$.", "stop", right, final, right and final != q.gold)
    final = q.gold if right else wrong
    other = wrong if right else q.gold
    if style == "baseline":
        return Answer(f"<think>\n{_REASONING}\nSo I get {final}.\n</think>\n\nWorking it out step by step, "
                      f"the result is\n\n\\[\n\\boxed{{{final}}}\n\\]", "stop", right, final, False)
    if style == "close_only":
        return Answer(f"{_REASONING}\nA first guess would be \\boxed{{{other}}}, but let me recheck. "
                      f"Rechecking the second case gives {final} instead.\n</think>\n\nAfter checking "
                      f"both cases, the answer is $\\boxed{{{final}}}$.", "stop", right, final, True)
    if style in ("cut_thinking", "cut_thinking_template_open"):
        inside = q.gold if _draw(seed, "cut-box", style, q.key) % 2 == 0 else wrong
        opening = "<think>\n" if style == "cut_thinking" else ""
        return Answer(f"{opening}{_REASONING}\nSo the answer would be \\boxed{{{inside}}}. Wait, that "
                      f"assumed the roots are distinct. Let me redo the case where two of them coincide: "
                      f"then the sum becomes", "length", False, inside, inside == q.gold)
    if style == "intermediate_box":
        return Answer(f"<think>\n{_REASONING}\n</think>\n\nFirst we find the intermediate quantity "
                      f"$\\boxed{{{other}}}$, which we substitute back. Therefore the final answer is "
                      f"$\\boxed{{{final}}}$.", "stop", right, final, True)
    raise ValueError(f"unknown style {style!r}; known: {', '.join(STYLES)}")


def _user_text(messages: list) -> str:
    parts = []
    for m in messages or []:
        c = m.get("content") if isinstance(m, dict) else None
        if isinstance(c, str):
            parts.append(c)
        elif isinstance(c, list):
            parts.extend(str(p.get("text", "")) for p in c if isinstance(p, dict))
    return "\n".join(parts)


def build_app(questions: list[Question], seed: int) -> web.Application:
    """The aiohttp app: ``GET /v1/models`` lists the styles, ``POST /v1/chat/completions``
    answers (JSON, or SSE when ``stream`` is set). Each answered request is counted in
    ``app["answered"][(style, key)]``."""
    index = QuestionIndex(questions)
    app = web.Application()
    app["answered"] = {}

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": s, "object": "model", "created": 0, "owned_by": "r1-answer-server"} for s in STYLES]})

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        style = body.get("model")
        if style not in STYLES:
            return web.json_response({"error": {"message": f"unknown model {style!r}"}}, status=404)
        q = index.find(_user_text(body.get("messages")))
        if q is None:
            return web.json_response({"error": {"message": "question not recognized"}}, status=400)
        ans = make_answer(style, q, seed)
        app["answered"][(style, q.key)] = app["answered"].get((style, q.key), 0) + 1
        rid, now = f"chatcmpl-{q.key}", int(time.time())
        usage = {"prompt_tokens": 100, "completion_tokens": len(ans.content) // 4,
                 "total_tokens": 100 + len(ans.content) // 4}
        if not body.get("stream"):
            return web.json_response({
                "id": rid, "object": "chat.completion", "created": now, "model": style,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": ans.content},
                             "finish_reason": ans.finish_reason}],
                "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        base = {"id": rid, "object": "chat.completion.chunk", "created": now, "model": style}
        for delta, finish in (({"role": "assistant", "content": ans.content}, None), ({}, ans.finish_reason)):
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await resp.write(b"data: " + json.dumps({**base, "choices": [], "usage": usage}).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", action="append", required=True, metavar="BENCH=PATH")
    ap.add_argument("--port", type=int, default=8111)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    questions = load_questions(dict(d.split("=", 1) for d in args.data))
    web.run_app(build_app(questions, args.seed), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
