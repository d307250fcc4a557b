"""Receiver memory under gzip bombs: eight concurrent gzip batches that each decode to ~N MiB.

    python bench/receiver_memory.py                 # 8 x 15 MiB, the README figure
    python bench/receiver_memory.py --decoded-mib 60 --budget-mib 100000 --max-decoded-mib 64

Starts `ruvon-cloud serve` (SQLite store) on 127.0.0.1, registers one device,
sends the batches at once from threads (each body is valid, signed, gzip),
and prints the answers and the server's peak RSS (VmHWM from /proc). The
first figure is with the shipped limits (16 MiB per request, a 64 MiB budget
shared by all requests); the second command shows what the budget prevents.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

from sync_agent import protocol


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _body(device: str, mib: int) -> tuple[str, bytes]:
    """A valid batch of ~``mib`` MiB of JSON: many small workflows with padded state."""
    batch_id = str(uuid.uuid4())
    per = 2_000  # bytes of padding per workflow
    n = mib * (1 << 20) // (per + 400)
    workflows = [{"id": str(uuid.uuid4()), "workflow_type": "Payment", "status": "COMPLETED",
                  "state": {"pad": "x" * per}, "created_at": "t0", "updated_at": "t1", "sync_version": 1}
                 for _ in range(n)]  # fmt: skip
    doc = {"batch_id": batch_id, "device_id": device, "workflows": workflows, "audit_logs": []}
    return batch_id, gzip.compress(json.dumps(doc).encode(), compresslevel=1)


def _peak_rss_mib(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(text.split("VmHWM:")[1].split()[0]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--decoded-mib", type=int, default=15)
    parser.add_argument("--max-decoded-mib", type=int, default=16)
    parser.add_argument("--budget-mib", type=int, default=64)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ruvon-rx-mem-"))
    store, port = f"sqlite:///{tmp / 'cloud.db'}", _free_port()
    cloud = [sys.executable, "-m", "ruvon_cloud.cli"]
    key = json.loads(subprocess.run([*cloud, "add-device", "pos-1", "--store", store, "--json"],
                                    capture_output=True, text=True, check=True).stdout)  # fmt: skip
    server = subprocess.Popen(
        [*cloud, "serve", "--store", store, "--port", str(port), "--max-body-bytes", str(1 << 30),
         "--max-decoded-bytes", str(args.max_decoded_mib << 20),
         "--decoded-budget-bytes", str(args.budget_mib << 20), "--log-level", "warning"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                httpx.get(url + "/v1/health")
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        idle = _peak_rss_mib(server.pid)
        bodies = [_body("pos-1", args.decoded_mib) for _ in range(args.requests)]
        path = protocol.batch_path("pos-1")
        answers: list[int] = []

        def send(batch_id: str, body: bytes) -> None:
            headers = protocol.signed_headers(key["key_id"], key["secret"], path, body, batch_id)
            headers["Content-Encoding"] = "gzip"
            answers.append(
                httpx.post(url + path, content=body, headers=headers, timeout=600).status_code
            )

        threads = [threading.Thread(target=send, args=b) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(f"{args.requests} concurrent gzip batches of ~{args.decoded_mib} MiB decoded "
              f"(wire {len(bodies[0]) / (1 << 20):.1f} MiB each), limits {args.max_decoded_mib} MiB "
              f"per request / {args.budget_mib} MiB shared")  # fmt: skip
        print(f"answers: {dict(Counter(answers))}")
        print(f"receiver peak RSS: {_peak_rss_mib(server.pid):.0f} MiB (idle {idle:.0f} MiB)")
    finally:
        server.terminate()
        server.wait(30)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
