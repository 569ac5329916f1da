"""moto's standalone S3 server, standing in for MinIO: a process of its own on loopback.

    python local_s3.py --port 9000          # until Ctrl-C

``running_s3()`` does the same for a test or a script and yields the endpoint URL. moto
keeps its buckets in memory, so each start is empty; it accepts any credentials.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_s3(port: int | None = None) -> Iterator[str]:
    """Start ``moto_server`` on 127.0.0.1 and yield its endpoint URL; stop it afterwards."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    # moto logs every request: to a file, never to a pipe nobody reads (once its buffer is
    # full, moto stops in the middle of a write and answers nothing more).
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                try:
                    httpx.get(f"{url}/moto-api/", timeout=1.0)
                    break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    process.wait()
                    log.seek(0)
                    raise RuntimeError(f"moto's S3 server did not start:\n{log.read().decode()}")
                time.sleep(0.05)  # a condition wait: the next probe of the starting server
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description="moto's S3 server on 127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    with running_s3(args.port) as url, contextlib.suppress(KeyboardInterrupt):
        print(f"S3 (moto) on {url}; any access key works. Ctrl-C stops it.", flush=True)
        while True:
            time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
