"""Issue 16, item 14: a Chinese shop's own exports load.

Excel on a Chinese system saves CSV in GBK/GB18030, and its "Unicode text" in UTF-16 (tab
separated, with a byte order mark). Such files were refused with a hint to pass latin-1, which
turns every Chinese character into garbage; ``--encoding gbk`` failed inside DuckDB's reader.
Amounts written as ``￥1,234.50`` were "not a number".
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from churnguard.config import IngestConfig
from churnguard.ingest import IngestError, ingest_files
from churnguard.store import Store

from security.conftest import store_rows

ROWS = [("张三", "2024-01-01", "order", "￥1,234.50", "很好的商品，下次还会再来"),
        ("李四", "2024-01-02", "review", "￥12", "质量不错，物流很快")]
EXPECTED = [("张三", "order", 1234.5, "很好的商品，下次还会再来"),
            ("李四", "review", 12.0, "质量不错，物流很快")]


def export(path: Path, encoding: str, sep: str = ",") -> Path:
    lines = [sep.join(("user_id", "ts", "type", "amount", "text"))]
    for row in ROWS:
        lines.append(sep.join(f'"{v}"' if sep in v else v for v in row))
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def stored(store: Store) -> list[tuple]:
    return store.con.execute("SELECT user_id, type, amount, text FROM events ORDER BY ts").fetchall()


@pytest.mark.parametrize("encoding", ["gbk", "gb18030"])
def test_a_chinese_excel_csv_is_detected_and_read(store: Store, tmp_path: Path,
                                                  encoding: str) -> None:
    path = export(tmp_path / "orders.csv", encoding)
    report = ingest_files(store, kind="events", files=[path])
    assert stored(store) == EXPECTED
    assert f"{path}: read as GB18030 text" in report.notes


@pytest.mark.parametrize("named", ["gbk", "GB18030", "cp936"])
def test_a_named_chinese_encoding_is_read(store: Store, tmp_path: Path, named: str) -> None:
    path = export(tmp_path / "orders.csv.gz", "gbk")
    import gzip

    path.write_bytes(gzip.compress(path.read_bytes()))
    ingest_files(store, kind="events", files=[path], encoding=named)
    assert stored(store) == EXPECTED


def test_excel_unicode_text_is_read(store: Store, tmp_path: Path) -> None:
    """Excel's "Unicode text": UTF-16 little-endian with a byte order mark, tab separated."""
    path = export(tmp_path / "orders.txt", "utf-16", sep="\t")
    assert path.read_bytes()[:2] == b"\xff\xfe"
    ingest_files(store, kind="events", files=[path], fmt="csv")
    assert stored(store) == EXPECTED
    store.con.execute("DELETE FROM events")
    ingest_files(store, kind="events", files=[path], fmt="csv", encoding="utf-16")
    assert stored(store) == EXPECTED


def test_a_bad_byte_in_a_named_encoding_names_its_line(store: Store, tmp_path: Path) -> None:
    path = export(tmp_path / "orders.csv", "gbk")
    path.write_bytes(path.read_bytes() + b"u3,2024-01-03,order,1,\xff\xff\r\n")
    before = store_rows(store)
    with pytest.raises(IngestError) as info:
        ingest_files(store, kind="events", files=[path], encoding="gbk")
    assert store_rows(store) == before
    assert str(info.value).startswith(f"{path}: line 4 is not valid GBK text")
    assert info.value.problems[0].line == 4


def test_the_hint_shows_how_each_suggested_encoding_reads_the_line(
        store: Store, tmp_path: Path) -> None:
    """Never a blind suggestion: Big5 (Taiwan, Hong Kong) is not detected as GB18030, and the
    message shows the line as each encoding that decodes it would read it."""
    path = tmp_path / "big5.csv"
    path.write_bytes("user_id,ts,type,text\nu1,2024-01-01,review,謝謝你的幫助\n".encode("big5"))
    with pytest.raises(IngestError) as info:
        ingest_files(store, kind="events", files=[path])
    message = str(info.value)
    assert "line 2 is not valid UTF-8 text" in message
    for name in ("latin-1", "gb18030"):
        assert f"encoding='{name}' (--encoding {name}) reads it as 'u1,2024-01-01,review," in message
    ingest_files(store, kind="events", files=[path], encoding="big5")
    assert store.con.execute("SELECT text FROM events").fetchone() == ("謝謝你的幫助",)


