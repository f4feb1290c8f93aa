"""Prompts of an exact input length in tokens, built with the server's own /tokenize, /detokenize.

The server's tokenizer is the one that counts (`usage.prompt_tokens`), so the prompt is made
and checked there: token ids of a filler text are cut to the wanted length, turned back into
text with /detokenize, and re-tokenized; byte-level BPE can merge across the cut, so the cut
moves by a token until the text tokenizes to exactly the wanted count.

Each prompt starts at a different offset into the filler, so no two prompts share their first
tokens and vLLM's prefix cache (on by default in the v1 engine) cannot serve one request's
prefill from another's: TTFT stays the time of a real prefill.

Chat prompts count the whole templated conversation (what the server prefills): the template's
own tokens are measured once and the message content made that much shorter.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx

from .errors import CaptureError

FILLER = (
    "The quick brown fox jumps over the lazy dog. What is the capital of France? "
    "A journey of a thousand miles begins with a single step. "
)
# How far a cut may move (in tokens) while looking for a text of the exact length.
_MAX_CUT_SHIFT = 8
# Offset step between consecutive prompts, in filler tokens.
_PROMPT_OFFSET_TOKENS = 7


def _post(client: httpx.Client, base_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    url = base_url.rstrip("/") + path
    try:
        answer = client.post(url, json=body)
    except httpx.HTTPError as exc:
        raise CaptureError(f"POST {url} failed: {type(exc).__name__}: {exc}") from None
    if answer.status_code >= 400:
        raise CaptureError(f"POST {url} answered HTTP {answer.status_code}: {answer.text[:500]}")
    result: dict[str, Any] = answer.json()
    return result


def count_tokens(
    client: httpx.Client, base_url: str, model: str, prompt: str, api: Literal["completions", "chat"] = "completions"
) -> int:
    """Tokens the server prefills for `prompt` (chat: the templated one-message conversation)."""
    if api == "chat":
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "add_generation_prompt": True,
        }
    else:
        body = {"model": model, "prompt": prompt, "add_special_tokens": True}
    return int(_post(client, base_url, "/tokenize", body)["count"])


def exact_length_prompts(
    client: httpx.Client,
    base_url: str,
    model: str,
    input_len: int,
    count: int,
    api: Literal["completions", "chat"] = "completions",
) -> list[str]:
    """`count` distinct prompts that each tokenize to exactly `input_len` tokens on this server.

    Raises CaptureError when the server cannot tokenize, or no cut gives the exact length
    (e.g. `input_len` below the chat template's own token count).
    """
    if input_len < 1 or count < 1:
        raise ValueError(f"input_len and count must be >= 1, got {input_len}, {count}")
    overhead = count_tokens(client, base_url, model, "", api)  # BOS / chat template around the text
    content_len = input_len - overhead
    if content_len < 1:
        raise CaptureError(
            f"input_len={input_len} is shorter than the {overhead} tokens the server adds "
            f"around any {api} prompt (special tokens / chat template)"
        )
    need = content_len + _PROMPT_OFFSET_TOKENS * count + _MAX_CUT_SHIFT + 1
    filler_ids: list[int] = []
    text = FILLER
    while len(filler_ids) < need:
        filler_ids = _post(
            client, base_url, "/tokenize", {"model": model, "prompt": text, "add_special_tokens": False}
        )["tokens"]
        text += FILLER * 2
    prompts = []
    for i in range(count):
        start = i * _PROMPT_OFFSET_TOKENS
        prompts.append(_exact_cut(client, base_url, model, filler_ids[start:], content_len, input_len, api))
    return prompts


def _exact_cut(
    client: httpx.Client,
    base_url: str,
    model: str,
    ids: list[int],
    content_len: int,
    input_len: int,
    api: Literal["completions", "chat"],
) -> str:
    seen = []
    for shift in sorted(range(-_MAX_CUT_SHIFT, _MAX_CUT_SHIFT + 1), key=abs):
        n = content_len + shift
        if n < 1:
            continue
        text = str(_post(client, base_url, "/detokenize", {"model": model, "tokens": ids[:n]})["prompt"])
        got = count_tokens(client, base_url, model, text, api)
        if got == input_len:
            return text
        seen.append(got)
    raise CaptureError(
        f"no prompt of exactly {input_len} tokens found near a {content_len}-token cut "
        f"(re-tokenized lengths seen: {sorted(set(seen))})"
    )
