"""A local server that speaks OpenAI's chat-completions API and rate-limits like one.

Every ``--burst``-th request starts a cooldown of ``--cooldown`` seconds: that request and
every one arriving during the cooldown get ``429 Too Many Requests`` with ``Retry-After``
(and OpenAI's error body), as an API over its quota does. Answers are made from the prompt,
after ``--latency`` seconds. ``--request-log FILE`` writes one JSON line per request
(arrival and end times, status, the prompt), which the example's tests read.

    python examples/llm_batch/local_llm.py --port 8011
    OPENAI_BASE_URL=http://127.0.0.1:8011/v1 python examples/llm_batch/pipeline.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RateLimit:
    """Every ``burst``-th request opens a cooldown; requests inside it are refused."""

    def __init__(self, burst: int, cooldown: float) -> None:
        self.burst = burst
        self.cooldown = cooldown
        self.count = 0
        self.until = 0.0
        self.lock = threading.Lock()

    def refuse_for(self, now: float) -> float | None:
        """Seconds the caller must wait, or None to serve the request."""
        with self.lock:
            if now < self.until:
                return self.until - now
            self.count += 1
            if self.burst and self.count % self.burst == 0:
                self.until = now + self.cooldown
                return self.cooldown
            return None


class LocalLLM(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, port: int, *, burst: int, cooldown: float, latency: float, log: str | None
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.limit = RateLimit(burst, cooldown)
        self.latency = latency
        self._log = open(log, "a", encoding="utf-8") if log else None  # noqa: SIM115
        self._log_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def record(self, entry: dict[str, Any]) -> None:
        if self._log is not None:
            with self._log_lock:
                self._log.write(json.dumps(entry) + "\n")
                self._log.flush()

    def server_close(self) -> None:
        super().server_close()
        if self._log is not None:
            self._log.close()


class _Handler(BaseHTTPRequestHandler):
    server: LocalLLM
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the JSON log says it all
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/health", "/v1/models"):
            self._send(200, {"object": "list", "data": [{"id": "local-model", "object": "model"}]})
        else:
            self._error(404, "not_found", f"no route {self.path}")

    def do_POST(self) -> None:
        arrived = time.time()
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            messages = body["messages"]
            model = body["model"]
            prompt = str(messages[-1]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            self._error(400, "invalid_request_error", "the body needs model and messages")
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, "not_found", f"no route {self.path}")
            return
        wait = self.server.limit.refuse_for(time.monotonic())
        if wait is not None:
            retry = max(1, math.ceil(wait))
            hint = {"retry-after": str(retry), "retry-after-ms": str(int(wait * 1000))}
            self._error(429, "rate_limit_exceeded", "Rate limit reached: retry later", hint)
            self.server.record({"arrived": arrived, "ended": time.time(), "status": 429,
                                "prompt": prompt, "retry_after": retry})  # fmt: skip
            return
        time.sleep(self.server.latency)
        text = _answer(prompt)
        tokens = len(prompt.split()) + len(text.split())
        self._send(200, {
            "id": "chatcmpl-" + hashlib.sha1(prompt.encode()).hexdigest()[:12],
            "object": "chat.completion",
            "created": int(arrived),
            "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                      "total_tokens": tokens},
        })  # fmt: skip
        self.server.record(
            {"arrived": arrived, "ended": time.time(), "status": 200, "prompt": prompt}
        )

    def _error(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        body = {"error": {"message": message, "type": code, "code": code, "param": None}}
        self._send(status, body, headers)

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _answer(prompt: str) -> str:
    digest = hashlib.sha256(prompt.encode()).hexdigest()
    return f"Assessment ({digest[:8]}): {prompt[:120]} - meets the criterion, with caveats."


def start(
    port: int = 0, *, burst: int = 25, cooldown: float = 2.0, latency: float = 0.05,
    log: str | None = None,
) -> LocalLLM:  # fmt: skip
    """Serve on 127.0.0.1:``port`` (0: any free port) from a background thread."""
    server = LocalLLM(port, burst=burst, cooldown=cooldown, latency=latency, log=log)
    threading.Thread(target=server.serve_forever, name="local-llm", daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument(
        "--burst", type=int, default=25, help="every Nth request starts a cooldown (0: never)"
    )
    parser.add_argument("--cooldown", type=float, default=2.0, help="seconds of 429s after it")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per answer")
    parser.add_argument("--request-log", default=None, metavar="FILE")
    args = parser.parse_args()
    server = LocalLLM(args.port, burst=args.burst, cooldown=args.cooldown,
                      latency=args.latency, log=args.request_log)  # fmt: skip
    print(f"local chat-completions API on {server.base_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
