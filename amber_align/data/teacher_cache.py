"""Precomputed teacher outputs for the Cao anchor term (``CaoConfig.teacher_cache``).

The frozen teacher f0 only ever sees the anchor sentences t, and the Cao loss uses only its hidden states at the
aligned layer (token vectors for the anchor MSE, pooled link ends for ``anchor: frozen``). Those do not change
during training, so they can be computed once per corpus: :func:`build_or_load_teacher_cache` runs the teacher over
every row's ``y_input_ids`` (batched, under ``no_grad``, with a tqdm bar) and writes the token vectors as
safetensors shards (``vectors`` = the rows' tokens concatenated, ``offsets``) into
``<teacher_cache>/<fingerprint[:16]>/``. The fingerprint hashes the teacher's config and weights, the tokenizer, the
layer, the dtype and the anchor-side token ids of the dataset in order, so a changed model or corpus gets a new
folder (it is built, never mixed up with the old one) and ``cache.json`` (written last, holding the full
fingerprint) is checked before use. The folder is written under a temporary name and renamed when complete
(``amber_align.io_utils.replace_directory``): a killed build is never taken for a cache.

:class:`TeacherCacheCollator` wraps the trainer's collator and adds ``teacher_hidden`` ``[B, T, H]`` (the cached
vectors of the batch's anchor rows, padded to the batch width); ``cao_loss_parts`` uses it in place of the teacher
forward. Map-style datasets only (streaming reads a corpus too large to cache; the config refuses the two together).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from amber_align.errors import ConfigError
from amber_align.io_utils import atomic_write_text, replace_directory
from amber_align.logging_utils import get_logger
from amber_align.modeling import select_hidden

__all__ = ["TeacherCache", "TeacherCacheCollator", "build_or_load_teacher_cache", "teacher_fingerprint",
           "ROW_COLUMN"]

logger = get_logger(__name__)

ROW_COLUMN = "teacher_row"
"""Dataset column holding each row's index into the cache (added by the trainer)."""
_FORMAT = 1
_ROWS_PER_SHARD = 4096


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    return tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()


def teacher_fingerprint(teacher: torch.nn.Module, tokenizer: Any, dataset: Any, *, layer: int) -> str:
    """SHA-256 over what the cached vectors depend on: format, layer, teacher config (less the folder it was loaded
    from) + dtype + every weight, the tokenizer (its serialised vocabulary and rules), and the dataset's anchor-side
    token ids in row order."""
    h = hashlib.sha256(f"amber-align teacher cache v{_FORMAT}; layer {layer}\n".encode())
    config = {k: v for k, v in teacher.config.to_dict().items() if k != "_name_or_path"}  # where it was loaded
    h.update(json.dumps(config, sort_keys=True, default=str).encode())  # from does not matter: weights are hashed
    for name, tensor in sorted(teacher.state_dict().items()):
        h.update(f"{name} {tuple(tensor.shape)} {tensor.dtype}\n".encode())
        h.update(_tensor_bytes(tensor))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update((backend.to_str() if backend is not None else repr(getattr(tokenizer, "name_or_path", tokenizer)))
             .encode())
    for batch in dataset.select_columns("y_input_ids").iter(batch_size=10_000):
        ids = batch["y_input_ids"]
        h.update(np.asarray([len(r) for r in ids], dtype=np.int64).tobytes())
        h.update(np.asarray([t for r in ids for t in r], dtype=np.int64).tobytes())
    return h.hexdigest()


class TeacherCache:
    """A complete cache folder: ``rows(indices, width)`` gives the padded ``[B, width, H]`` teacher vectors."""

    def __init__(self, folder: str | Path, fingerprint: str):
        self.folder = Path(folder)
        meta_path = self.folder / "cache.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("fingerprint") != fingerprint:
            raise ConfigError(f"teacher_cache: {str(meta_path)!r} was built for other data or another model "
                              f"(fingerprint {str(meta.get('fingerprint'))[:16]}…, expected {fingerprint[:16]}…)")
        self.num_rows, self.hidden = int(meta["num_rows"]), int(meta["hidden"])
        self.files = [safe_open(str(self.folder / name), framework="pt") for name in meta["shards"]]
        self.offsets = [f.get_tensor("offsets") for f in self.files]
        self.dtype = self.files[0].get_slice("vectors")[0:1].dtype if self.files else torch.float32

    def rows(self, indices: list[int], width: int) -> torch.Tensor:
        """Vectors of dataset rows ``indices``, each padded with zeros to ``width`` tokens."""
        out = torch.zeros((len(indices), width, self.hidden), dtype=self.dtype)
        for r, index in enumerate(indices):
            if not 0 <= index < self.num_rows:
                raise ConfigError(f"teacher_cache: row {index} is not in the cache ({self.num_rows} rows)")
            shard, local = divmod(index, _ROWS_PER_SHARD)
            start, end = int(self.offsets[shard][local]), int(self.offsets[shard][local + 1])
            out[r, : end - start] = self.files[shard].get_slice("vectors")[start:end]
        return out