def test_latin1_text_is_not_mistaken_for_chinese(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "fr.csv"
    path.write_bytes("user_id,ts,type,text\nu1,2024-01-01,review,très bien, Müller\n"
                     .replace("très bien, Müller", '"très bien, Müller"').encode("latin-1"))
    with pytest.raises(IngestError, match="not valid UTF-8"):
        ingest_files(store, kind="events", files=[path])


def test_transcoding_streams_the_file(tmp_path: Path) -> None:
    """A 24 MB GBK file is converted holding a few MiB at most, never the whole file."""
    from churnguard.ingest.encodings import transcode

    path = tmp_path / "big.csv"
    line = "张三,2024-01-01,review,很好的商品，下次还会再来\n".encode("gbk")
    with path.open("wb") as fh:
        fh.write(b"user_id,ts,type,text\n")
        for _ in range(60):
            fh.write(line * 10_000)
    tracemalloc.start()
    try:
        copy = transcode(path, "gbk", "big.csv")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert path.stat().st_size > 20_000_000
    assert peak < 8_000_000
    with copy.path.open(encoding="utf-8") as fh:
        assert sum(1 for _ in fh) == 600_001
    import shutil

    shutil.rmtree(copy.folder)


def test_multibyte_characters_split_across_chunks(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from churnguard.ingest import encodings

    monkeypatch.setattr(encodings, "_CHUNK", 7)  # odd: cuts characters in half
    path = export(tmp_path / "orders.csv", "gb18030")
    copy = encodings.transcode(path, "gb18030", "orders.csv")
    assert copy.path.read_bytes().decode("utf-8") == path.read_bytes().decode("gb18030")


@pytest.mark.parametrize(("written", "value"), [
    ("￥1,234.50", 1234.5), ("¥1,234.50", 1234.5), ("$1,234", 1234.0), ("-$12.50", -12.5),
    ("1,234,567.8", 1234567.8), ("1 234.5", 1234.5), ("12.50元", 12.5), ("RMB 99", 99.0),
    ("€ 7", 7.0),
])
def test_currency_signs_and_thousands_separators_are_read(
        store: Store, tmp_path: Path, written: str, value: float) -> None:
    path = tmp_path / "e.csv"
    path.write_text(f'user_id,ts,type,amount\nu1,2024-01-01,return,"{written}"\n', encoding="utf-8")
    ingest_files(store, kind="events", files=[path])
    assert store.con.execute("SELECT amount FROM events").fetchone() == (value,)


@pytest.mark.parametrize("written", ["1,5", "12,34.5", "1.234,50", "￥", "1,234.50 USD EUR"])
def test_ambiguous_numbers_stay_bad(store: Store, tmp_path: Path, written: str) -> None:
    path = tmp_path / "e.csv"
    path.write_text(f'user_id,ts,type,amount\nu1,2024-01-01,order,"{written}"\n', encoding="utf-8")
    with pytest.raises(IngestError, match="is not a number"):
        ingest_files(store, kind="events", files=[path])


@pytest.mark.parametrize(("written", "value"), [
    ("1.234,50 €", 1234.5), ("1 234,50", 1234.5), ("12,5", 12.5), ("7", 7.0), ("-3,25", -3.25)])
def test_a_decimal_comma_is_read_when_the_project_says_so(
        store: Store, tmp_path: Path, written: str, value: float) -> None:
    path = tmp_path / "items.csv"
    path.write_text(f'item_id,price\ni1,"{written}"\n', encoding="utf-8")
    if value < 0:
        with pytest.raises(IngestError, match="is negative"):
            ingest_files(store, kind="items", files=[path],
                         config=IngestConfig(decimal_comma=True))
        return
    ingest_files(store, kind="items", files=[path], config=IngestConfig(decimal_comma=True))
    assert store.con.execute("SELECT price FROM items").fetchone() == (value,)


def test_with_a_decimal_comma_a_decimal_point_is_bad(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text('item_id,price\ni1,3.5\n', encoding="utf-8")
    with pytest.raises(IngestError, match="is not a number"):
        ingest_files(store, kind="items", files=[path], config=IngestConfig(decimal_comma=True))
