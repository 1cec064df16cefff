"""One run per output folder (issue 23 item 4): a lock on ``output_dir`` held by the launch, and no mixing of
another run's checkpoints (``amber_align.trainers.run_folder``, ``amber_align.folder_lock``).

The align runs are those of tests/test_kill_resume.py: a tiny BERT, Cao on 20 demo pairs, 4 steps, a checkpoint
every 2 steps, CPU.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import tiny_model_dir
from test_kill_resume import SCRIPT, _env, _write_config, kra
from transformers import AutoModel

from amber_align.cli import main
from amber_align.folder_lock import LOCK_FILE, FolderInUseError, FolderLock
from amber_align.trainers.run_folder import SETTINGS_FILE

DDP_SCRIPT = Path(__file__).resolve().parent / "distributed" / "run_folder_ddp.py"


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------ the lock
def test_folder_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    first = FolderLock(tmp_path / "out", "align").acquire()
    holder = json.loads((tmp_path / "out" / LOCK_FILE).read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["started"]
    # another process (flock locks belong to the open file, so a second open in this process is refused too)
    with pytest.raises(FolderInUseError, match=rf"is in use by another align run pid {os.getpid()}, started "):
        FolderLock(tmp_path / "out", "finetune").acquire()
    first.release()
    assert not (tmp_path / "out" / LOCK_FILE).exists(), "the lock file is removed on release"
    with FolderLock(tmp_path / "out", "align") as again:
        assert again.held
    assert not again.held


def test_a_run_refused_before_the_holder_wrote_its_record_waits_for_the_record(tmp_path):
    """The holder writes pid/host/start just after taking the flock; a run refused in that gap reads again and
    names the holder (the CI race of stop 28), and one whose holder never writes says 'a run that is just
    starting'."""
    import fcntl
    import threading

    folder = tmp_path / "out"
    folder.mkdir()
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    record = {"pid": 4242, "host": socket.gethostname(), "started": "now", "command": "align"}
    writer = threading.Timer(0.3, lambda: os.pwrite(fd, json.dumps(record).encode(), 0))
    writer.start()
    try:
        with pytest.raises(FolderInUseError, match="is in use by another align run pid 4242, started now"):
            FolderLock(folder, "finetune").acquire()
        os.ftruncate(fd, 0)
        with pytest.raises(FolderInUseError, match="in use by another run that is just starting"):
            FolderLock(folder, "finetune").acquire()  # after the 2 s wait
    finally:
        writer.cancel()
        os.close(fd)


