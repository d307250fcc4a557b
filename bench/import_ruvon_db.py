"""Import benchmark: a ruvon-sdk 0.1.5 device database of N workflows switched over with `import-ruvon-db`.

    python bench/import_ruvon_db.py              # 1,000 completed sales + one workflow per status
    python bench/import_ruvon_db.py --bulk 200   # a quick run

The old database is written by the real reference SDK (its own venv, see
``sdk_venv.py``) driving the till workflows of ``tests/compat/ruvon_sdk_device``.
Then ``ruvon-edge import-ruvon-db`` runs as a user runs it, in a fresh process,
twice: the first run imports, the second must import nothing. Prints the rows
imported, the wall time of each run (process start included) and the
importer's own time and rate.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sdk_venv

ROOT = Path(__file__).resolve().parents[1]
COMPAT = ROOT / "tests" / "compat"


def run_import(old: Path, db: Path) -> tuple[float, dict]:
    """One ``import-ruvon-db`` in a fresh process: (wall seconds, its JSON report)."""
    cmd = [sys.executable, "-m", "ruvon_edge.cli", "import-ruvon-db", str(old), "--db", str(db),
           "--json", "--definitions", str(COMPAT / "ruvon_sdk_device"),
           "--allow-module", "ruvon_sdk_device", "--module-path", str(COMPAT)]  # fmt: skip
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"import failed ({out.returncode}): {out.stderr.strip()}")
    return wall, json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bulk", type=int, default=1000, help="completed sales on top of one per status"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the figures as one JSON document"
    )
    args = parser.parse_args()
    python = sdk_venv.ensure_sdk_python()
    with tempfile.TemporaryDirectory(prefix="ruvon-import-bench-") as tmp:
        old, db = Path(tmp) / "device.db", Path(tmp) / "edge.db"
        started = time.perf_counter()
        subprocess.run([str(python), str(COMPAT / "ruvon_sdk_writer.py"), str(old), "--bulk", str(args.bulk)],
                       check=True, capture_output=True)  # fmt: skip
        written = time.perf_counter() - started
        first_wall, first = run_import(old, db)
        second_wall, second = run_import(old, db)
    figures = {
        "workflows": first["imported_total"],
        "by_status": first["imported"],
        "audit_logs": first["audit_logs"],
        "execution_logs": first["execution_logs"],
        "metrics": first["metrics"],
        "batches": first["batches"],
        "import_s": first["seconds"],
        "import_wall_s": round(first_wall, 2),
        "workflows_per_s": round(first["imported_total"] / first["seconds"]),
        "rerun_imported": second["imported_total"],
        "rerun_skipped": second["skipped_already_imported"],
        "rerun_s": second["seconds"],
        "reference_wrote_s": round(written, 1),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"ruvon-sdk 0.1.5 wrote {figures['workflows']} workflows in {written:.1f} s")
    print(f"import: {figures['workflows']} workflows, {figures['audit_logs']} audit rows, "
          f"{figures['execution_logs']} log lines, {figures['metrics']} metrics in {figures['batches']} "
          f"batches: {figures['import_s']:.2f} s ({figures['workflows_per_s']} workflows/s), "
          f"{first_wall:.2f} s with process start")  # fmt: skip
    print(f"second run: {figures['rerun_imported']} imported, {figures['rerun_skipped']} skipped "
          f"in {figures['rerun_s']:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
