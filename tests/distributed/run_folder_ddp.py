"""``claim_output_dir`` under torchrun (gloo on CPU): the launch holds the folder, not one process.

Every rank claims ``TMPDIR/out`` and writes ``OUT.rank<R>.json``: ``{"ok": bool, "error": message or None,
"lock_file": whether the lock file exists while the launch holds the folder, "rank", "world"}``. Started once on a
free folder (all ranks get in under rank 0's lock) and once on a folder another process holds (every rank gets the
same one-line refusal). Also run as two one-process "nodes" (``--nnodes 2``): only the global main takes the lock.
Run: torchrun --standalone --nproc_per_node W tests/distributed/run_folder_ddp.py OUT TMPDIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from amber_align.errors import ConfigError  # noqa: E402
from amber_align.folder_lock import LOCK_FILE  # noqa: E402
from amber_align.trainers import CaoConfig  # noqa: E402
from amber_align.trainers.run_folder import claim_output_dir  # noqa: E402


def main() -> None:
    out, tmp = Path(sys.argv[1]), Path(sys.argv[2])
    args = CaoConfig(output_dir=str(tmp / "out"), model_name_or_path="unused", use_cpu=True, report_to=[],
                     save_strategy="no", ddp_backend="gloo")
    rank, world = args.process_index, args.world_size
    record = {"rank": rank, "world": world, "ok": False, "error": None, "lock_file": None}
    try:
        with claim_output_dir(args, "align"):
            if world > 1:
                dist.barrier()  # every rank looks while the launch holds the folder
            record.update(ok=True, lock_file=(tmp / "out" / LOCK_FILE).exists())
            if world > 1:
                dist.barrier()
    except ConfigError as err:
        record["error"] = str(err)
    Path(f"{out}.rank{rank}.json").write_text(json.dumps(record), encoding="utf-8")
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
