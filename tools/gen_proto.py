"""Generate the Python code for every contract in proto/ into libs/proto/src (`make proto`).

The output tree is wiped first so a deleted .proto leaves no stale module behind; every
package directory gets an empty __init__.py so type checkers see regular packages.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "libs" / "proto" / "src"
PACKAGE = "comuna"


def main() -> int:
    shutil.rmtree(OUT_DIR / PACKAGE, ignore_errors=True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={OUT_DIR}",
        f"--pyi_out={OUT_DIR}",
        f"--grpc_python_out={OUT_DIR}",
        *protos,
    ]
    if protoc.main(args) != 0:
        print("protoc failed", file=sys.stderr)
        return 1
    for directory in [OUT_DIR / PACKAGE, *(p for p in (OUT_DIR / PACKAGE).rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()
    print(f"generated {len(protos)} contracts into {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
