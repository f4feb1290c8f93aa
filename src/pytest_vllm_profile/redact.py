"""Secrets kept out of everything the plugin writes: baselines (committed to git), results,
reports, the console.

A setting is secret when one word of its name (split at `-` and `_`) is a secret word:
`HF_TOKEN`, `--hf-token`, `--api-key`, `AWS_SECRET_ACCESS_KEY` are; `--max-num-batched-tokens`
and `--tokenizer` are not (a whole-word match, so token counts and tokenizer names stay
readable). Free text (a server's log tail, an error message) is scrubbed of the secret
values themselves, since a server that fails to boot prints its own command line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

REDACTED = "<redacted>"
SECRET_WORDS = frozenset({"token", "secret", "password", "passwd", "key", "apikey", "credential", "credentials"})
_WORD_SPLIT = re.compile(r"[-_.]+")


def is_secret_name(name: str) -> bool:
    """True for an environment key or a command-line flag that holds a secret."""
    return any(word in SECRET_WORDS for word in _WORD_SPLIT.split(name.lstrip("-").lower()))


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with the values of secret keys replaced by REDACTED."""
    return {key: REDACTED if is_secret_name(key) else value for key, value in env.items()}


def redact_args(args: Sequence[str]) -> list[str]:
    """Command-line arguments with the values of secret flags replaced: `--hf-token X`,
    `--hf-token=X` -> `--hf-token <redacted>`, `--hf-token=<redacted>`."""
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if arg.startswith("-"):
            flag, sep, _value = arg.partition("=")
            if is_secret_name(flag):
                if sep:
                    out.append(f"{flag}={REDACTED}")
                else:
                    out.append(arg)
                    hide_next = True
                continue
        out.append(arg)
    return out


def secret_values(env: Mapping[str, str] = {}, args: Sequence[str] = ()) -> set[str]:  # noqa: B006 - read only
    """The secret values themselves, to scrub from free text (`redact_text`)."""
    values = {value for key, value in env.items() if is_secret_name(key) and value}
    for raw, shown in zip(args, redact_args(args), strict=True):
        if raw != shown:
            values.add(raw.partition("=")[2] if shown.endswith("=" + REDACTED) else raw)
    return {v for v in values if v}


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret value replaced by REDACTED (longest first,
    so a secret that contains another is replaced whole)."""
    for value in sorted(set(secrets), key=len, reverse=True):
        if value:
            text = text.replace(value, REDACTED)
    return text
