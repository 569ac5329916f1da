"""stalwart.otel needs opentelemetry-api and nothing else optional."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60
    )


def test_without_opentelemetry_the_import_error_says_what_to_install() -> None:
    done = run(
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if the extra were not installed\n"
        "import stalwart.otel\n"
    )
    assert done.returncode == 1
    assert "ImportError: stalwart.otel needs OpenTelemetry: pip install stalwart[otel]" in (
        done.stderr
    )


def test_without_prometheus_client_instrumenting_works() -> None:
    done = run(
        "import sys\n"
        "sys.modules['prometheus_client'] = None  # the prometheus extra is not installed\n"
        "import stalwart, stalwart.otel\n"
        "with stalwart.otel.instrument():\n"
        "    stalwart.circuit_breaker('db').call(lambda: None)\n"
        "print('ok')\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "ok\n"