def build_or_load_teacher_cache(folder: str | Path, teacher: torch.nn.Module, tokenizer: Any, dataset: Any, *,
                                layer: int, batch_size: int = 64, device: torch.device | None = None
                                ) -> TeacherCache:
    """The cache for ``dataset`` under ``folder``: reused when its fingerprint matches, else built (atomically)."""
    fingerprint = teacher_fingerprint(teacher, tokenizer, dataset, layer=layer)
    target = Path(folder) / fingerprint[:16]
    if (target / "cache.json").is_file():
        try:
            cache = TeacherCache(target, fingerprint)
            logger.info(f"teacher_cache: reusing {target} ({cache.num_rows} rows; no teacher forward)")
            return cache
        except (ConfigError, OSError, ValueError, KeyError) as err:
            logger.warning(f"teacher_cache: {target} is unusable ({err}); rebuilding it")
    others = [p.name for p in Path(folder).iterdir() if p.is_dir() and not p.name.startswith(".")] \
        if Path(folder).is_dir() else []
    if others:
        logger.info(f"teacher_cache: no cache for this data and model in {folder} (found {others}, built for "
                    "other data or another model); building a new one")
    staging = Path(folder) / f".incomplete-{fingerprint[:16]}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    device = device or next(teacher.parameters()).device
    shards, vectors, lengths, hidden = [], [], [], 0
    pad = tokenizer.pad_token_id

    def flush() -> None:
        name = f"shard-{len(shards):05d}.safetensors"
        offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.long)
        save_file({"vectors": torch.cat(vectors).contiguous(), "offsets": offsets}, str(staging / name))
        shards.append(name)
        vectors.clear()
        lengths.clear()

    teacher.eval()
    with torch.no_grad(), tqdm(total=len(dataset), desc="teacher cache", unit="pair") as bar:
        for batch in dataset.select_columns("y_input_ids").iter(batch_size=batch_size):
            ids = batch["y_input_ids"]
            width = max(len(r) for r in ids)
            input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
            mask = torch.zeros((len(ids), width), dtype=torch.long)
            for r, row in enumerate(ids):
                input_ids[r, : len(row)] = torch.as_tensor(row)
                mask[r, : len(row)] = 1
            out = teacher(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                          output_hidden_states=layer != -1)
            states = select_hidden(out, layer).cpu()
            hidden = states.shape[-1]
            for r, row in enumerate(ids):
                vectors.append(states[r, : len(row)])
                lengths.append(len(row))
                if len(lengths) == _ROWS_PER_SHARD:
                    flush()
            bar.update(len(ids))
    if lengths:
        flush()
    atomic_write_text(staging / "cache.json", json.dumps(
        {"fingerprint": fingerprint, "num_rows": len(dataset), "hidden": hidden, "shards": shards,
         "layer": layer, "format": _FORMAT}, indent=1))
    replace_directory(staging, target)
    logger.info(f"teacher_cache: wrote {len(dataset)} rows of teacher vectors to {target}")
    return TeacherCache(target, fingerprint)


class TeacherCacheCollator:
    """``collator(features)`` plus ``teacher_hidden``: the cached teacher vectors of the anchor rows."""

    def __init__(self, collator: Any, cache: TeacherCache):
        self.collator, self.cache = collator, cache

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        out = self.collator(features)
        if features and ROW_COLUMN in features[0]:  # eval rows are not cached: the live teacher runs for them
            width = out["input_ids"].shape[1]
            out["teacher_hidden"] = self.cache.rows([int(f[ROW_COLUMN]) for f in features], width)
        return out
