r"""Gzipped CSV files as OGB's raw layout stores them, written fast:
numbers are formatted as CSV bytes with vectorised NumPy, not row by row."""
import gzip

import numpy as np


def format_int_rows(values: np.ndarray) -> bytes:
    r"""Formats a ``[R, C]`` array of non-negative integers as CSV lines
    (no header), vectorised: digits are built as a byte matrix, leading zeros
    are masked out."""
    values = np.asarray(values, dtype=np.int64)
    if values.ndim == 1:
        values = values[:, None]
    if values.size == 0:
        return b''
    if values.min() < 0:
        raise ValueError('format_int_rows expects non-negative integers')
    r, c = values.shape
    vmax = int(values.max())
    d = max(1, len(str(vmax)))
    dtype = np.int32 if vmax < 2**31 else np.int64
    values = values.astype(dtype, copy=False)
    pw = 10**np.arange(d - 1, -1, -1, dtype=dtype)
    buf = np.empty((r, c, d + 1), dtype=np.uint8)
    buf[..., :d] = (values[..., None] // pw) % 10 + 48  # Digits as bytes.
    buf[..., d] = ord(',')
    buf[:, -1, d] = ord('\n')
    ndigits = np.maximum((values[..., None] >= pw).sum(-1), 1)
    keep = np.ones((r, c, d + 1), dtype=bool)
    keep[..., :d] = np.arange(d) >= (d - ndigits)[..., None]
    return buf[keep].tobytes()


def format_float_rows(values: np.ndarray, decimals: int = 4) -> bytes:
    r"""Formats a ``[R, C]`` array with :math:`|x| < 10` as fixed-point CSV
    lines such as ``-0.0123,0.4500`` (no header), vectorised."""
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    if values.size == 0:
        return b''
    q = np.rint(values.astype(np.float64) * 10**decimals).astype(np.int64)
    if np.abs(q).max() >= 10**(decimals + 1):
        raise ValueError('format_float_rows expects |x| < 10')
    r, c = values.shape
    a = np.abs(q).astype(np.int32)  # |q| < 10**9.
    pw = 10**np.arange(decimals, -1, -1, dtype=np.int32)  # Int digit first.
    w = decimals + 4  # Sign, integer digit, point, decimals, separator.
    buf = np.empty((r, c, w), dtype=np.uint8)
    buf[..., 0] = ord('-')
    digits = (a[..., None] // pw) % 10 + 48
    buf[..., 1] = digits[..., 0]
    buf[..., 2] = ord('.')
    buf[..., 3:w - 1] = digits[..., 1:]
    buf[..., w - 1] = ord(',')
    buf[:, -1, w - 1] = ord('\n')
    keep = np.ones((r, c, w), dtype=bool)
    keep[..., 0] = q < 0
    return buf[keep].tobytes()


def open_gzip(path: str, level: int) -> gzip.GzipFile:
    r"""A gzip file for writing at :obj:`level`, byte-for-byte
    reproducible (``mtime=0``)."""
    return gzip.GzipFile(path, 'wb', compresslevel=level, mtime=0)


def write_int_column(path: str, values: np.ndarray, level: int) -> None:
    r"""Writes integer rows to the gzipped CSV file :obj:`path`."""
    with open_gzip(path, level) as f:
        for j in range(0, max(values.shape[0], 1), 1 << 18):
            f.write(format_int_rows(values[j:j + (1 << 18)]))
