"""The inputs of ``benchmarks/gpu_suite.py``, prepared here and read on a GPU machine that has no data, no network
and no ``datasets`` library (only torch, transformers, accelerate, peft, safetensors).

    bash benchmarks/gpu_suite.sh --prepare                       # -> benchmarks/gpu_inputs/ (git-ignored)
    bash benchmarks/gpu_suite.sh --prepare --smoke --inputs DIR  # a few pairs, for the CI smoke run

The folder holds, per vocabulary (``mbert``: the 119,547-piece mBERT WordPiece; ``xlmr``: the 250,002-piece XLM-R
Unigram):

- ``tokenizer/``: the tokenizer saved with ``save_pretrained`` (read back with ``AutoTokenizer``; the tracked
  fixtures in ``tests/fixtures`` rebuild it where that fails);
- ``pairs.json.gz``: newstest2014 de-en pairs word-aligned by eflomal and encoded by the package's own pipeline
  (``train_throughput.load_pairs`` → ``build_alignment_datasets``), only the columns the trainers' collators read;

and ``extraction_pairs.json.gz`` (word-tokenized de-en pairs for the extraction table, as
``extraction_throughput.load_pairs`` reads them) and ``manifest.json`` (sources, counts, shapes, versions). Encoding
here is what lets the GPU run skip ``datasets``: the trainers take already-encoded pairs as they are
(``amber_align.data.prepare.is_encoded``) and :class:`EncodedPairs` gives them the few ``datasets.Dataset``
methods they use (``column_names``, column and row access, ``select``).
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import logging
import os
import platform
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

__all__ = ["DEFAULT_FOLDER", "EncodedPairs", "KEPT_COLUMNS", "folder_size", "load_encoded", "load_extraction_pairs",
           "load_manifest", "load_saved_tokenizer", "main", "prepare"]

DEFAULT_FOLDER = REPO / "benchmarks" / "gpu_inputs"
#: what AmberCollator / PairCollator read of an encoded pair (the rest of build_alignment_datasets' columns is text)
KEPT_COLUMNS = ("pair", "x_input_ids", "y_input_ids", "x_word_spans", "y_word_spans", "x_link_spans", "y_link_spans",
                "num_links")
KINDS = ("mbert", "xlmr")
MANIFEST = "manifest.json"


class EncodedPairs:
    """Encoded pairs held as columns of Python lists, with the part of the ``datasets.Dataset`` interface that the
    alignment trainers use on map-style data: ``column_names``, ``len``, ``ds[i]`` (a row dict), ``ds["col"]`` (a
    column) and ``select(indices)``. A torch ``DataLoader`` batches it like any map-style dataset."""

    def __init__(self, columns: dict[str, list[Any]]):
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"EncodedPairs: columns of different lengths {sorted(lengths)}")
        self._columns = columns
        self._n = lengths.pop() if lengths else 0

    @property
    def column_names(self) -> list[str]:
        return list(self._columns)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._columns[key]
        return {name: values[key] for name, values in self._columns.items()}

    def select(self, indices: Any) -> EncodedPairs:
        indices = list(indices)
        return EncodedPairs({name: [values[i] for i in indices] for name, values in self._columns.items()})


def _write_json_gz(path: Path, value: Any) -> None:
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as f:
        json.dump(value, f, ensure_ascii=False, separators=(",", ":"))


def _read_json_gz(path: Path) -> Any:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def folder_size(folder: Path) -> int:
    """Bytes of every file under ``folder`` (what the device tool's ``carry`` sends)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def prepare(folder: Path, shared: Path, *, pairs: int, extraction_pairs: int) -> dict[str, Any]:
    """Write the suite's inputs to ``folder`` (replaced) and return the manifest. Needs ``datasets`` (and eflomal
    for newstest2014's links; without it the bundled demo pairs and their shipped links are used, and said)."""
    import torch
    import transformers

    import extraction_throughput
    import train_throughput

    folder.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = dict(
        created=str(datetime.date.today()), torch=torch.__version__, transformers=transformers.__version__,
        python=platform.python_version(), shared=str(shared),
        shapes={name: dict(kind=kind, **shape) for name, (kind, shape) in train_throughput.SHAPES.items()}, kinds={})
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KINDS:
            tokenizer = train_throughput.load_tokenizer(kind)
            data, label = train_throughput.load_pairs(shared, tokenizer, pairs, Path(tmp))  # one eflomal cache
            (folder / kind).mkdir(exist_ok=True)
            tokenizer.save_pretrained(str(folder / kind / "tokenizer"))
            _write_json_gz(folder / kind / "pairs.json.gz", {c: list(data[c]) for c in KEPT_COLUMNS})
            manifest["kinds"][kind] = dict(source=label, pairs=len(data), vocab=len(tokenizer),
                                           tokenizer_class=type(tokenizer).__name__)
    word_pairs = extraction_throughput.load_pairs(shared, extraction_pairs)
    _write_json_gz(folder / "extraction_pairs.json.gz", [[s, t] for s, t in word_pairs])
    manifest["extraction_pairs"] = len(word_pairs)
    manifest["bytes"] = folder_size(folder)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def load_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it is not a prepared inputs folder."""
    path = folder / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_saved_tokenizer(folder: Path, kind: str) -> tuple[Any, str]:
    """(tokenizer, how it was read): the saved copy through ``AutoTokenizer``, else rebuilt from the tracked
    fixtures by the package's own builders (a transformers version that reads the saved files differently)."""
    from transformers import AutoTokenizer

    import train_throughput

    try:
        return AutoTokenizer.from_pretrained(str(folder / kind / "tokenizer")), "saved tokenizer"
    except Exception as err:  # noqa: BLE001 - any failure: rebuild from the fixtures, and say so
        logging.warning(f"{folder / kind / 'tokenizer'}: {type(err).__name__}: {err}; rebuilt from tests/fixtures")
        return train_throughput.load_tokenizer(kind), "rebuilt from tests/fixtures"


def load_encoded(folder: Path, kind: str, n: int | None = None) -> EncodedPairs:
    """The encoded pairs of vocabulary ``kind`` (the first ``n``)."""
    columns = _read_json_gz(folder / kind / "pairs.json.gz")
    return EncodedPairs({c: v[:n] if n else v for c, v in columns.items()})


def load_extraction_pairs(folder: Path, n: int | None = None) -> list[tuple[list[str], list[str]]]:
    """Word-tokenized de-en pairs for the extraction table (the first ``n``)."""
    pairs = [(s, t) for s, t in _read_json_gz(folder / "extraction_pairs.json.gz")]
    return pairs[:n] if n else pairs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gpu_suite.sh --prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", default=str(DEFAULT_FOLDER), help="folder to write (default %(default)s)")
    parser.add_argument("--shared", default=os.environ.get("AMBER_ALIGN_SHARED_DATA", str(REPO.parent / "shared" /
                                                                                         "data")))
    parser.add_argument("--pairs", type=int, default=None, help="encoded pairs per vocabulary (default 3000)")
    parser.add_argument("--extraction_pairs", type=int, default=None, help="word pairs (default 2000)")
    parser.add_argument("--smoke", action="store_true", help="a few pairs (24), for the CI smoke run")
    opts = parser.parse_args(argv)
    pairs = opts.pairs or (24 if opts.smoke else 3000)
    extraction = opts.extraction_pairs or (24 if opts.smoke else 2000)
    if min(pairs, extraction) < 1:
        parser.error("--pairs and --extraction_pairs must be >= 1")
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore")
    folder = Path(opts.inputs)
    manifest = prepare(folder, Path(opts.shared), pairs=pairs, extraction_pairs=extraction)
    for kind, info in manifest["kinds"].items():
        print(f"{kind}: {info['pairs']} {info['source']}, vocabulary {info['vocab']}")
    print(f"extraction: {manifest['extraction_pairs']} word-tokenized pairs")
    print(f"{folder}: {manifest['bytes'] / 2**20:.1f} MiB (the device tool carries at most 64 MiB)")


if __name__ == "__main__":
    main()