def test_two_align_runs_into_one_folder_exactly_one_trains_and_the_other_names_it(tmp_path):
    """Both start at once; the winner pauses after checkpoint-2 (holding the folder) until the loser has exited 2
    with one line naming the winner's pid; then the winner finishes a complete model and nothing of it is lost."""
    model_dir = tiny_model_dir("mbert", tmp_path / "tiny")
    out = tmp_path / "shared-out"
    config = _write_config(tmp_path, model_dir, out)
    events = tmp_path / "events.jsonl"
    cmd = [sys.executable, str(SCRIPT), str(events), "--pause_after_checkpoint", "2", "--", "align", "--config",
           str(config)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
             for _ in range(2)]
    try:
        deadline = time.time() + 240
        while time.time() < deadline and all(p.poll() is None for p in procs):
            time.sleep(0.1)
        done = [p for p in procs if p.poll() is not None]
        assert len(done) == 1, "one run must be refused while the other holds the folder"
        loser, winner = done[0], next(p for p in procs if p is not done[0])
        err = loser.stderr.read().strip().splitlines()
        assert loser.returncode == 2, err[-20:]
        assert err[-1].startswith(f"error: output_dir: {str(out)!r} is in use by another align run pid "
                                  f"{winner.pid}, started "), err[-1]
        assert "Traceback" not in "\n".join(err)
        while not any(e.get("saved") == 2 for e in kra.read_events(events)):  # the winner holds checkpoint-2
            assert winner.poll() is None and time.time() < deadline, winner.stderr.read()[-3000:]
            time.sleep(0.1)
        Path(f"{events}.go").write_text("go")
        _, winner_err = winner.communicate(timeout=240)
        assert winner.returncode == 0, winner_err[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    steps = [e["step"] for e in kra.read_events(events) if "batch" in e]
    assert steps == [0, 1, 2, 3], "exactly one run trained, every step once"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    AutoModel.from_pretrained(out)
    assert not (out / LOCK_FILE).exists()


# ------------------------------------------------------------------ another run's checkpoints
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run_folder")
    model_dir = tiny_model_dir("mbert", root / "tiny")
    out = root / "out"
    assert main(["align", "--config", str(_write_config(root, model_dir, out))]) == 0
    return root, model_dir, out


def test_a_fresh_run_into_another_runs_checkpoints_is_refused(finished_run, capsys):
    root, model_dir, out = finished_run
    before = _snapshot(out)
    config = _write_config(root, model_dir, out, learning_rate=5e-4)
    assert main(["align", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"error: output_dir: {str(out)!r} already holds another run's checkpoints (checkpoint-2, "
                       "checkpoint-4); resume it with --resume_from_checkpoint true, replace it with "
                       "--overwrite_output_dir true, or give another output_dir")
    # resuming it with other settings would take the stale run's checkpoint
    assert main(["align", "--config", str(config), "--resume_from_checkpoint", "true"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: resume_from_checkpoint: the checkpoints in {str(out)!r} are from a run with "
                              "other settings (learning_rate 0.001 -> 0.0005)"), err[-1]
    assert _snapshot(out) == before, "a refused run changes nothing"


def test_overwrite_output_dir_replaces_the_old_run(finished_run, tmp_path):
    root, model_dir, _ = finished_run
    out = tmp_path / "out"
    import shutil

    shutil.copytree(finished_run[2], out)
    (out / "checkpoint-6").mkdir()  # a checkpoint only the old run had
    config = _write_config(tmp_path, model_dir, out, learning_rate=5e-4, save_steps=4)
    assert main(["align", "--config", str(config), "--overwrite_output_dir", "true"]) == 0
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4"]
    settings = json.loads((out / SETTINGS_FILE).read_text())["settings"]
    assert settings["learning_rate"] == 5e-4
    AutoModel.from_pretrained(out)


def test_weights_and_checkpoints_get_the_usual_file_mode(finished_run):
    """Issue 23 item 9: transformers 5 writes weights with mkstemp's 0600; the published files get 0666 - umask."""
    _, _, out = finished_run
    mask = os.umask(0)
    os.umask(mask)
    files = [out / "model.safetensors", out / "config.json", *(out / "checkpoint-4").iterdir()]
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files if p.is_file()} == \
        {p.name: oct(0o666 & ~mask) for p in files if p.is_file()}


def test_a_truncated_optimizer_state_on_resume_is_one_line_naming_the_file(finished_run, tmp_path, capsys):
    """Issue 23 item 1: it failed inside torch.load with a traceback after the model was loaded."""
    import shutil

    _, model_dir, _ = finished_run
    out = tmp_path / "out"
    shutil.copytree(finished_run[2], out)
    (out / "config.json").unlink()
    optimizer = out / "checkpoint-4" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:1000])
    config = _write_config(tmp_path, model_dir, out)
    assert main(["align", "--config", str(config), "--resume_from_checkpoint", "true"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {optimizer}: truncated or corrupt checkpoint file ("), err[-1]
    assert err[-1].endswith("resume from an earlier checkpoint-N, or delete checkpoint-4 to resume from the one "
                            "before it")
    assert not any(line.startswith("Traceback") for line in err)


# ------------------------------------------------------------------ a launch of several processes
def _torchrun(tmp_path: Path, name: str, *launch: str) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = tmp_path / name
    cmds = [["timeout", "200", sys.executable, "-m", "torch.distributed.run", *args, str(DDP_SCRIPT), str(out),
             str(tmp_path)] for args in launch]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for c in cmds]
    for p in procs:
        _, err = p.communicate(timeout=220)
        assert p.returncode == 0, err[-3000:]
    return [json.loads(p.read_text()) for p in sorted(tmp_path.glob(f"{name}.rank*.json"))]


@pytest.mark.slow
@pytest.mark.distributed
def test_the_launch_holds_the_folder_and_every_rank_is_refused_alike(tmp_path):
    ranks = _torchrun(tmp_path, "free", "--standalone --nproc_per_node 2".split())
    assert [(r["rank"], r["ok"], r["lock_file"]) for r in ranks] == [(0, True, True), (1, True, True)]
    with FolderLock(tmp_path / "out", "align"):
        ranks = _torchrun(tmp_path, "held", "--standalone --nproc_per_node 2".split())
    assert [r["ok"] for r in ranks] == [False, False]
    assert ranks[0]["error"] == ranks[1]["error"] and f"in use by another align run pid {os.getpid()}" in \
        ranks[0]["error"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nodes = [f"--nnodes 2 --node_rank {n} --nproc_per_node 1 --master_addr 127.0.0.1 --master_port {port}".split()
             for n in (0, 1)]
    ranks = _torchrun(tmp_path, "nodes", *nodes)
    assert [(r["rank"], r["world"], r["ok"], r["lock_file"]) for r in ranks] == [(0, 2, True, True),
                                                                                  (1, 2, True, True)]


def test_run_settings_leave_out_output_only_fields():
    """Fields that change what is written beside the model, not the training, may differ on resume."""
    from amber_align.trainers import CaoConfig
    from amber_align.trainers.run_folder import run_settings

    a = run_settings(CaoConfig(output_dir="o", report_to=[], sentence_transformers_modules="never"))
    b = run_settings(CaoConfig(output_dir="o", report_to=[], sentence_transformers_modules="always"))
    c = run_settings(CaoConfig(output_dir="o", report_to=[], freeze_word_embeddings=True))
    assert a == b and "sentence_transformers_modules" not in a
    assert c != a  # freezing the embeddings is another run
