"""Run N payments (keys pay-0 .. pay-N-1) on a device database, print "done", then hold the database open.

Holding it open matters: the last connection to close checkpoints the WAL (and fsyncs it), which
would make everything durable and hide what a power cut takes back.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from device import payments_engine  # noqa: E402


async def main(db: str, n: int) -> None:
    async with payments_engine(Path(db)) as engine:
        for i in range(n):
            wf = await engine.start_workflow(
                "Payment", {"amount": i, "note": f"till {i}"}, idempotency_key=f"pay-{i}"
            )
            await engine.run(wf.id)
        print("done", flush=True)
        sys.stdin.readline()  # the test cuts the power (kill -9) while we wait here


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
