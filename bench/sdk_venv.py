"""The reference SDK (ruvon-sdk 0.1.5) in its own venv, shared by the benchmark and the import tests.

Stdlib only: the benchmark scripts and the test suite both load this file.
The venv lives in ``bench/.venv-ruvon-sdk`` (ignored by git), is created on
first use with pip from the configured index, and is reused while it still
holds the pinned version.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SDK_PIN = "ruvon-sdk==0.1.5"
SDK_VERSION = SDK_PIN.split("==")[1]
SDK_VENV = Path(__file__).resolve().parent / ".venv-ruvon-sdk"


def installed_python(venv: Path = SDK_VENV) -> Path | None:
    """The venv's interpreter if it holds the pinned ruvon-sdk, else None."""
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('ruvon-sdk'))"]
    found = subprocess.run(probe, capture_output=True, text=True)
    return python if found.stdout.strip() == SDK_VERSION else None


def ensure_sdk_python(venv: Path = SDK_VENV) -> Path:
    """Return the interpreter of a venv holding ruvon-sdk 0.1.5, installing it if need be.

    Raises ``RuntimeError`` naming why when the venv cannot be created or pip fails.
    """
    python = installed_python(venv)
    if python is not None:
        return python
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", SDK_PIN],
                       check=True, capture_output=True)  # fmt: skip
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"cannot install {SDK_PIN}: {(detail or ['pip failed'])[-1]}") from None
    except OSError as exc:
        raise RuntimeError(f"cannot install {SDK_PIN}: {exc}") from None
    python = installed_python(venv)
    if python is None:
        raise RuntimeError(f"{SDK_PIN} installed into {venv} but does not import")
    return python


if __name__ == "__main__":  # `.ci/run` prepares the venv before the tests, outside any test timeout
    print(ensure_sdk_python())
