"""Text encodings of CSV files: what DuckDB's reader cannot decode (GBK/GB18030 from Excel on a
Chinese system, UTF-16 from Excel's "Unicode text", any other named codec) is transcoded to a
temporary UTF-8 file in a stream, 1 MiB at a time, so a file of any size never sits in memory.

Detection is cautious, because a wrong guess garbles every character silently:

* a UTF-16 byte order mark at the start means UTF-16;
* a file that is not UTF-8 is read as GB18030 only when it decodes as GB18030 throughout its first
  4 MiB and nearly all of its non-ASCII characters are in GB2312's two-byte zone (both bytes
  0xA1..0xFE), where simplified Chinese text lies. Latin-1 text (an accented letter followed by
  ASCII) and Big5 (half its trail bytes below 0x80) both fail that test;
* otherwise the error names the line and shows how it would read in each encoding that decodes
  it, so the user sees the text before choosing; nothing is suggested blind.

>>> _gb2312_share("价格 199 元".encode("gb18030")), _gb2312_share("très bien".encode("latin-1"))
(1.0, 0.0)
"""

from __future__ import annotations

import codecs
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from churnguard.ingest.results import IngestError, Problem

# Encodings DuckDB's CSV reader decodes itself; any other is transcoded first.
NATIVE = ("utf-8", "latin-1")
_CHUNK = 1 << 20
_SAMPLE = 4 << 20
_GB2312_SHARE = 0.9
_BOMS = {codecs.BOM_UTF16_LE: "utf-16", codecs.BOM_UTF16_BE: "utf-16"}


@dataclass(frozen=True)
class Transcoded:
    """A temporary UTF-8 copy of a file (delete ``folder`` when done) and what was read."""

    path: Path
    folder: Path
    encoding: str


def open_binary(path: Path):  # noqa: ANN201 - a binary file object
    """The file's bytes, decompressed when it is gzip'd."""
    import gzip

    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")  # noqa: SIM115


def read_head(path: Path, size: int, display: str) -> bytes:
    """The first ``size`` bytes of the (decompressed) file; a broken gzip file is bad input."""
    try:
        with open_binary(path) as fh:
            return fh.read(size)
    except (OSError, EOFError) as exc:
        raise _unreadable(display, exc) from exc


def _unreadable(display: str, exc: BaseException) -> IngestError:
    reason = f"cannot read it (a truncated or corrupt compressed file?): {exc}"
    return IngestError(f"{display}: {reason}", [Problem(display, None, None, reason)])


def bom_encoding(path: Path, display: str) -> str | None:
    """The encoding a byte order mark at the start names (UTF-16 only; DuckDB reads UTF-8's)."""
    return _BOMS.get(read_head(path, 2, display))


def _gb2312_share(data: bytes) -> float:
    """Share of the non-ASCII characters of GB18030 ``data`` in GB2312's two-byte zone (0.0 when
    it does not decode, or holds no such characters)."""
    try:
        text = codecs.getincrementaldecoder("gb18030")("strict").decode(data, final=False)
    except UnicodeDecodeError:
        return 0.0
    counts = Counter(ch for ch in text if ord(ch) > 0x7F)
    total = sum(counts.values())
    if not total:
        return 0.0
    inside = 0
    for ch, n in counts.items():
        raw = ch.encode("gb18030")
        if len(raw) == 2 and raw[0] >= 0xA1 and raw[1] >= 0xA1:
            inside += n
    return inside / total


def looks_gb18030(path: Path, display: str) -> bool:
    """Whether the file's first 4 MiB are not UTF-8 but, beyond reasonable doubt, Chinese text
    in GB18030 (a file whose sample is UTF-8 is read as UTF-8). zstd files are not looked into
    (they can only be read as UTF-8 or latin-1)."""
    if path.name.lower().endswith(".zst"):
        return False
    sample = read_head(path, _SAMPLE, display)
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(sample, final=False)
        return False
    except UnicodeDecodeError:
        return _gb2312_share(sample) >= _GB2312_SHARE


def transcode(path: Path, encoding: str, display: str) -> Transcoded:
    """Decode ``path`` from ``encoding`` and write it as UTF-8 to a temporary file, in a stream.

    A byte that does not decode is an :class:`IngestError` naming its line.
    """
    if path.name.lower().endswith(".zst"):
        raise IngestError(f"{display}: a zstd-compressed file can only be read as UTF-8 or "
                          f"latin-1; decompress it first to read it as {encoding}")
    folder = Path(tempfile.mkdtemp(prefix="churnguard-transcode-"))
    target = folder / (path.name.removesuffix(".gz") or "input.csv")
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    lines = 0
    try:
        with open_binary(path) as src, open(target, "w", encoding="utf-8", newline="") as out:
            while True:
                chunk = src.read(_CHUNK)
                try:
                    text = decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as err:
                    good = codecs.decode(chunk[: err.start], encoding, "ignore") if err.start else ""
                    line = lines + good.count("\n") + 1
                    reason = f"not valid {encoding} text"
                    raise IngestError(
                        f"{display}: line {line} is not valid {encoding.upper()} text; was the file "
                        "saved in another encoding? Pass that one with --encoding",
                        [Problem(display, None, None, reason, line)]) from err
                lines += text.count("\n")
                out.write(text)
                if not chunk:
                    break
    except (OSError, EOFError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise _unreadable(display, exc) from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Transcoded(path=target, folder=folder, encoding=encoding)


def decoded_previews(raw: bytes) -> list[tuple[str, str]]:
    """How an undecodable line reads in the encodings that decode it: (encoding, text), most
    likely first. Latin-1 decodes any byte, so it comes with its text for the user to judge;
    where the line holds bytes 0x80..0x9F, Windows-1252 (Excel's Western encoding) replaces it.

    >>> decoded_previews("très".encode("latin-1"))
    [('latin-1', 'très'), ('gb18030', 'tr鑣')]
    """
    previews = []
    western = "cp1252" if any(0x80 <= b <= 0x9F for b in raw) else "latin-1"
    for encoding in (western, "gb18030"):
        try:
            previews.append((encoding, raw.decode(encoding)))
        except UnicodeDecodeError:
            continue
    return previews
