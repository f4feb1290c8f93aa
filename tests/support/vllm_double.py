"""`RecordedTraceDouble`: a stand-in vLLM server that replays a REAL recorded trace.

It speaks the endpoints the plugin uses (/health, /v1/models, /version, /v1/completions (also
streamed, as the timed pass sends them), /v1/chat/completions (streamed), /tokenize,
POST /start_profile, POST /stop_profile) over real HTTP, and on /stop_profile writes a copy of
a real recorded torch-profiler trace (by default tests/data/base-rep0.pt.trace.json.gz, vLLM
0.26.0 on an H100) into its trace dir under the name vLLM uses (`rank0.<ns>.pt.trace.json.gz`).
So everything after the HTTP layer (trace reading, analysis, baselines, comparison, reports)
runs on real data; only the GPU and the model are not there.

`scaled_trace(src, factor, dst)` derives a slower/faster trace from a real one by dilating its
time axis (every `ts` offset and `dur` times `factor`): the structure is untouched, every
duration changes by exactly that factor. Files made with it carry `_scaled_` in their name.
"""

from __future__ import annotations

import gzip
import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from support.paths import DATA

DEFAULT_TRACE = DATA / "base-rep0.pt.trace.json.gz"
DOUBLE_MODEL = "qwen3-8b-shape"  # the model the recorded traces were made with (Qwen3-8B config)
RECORDED_VLLM_VERSION = "0.26.0"


def scaled_trace(src: Path, factor: float, dst_dir: Path) -> Path:
    """A copy of the real trace `src` with its time axis stretched by `factor` (named `_scaled_`)."""
    with gzip.open(src, "rt") as handle:
        doc = json.load(handle)
    events = doc["traceEvents"]
    starts = [e["ts"] for e in events if isinstance(e.get("ts"), (int, float))]
    t0 = min(starts)
    for event in events:
        if isinstance(event.get("ts"), (int, float)):
            event["ts"] = t0 + (event["ts"] - t0) * factor
        if isinstance(event.get("dur"), (int, float)):
            event["dur"] = event["dur"] * factor
    stem = src.name.split(".pt.trace")[0]
    dst = dst_dir / f"{stem}_scaled_{factor:g}.pt.trace.json.gz"
    with gzip.open(dst, "wt") as handle:
        json.dump(doc, handle)
    return dst


@dataclass
class DoubleState:
    trace_dir: Path
    trace_source: Path = DEFAULT_TRACE
    model: str = DOUBLE_MODEL
    vllm_version: str = RECORDED_VLLM_VERSION
    profiling: bool = False
    queued_sources: list[Path] = field(default_factory=list)  # served one per /stop_profile before trace_source
    calls: list[str] = field(default_factory=list)
    completions: list[dict[str, Any]] = field(default_factory=list)  # non-streamed: the profiled pass
    streamed: list[dict[str, Any]] = field(default_factory=list)  # streamed: the timed pass
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    state: DoubleState  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else {}

    def do_GET(self) -> None:
        st = self.state
        st.calls.append(f"GET {self.path}")
        if self.path == "/health":
            self._send(200, b"")
        elif self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": st.model, "object": "model", "owned_by": "vllm"}]})
        elif self.path == "/version":
            self._send(200, {"version": st.vllm_version})
        else:
            self._send(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        st = self.state
        st.calls.append(f"POST {self.path}")
        body = self._body()
        if self.path == "/start_profile":
            st.profiling = True
            self._send(200, b"")
        elif self.path == "/stop_profile":
            with st.lock:
                if st.profiling:
                    # vLLM names torch-profiler files <worker>.<time_ns>.pt.trace.json.gz
                    dst = st.trace_dir / f"rank0.{time.time_ns()}.pt.trace.json.gz"
                    tmp = dst.with_name(dst.name + ".partial")
                    shutil.copyfile(st.queued_sources.pop(0) if st.queued_sources else st.trace_source, tmp)
                    tmp.replace(dst)
                st.profiling = False
            self._send(200, b"")
        elif self.path == "/tokenize":
            text = body.get("prompt") if "prompt" in body else " ".join(m["content"] for m in body.get("messages", []))
            tokens = list(range(len(str(text).split()) + 1))  # one token per word, plus BOS
            self._send(200, {"count": len(tokens), "max_model_len": 4096, "tokens": tokens})
        elif self.path in ("/v1/completions", "/v1/chat/completions") and body.get("stream"):
            self._stream(body)
        elif self.path == "/v1/completions":
            if body.get("model") != st.model:
                self._send(
                    404,
                    {
                        "error": {
                            "message": f"The model `{body.get('model')}` does not exist.",
                            "type": "NotFoundError",
                            "code": 404,
                        }
                    },
                )
                return
            st.completions.append(body)
            prompts = body.get("prompt")
            prompts = prompts if isinstance(prompts, list) else [prompts]
            max_tokens = int(body.get("max_tokens", 16))
            choices = [
                {"index": i, "text": " Paris" * max_tokens, "logprobs": None, "finish_reason": "length"}
                for i in range(len(prompts))
            ]
            prompt_tokens = sum(max(1, len(str(p).split())) for p in prompts)
            self._send(
                200,
                {
                    "id": f"cmpl-double-{len(st.completions)}",
                    "object": "text_completion",
                    "created": int(time.time()),
                    "model": st.model,
                    "choices": choices,
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": max_tokens * len(prompts),
                        "total_tokens": prompt_tokens + max_tokens * len(prompts),
                    },
                },
            )
        else:
            self._send(404, {"detail": "Not Found"})

    def _stream(self, body: dict[str, Any]) -> None:
        """Server-sent events like vLLM's: one chunk per token, then the usage chunk, then [DONE]."""
        st = self.state
        if body.get("model") != st.model:
            self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
            return
        st.streamed.append(body)
        tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i in range(tokens):
            finish = "length" if i == tokens - 1 else None
            chunk = {"choices": [{"index": 0, "text": " Paris", "finish_reason": finish}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        usage = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": tokens, "total_tokens": 7 + tokens}}
        self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
        self.wfile.flush()
        self.close_connection = True


class RecordedTraceDouble:
    """A threaded HTTP server on 127.0.0.1 (free port) replaying a recorded trace; a context manager."""

    def __init__(self, trace_dir: Path, trace_source: Path = DEFAULT_TRACE) -> None:
        trace_dir.mkdir(parents=True, exist_ok=True)
        self.state = DoubleState(trace_dir=trace_dir, trace_source=trace_source)
        handler = type("_BoundHandler", (_Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="vllm-double", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def trace_dir(self) -> Path:
        return self.state.trace_dir

    def serve(self, trace_source: Path) -> None:
        """Replay this real trace on the next /stop_profile calls."""
        self.state.trace_source = trace_source

    def serve_in_turn(self, *trace_sources: Path) -> None:
        """Replay these real traces one per /stop_profile call, then the `serve` one again."""
        self.state.queued_sources = list(trace_sources)

    def start(self) -> RecordedTraceDouble:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> RecordedTraceDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
