"""Source adapters against small hand-written files: the mapping onto the contract, the rows set
aside with their reasons, and that no raw customer id survives ingestion."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from contracts.pseudonyms import Pseudonymiser
from contracts.tables import columns
from pipelines.data.sources import get_source
from pipelines.data.sources.base import Conformed, Source, UnreadableBatch, UsageError
from pipelines.data.sources.csv_mapped import MappedCsvSource
from pipelines.data.sources.csv_mapping import CsvMapping
from pipelines.data.sources.movielens import DEFAULT_GENRES, WINDOW, MovieLensSource
from pipelines.data.sources.online_retail import OnlineRetailSource, categorise
from tests.conftest import REPO

PS = Pseudonymiser("test-key")
UTC = "UTC"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def ingest(source: Source, path: Path) -> tuple[pd.DataFrame, Conformed]:
    """Discover the single batch at ``path``, read and conform it, checking the row accounting."""
    (batch,) = source.discover([path])
    raw = source.read_raw(batch)
    conformed = source.conform(raw, batch, PS)
    assert len(raw) == len(conformed.tables[conformed.primary]) + len(conformed.rejected)
    return raw, conformed


def cells(conformed: Conformed) -> set[str]:
    """Every value in every output table and the rejected rows, as text."""
    frames = [*conformed.tables.values(), conformed.rejected]
    return {str(v) for frame in frames for col in frame.columns for v in frame[col].tolist()}


def assert_no_raw_ids(conformed: Conformed, raw_ids: list[str]) -> None:
    leaked = [raw for raw in raw_ids for cell in cells(conformed) if raw in cell]
    assert not leaked, f"raw customer ids in output: {sorted(set(leaked))}"


# --- Online Retail ------------------------------------------------------------------------

RETAIL_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
RETAIL_ROWS = {  # line number -> (row, expected reason or None when accepted)
    2: ("536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,"
        "17850.0,United Kingdom", None),
    3: ("536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",
        None),
    4: ("536366, 85123a ,WHITE HANGING HEART T-LIGHT HOLDER ,2,2010-12-01 09:00:00,2.95,"
        "17850.0,France", None),
    5: ("C536367,85123A,WHITE HANGING HEART T-LIGHT HOLDER,-3,2010-12-01 10:00:00,9.99,"
        "13047.0,United Kingdom", None),
    6: ("536368,22423,REGENCY CAKESTAND 3 TIER,1,2010-12-01 11:00:00,12.75,,United Kingdom",
        "missing_customer_id"),
    7: ("536369,POST,POSTAGE,3,2010-12-01 11:00:00,18.0,12583.0,France",
        "non_product_stock_code"),
    8: ("536370,M,Manual,1,2010-12-01 11:00:00,0.0,12583.0,France", "non_product_stock_code"),
    9: ("536371,22086,PAPER CHAIN KIT 50'S CHRISTMAS,4,2010-12-01 11:00:00,0.0,12583.0,France",
        "non_positive_price"),
    10: ("536372,22086,PAPER CHAIN KIT,0,2010-12-01 11:00:00,2.55,12583.0,France",
         "non_positive_quantity"),
    11: ("536373,22086,PAPER CHAIN KIT,-2,2010-12-01 11:00:00,2.55,12583.0,France",
         "non_positive_quantity"),
    12: ("536374,22086,PAPER CHAIN KIT,two,2010-12-01 11:00:00,2.55,12583.0,France",
         "unparseable_quantity"),
    13: ("536375,22086,PAPER CHAIN KIT,1.5,2010-12-01 11:00:00,2.55,12583.0,France",
         "unparseable_quantity"),
    14: ("536376,22086,PAPER CHAIN KIT,2,2010-12-01 11:00:00,abc,12583.0,France",
         "unparseable_price"),
    15: ("536377,22086,PAPER CHAIN KIT,2,01/12/2010 11h,2.55,12583.0,France",
         "unparseable_invoice_date"),
    16: (",22086,PAPER CHAIN KIT,2,2010-12-01 11:00:00,2.55,12583.0,France",
         "missing_invoice_no"),
    17: ("536378,,PAPER CHAIN KIT,2,2010-12-01 11:00:00,2.55,12583.0,France",
         "missing_stock_code"),
    18: ("536379,21731,RED TOADSTOOL LED NIGHT LIGHT,1,2010-12-01 12:00:00,1.65,13047.0,"
         "United Kingdom", None),
    19: ("536380,22086,PAPER CHAIN KIT,-1,2010-12-01 11:00:00,0,,France",
         "missing_customer_id"),  # several problems: the first in order wins
}
RETAIL_RAW_IDS = ["17850", "13047", "12583"]


@pytest.fixture
def retail_file(tmp_path: Path) -> Path:
    path = tmp_path / "by-day" / "2010-12-01.csv"
    path.parent.mkdir()
    lines = [RETAIL_HEADER] + [RETAIL_ROWS[n][0] for n in sorted(RETAIL_ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_online_retail_discover_sorts_by_date_and_sets_windows(tmp_path: Path) -> None:
    for name in ("2011-01-04.csv", "2010-12-01.csv", "notes.txt", "full-export.csv"):
        (tmp_path / name).write_text(RETAIL_HEADER + "\n")
    batches = OnlineRetailSource().discover([tmp_path])
    assert [b.name for b in batches] == ["full-export", "2010-12-01", "2011-01-04"]
    assert batches[0].window is None and batches[0].batch_date is None
    assert batches[1].batch_date == dt.date(2010, 12, 1)
    assert batches[1].window == (ts("2010-12-01"), ts("2010-12-02"))
    with pytest.raises(UsageError, match="no such file"):
        OnlineRetailSource().discover([tmp_path / "missing"])


def test_online_retail_every_rejection_reason(retail_file: Path) -> None:
    raw, conformed = ingest(OnlineRetailSource(), retail_file)
    expected = {n: reason for n, (_, reason) in RETAIL_ROWS.items() if reason}
    got = dict(zip(conformed.rejected["_line"], conformed.rejected["reason"], strict=True))
    assert got == expected
    assert conformed.primary == "events"
    accepted = sorted(n for n, (_, reason) in RETAIL_ROWS.items() if reason is None)
    assert conformed.tables["events"]["event_id"].tolist() == [
        "536365:85123A", "536365:71053", "536366:85123A", "C536367:85123A", "536379:21731",
    ], "ids from the line's content, not its place in the file"
    assert len(accepted) == len(conformed.tables["events"])
    # Rejected rows keep the raw columns for triage.
    assert {"InvoiceNo", "StockCode", "Quantity", "UnitPrice"} <= set(conformed.rejected.columns)
    post = conformed.rejected.set_index("_line").loc[7]
    assert post["StockCode"] == "POST" and post["Quantity"] == "3"


def test_online_retail_events_follow_the_contract(retail_file: Path) -> None:
    _, conformed = ingest(OnlineRetailSource(), retail_file)
    events = conformed.tables["events"]
    assert list(events.columns) == columns("events")
    assert str(events["quantity"].dtype) == "Int64"
    assert str(events["timestamp"].dtype) == "datetime64[ns, UTC]"
    first = events.iloc[0]
    assert first["user_id"] == PS.one("17850")  # the trailing ".0" is not part of the id
    assert first["item_id"] == "85123A" and first["event_type"] == "purchase"
    assert first["quantity"] == 6 and first["unit_price"] == pytest.approx(2.55)
    assert first["timestamp"] == ts("2010-12-01 08:26:00") and first["order_id"] == "536365"
    assert events.iloc[2]["item_id"] == "85123A"  # " 85123a " normalised
    assert pd.isna(first["rating"])


def test_online_retail_cancellation_is_a_return_with_positive_quantity(retail_file: Path) -> None:
    _, conformed = ingest(OnlineRetailSource(), retail_file)
    events = conformed.tables["events"].set_index("event_id")
    ret = events.loc["C536367:85123A"]
    assert ret["event_type"] == "return"
    assert ret["quantity"] == 3
    assert ret["user_id"] == PS.one("13047") and ret["order_id"] == "C536367"
    assert (events["quantity"] > 0).all()
    assert set(events["event_type"]) == {"purchase", "return"}


def test_online_retail_derives_items_and_users(retail_file: Path) -> None:
    _, conformed = ingest(OnlineRetailSource(), retail_file)
    items = conformed.tables["items"].set_index("item_id")
    assert list(conformed.tables["items"].columns) == columns("items")
    # Only accepted lines make the catalogue, so every event's item is in it.
    assert sorted(items.index) == ["21731", "71053", "85123A"]
    heart = items.loc["85123A"]
    assert heart["title"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert heart["category"] == "lighting"
    # Median over purchases (2.55, 2.95); the return's 9.99 does not count.
    assert heart["price"] == pytest.approx(2.75)
    assert heart["first_seen"] == ts("2010-12-01 08:26:00")
    assert pd.isna(heart["brand"])
    assert items.loc["71053", "category"] == "lighting"
    users = conformed.tables["users"].set_index("user_id")
    assert sorted(users.index) == sorted([PS.one("17850"), PS.one("13047")])
    # Two lines from the UK, one from France: the most frequent wins.
    assert users.loc[PS.one("17850"), "country"] == "United Kingdom"


def test_online_retail_price_falls_back_to_all_lines_and_country_ties(tmp_path: Path) -> None:
    path = tmp_path / "2010-12-02.csv"
    path.write_text(
        RETAIL_HEADER + "\n"
        "C1,22086,PAPER CHAIN KIT,-1,2010-12-02 10:00:00,2.00,1.0,Unspecified\n"
        "C2,22086,paper chain kit,-1,2010-12-02 09:00:00,4.00,2.0,Germany\n"
        "C3,22086,paper chain kit,-1,2010-12-02 11:00:00,4.00,2.0,France\n"
    )
    _, conformed = ingest(OnlineRetailSource(), path)
    item = conformed.tables["items"].iloc[0]
    assert item["price"] == pytest.approx(4.0)  # no purchase: median of all lines
    assert item["title"] == "paper chain kit"  # 2 of 3 lines; case differences are kept
    assert item["category"] == "stationery"
    assert item["first_seen"] == ts("2010-12-02 09:00:00")
    users = conformed.tables["users"].set_index("user_id")["country"]
    assert pd.isna(users[PS.one("1")])  # "Unspecified" is not a country
    assert users[PS.one("2")] == "France"  # a tie goes to the alphabetically first


def test_online_retail_never_outputs_raw_customer_ids(retail_file: Path) -> None:
    _, conformed = ingest(OnlineRetailSource(), retail_file)
    assert_no_raw_ids(conformed, RETAIL_RAW_IDS)
    rejected = conformed.rejected.set_index("_line")
    assert rejected.loc[7, "CustomerID"] == PS.one("12583")
    assert pd.isna(rejected.loc[6, "CustomerID"])


def test_online_retail_missing_column_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "2010-12-01.csv"
    path.write_text("InvoiceNo,StockCode\n536365,85123A\n")
    (batch,) = OnlineRetailSource().discover([path])
    with pytest.raises(UnreadableBatch, match="missing required columns .*CustomerID"):
        OnlineRetailSource().read_raw(batch)


@pytest.mark.parametrize(
    ("title", "category"),
    [
        ("CREAM CUPID HEARTS COAT HANGER", "home-decor"),  # "cup" must not match "CUPID"
        ("SET OF 6 T-LIGHTS EASTER CHICKS", "lighting"),
        ("CHRISTMAS GINGHAM HEART CARD", "christmas"),
        ("JUMBO BAG RED RETROSPOT", "bags"),
        ("ROSES REGENCY TEACUP AND SAUCER", "kitchen"),
        ("PACK OF 12 GREETING CARDS", "stationery"),
        ("SPACEBOY TOY", "toys"),
        ("BLUE HARMONICA IN BOX", "other"),
    ],
)
def test_online_retail_categories_from_descriptions(title: str, category: str) -> None:
    assert categorise(pd.Series([title])).iloc[0] == category


# --- MovieLens 100K -----------------------------------------------------------------------


def genre_flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in DEFAULT_GENRES)


ML_DATA = {  # line -> (row, expected reason or None)
    1: ("196\t242\t3\t881250949", None),
    2: ("186\t302\t5\t891717742", None),
    3: ("22\t242\t1\t878887116", None),
    4: ("22\t302\t6\t878887116", "rating_out_of_range"),
    5: ("x9\t302\t3\t878887116", "unparseable_user_id"),
    6: ("22\t??\t3\t878887116", "unparseable_item_id"),
    7: ("23\t242\tgood\t878887116", "unparseable_rating"),
    8: ("23\t302\t4\tyesterday", "unparseable_timestamp"),
    9: ("24\t267\t2\t885000000", None),
    10: ("23\t267\t4\t880000000", None),
    11: ("24\t543\t0\t880000000", "rating_out_of_range"),
}


@pytest.fixture
def ml_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("\n".join(ML_DATA[n][0] for n in sorted(ML_DATA)) + "\n")
    items = [
        f"242|Kolya (1996)|24-Jan-1997||http://x/242|{genre_flags('Comedy')}",
        f"302|L.A. Confidential (1997)|01-Jan-1997||http://x/302|"
        f"{genre_flags('Crime', 'Film-Noir', 'Mystery', 'Thriller')}",
        f"267|unknown||||{genre_flags('unknown')}",
        f"543|Misérables, Les (1995)|01-Jan-1995||http://x/543|{genre_flags('Drama')}",
    ]
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    users = [
        "196|49|M|writer|55105",
        "186|39|F|executive|00000",
        "22|25|M|writer|40206",
        "23|30|F|artist|T8H1N",
        "24|21|F|artist|94533",
    ]
    (folder / "u.user").write_text("\n".join(users) + "\n")
    (folder / "u.genre").write_text(
        "\n".join(f"{g}|{i}" for i, g in enumerate(DEFAULT_GENRES)) + "\n\n"
    )
    return folder


def test_movielens_discover(ml_folder: Path, tmp_path: Path) -> None:
    source = MovieLensSource()
    by_folder = source.discover([ml_folder])
    by_file = source.discover([ml_folder / "u.data", ml_folder])
    assert by_folder == by_file and len(by_file) == 1
    batch = by_folder[0]
    assert batch.name == "ml-100k" and batch.batch_date is None
    assert [f.name for f in batch.files] == ["u.data", "u.item", "u.user"]
    assert batch.window == WINDOW == (ts("1997-09-19"), ts("1998-04-23"))
    with pytest.raises(UsageError, match="u.data"):
        source.discover([ml_folder / "u.item"])
    (ml_folder / "u.user").unlink()
    with pytest.raises(UsageError, match="missing u.user"):
        source.discover([ml_folder])


def test_movielens_events_and_rejections(ml_folder: Path) -> None:
    raw, conformed = ingest(MovieLensSource(), ml_folder)
    expected = {n: reason for n, (_, reason) in ML_DATA.items() if reason}
    got = dict(zip(conformed.rejected["_line"], conformed.rejected["reason"], strict=True))
    assert got == expected
    events = conformed.tables["events"]
    assert list(events.columns) == columns("events")
    assert str(events["rating"].dtype) == "Float64"
    first = events.iloc[0]
    # The event id names the shopper by pseudonym: it reaches reasons and reports.
    assert first["event_id"] == f"ml-{PS.one('196')}-242" and first["user_id"] == PS.one("196")
    assert first["item_id"] == "242" and first["event_type"] == "purchase"
    assert first["quantity"] == 1 and pd.isna(first["unit_price"])
    assert first["rating"] == 3.0
    assert first["timestamp"] == pd.Timestamp(881250949, unit="s", tz=UTC)
    assert events["event_id"].is_unique
    # Rejected rows carry the pseudonym, even of an id that did not parse.
    rejected = conformed.rejected.set_index("_line")
    assert rejected.loc[4, "user_id"] == PS.one("22")
    assert rejected.loc[5, "user_id"] == PS.one("x9")
    assert rejected.loc[4, "rating"] == "6"


def test_movielens_duplicate_pair_is_kept_for_the_checks(ml_folder: Path) -> None:
    with (ml_folder / "u.data").open("a") as f:
        f.write("196\t242\t4\t881250950\n")
    _, conformed = ingest(MovieLensSource(), ml_folder)
    assert (conformed.tables["events"]["event_id"] == f"ml-{PS.one('196')}-242").sum() == 2


def test_movielens_items_genres_and_first_seen(ml_folder: Path) -> None:
    _, conformed = ingest(MovieLensSource(), ml_folder)
    items = conformed.tables["items"].set_index("item_id")
    assert list(conformed.tables["items"].columns) == columns("items")
    assert items.loc["302", "category"] == "Crime"
    assert items.loc["302", "tags"] == "Crime|Film-Noir|Mystery|Thriller"
    assert items.loc["242", "first_seen"] == ts("1997-01-24")
    assert items.loc["543", "title"] == "Misérables, Les (1995)"  # latin-1 decoded
    unknown = items.loc["267"]
    assert unknown["category"] == "other" and pd.isna(unknown["tags"])
    # No release date: the earliest of its ratings (880000000 < 885000000).
    assert unknown["first_seen"] == pd.Timestamp(880000000, unit="s", tz=UTC)
    assert items["brand"].isna().all() and items["price"].isna().all()


def test_movielens_users_features(ml_folder: Path) -> None:
    _, conformed = ingest(MovieLensSource(), ml_folder)
    users = conformed.tables["users"].set_index("user_id")
    assert list(conformed.tables["users"].columns) == columns("users")
    u196 = users.loc[PS.one("196")]
    assert u196["segments"] == "age:45-54|gender:M|occupation:writer", "the age in bands"
    assert users["country"].isna().all()
    assert set(conformed.tables["events"]["user_id"]) <= set(users.index)
    assert_no_raw_ids(conformed, ["55105", "40206", "T8H1N"])  # full zips are not kept


def test_movielens_without_u_genre_uses_the_standard_genres(ml_folder: Path) -> None:
    _, with_file = ingest(MovieLensSource(), ml_folder)
    (ml_folder / "u.genre").unlink()
    _, without = ingest(MovieLensSource(), ml_folder)
    pd.testing.assert_frame_equal(with_file.tables["items"], without.tables["items"])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("242|Kolya|24-Jan-1997||http://x|0|1|0", "u.item: line 1: 8 fields, expected 24"),
        (
            "242|Kolya|24-Jan-1997||http://x|" + genre_flags("Comedy").replace("1", "yes"),
            "u.item: line 1: expected 19 genre flags of 0 or 1",
        ),
    ],
)
def test_movielens_broken_item_file_is_unreadable(
    ml_folder: Path, line: str, message: str
) -> None:
    (ml_folder / "u.item").write_text(line + "\n")
    source = MovieLensSource()
    (batch,) = source.discover([ml_folder])
    raw = source.read_raw(batch)
    with pytest.raises(UnreadableBatch, match=message):
        source.conform(raw, batch, PS)


# --- Bring-your-own CSV / Parquet ---------------------------------------------------------

EVENTS_MAPPING = """
table: events
columns:
  event_id: txn_id
  user_id: customer
  item_id: sku
  event_type: action
  unit_price: price
  timestamp: ts
values:
  event_type: {buy: purchase, cart: add_to_cart, refund: return}
constants:
  quantity: 1
timezone: Europe/Berlin
"""


def write_mapping(tmp_path: Path, text: str, name: str = "mapping.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_events_mapping_values_constants_and_timezone(tmp_path: Path) -> None:
    source = MappedCsvSource.from_file(write_mapping(tmp_path, EVENTS_MAPPING))
    data = tmp_path / "orders-2024-07-01.csv"
    data.write_text(
        "txn_id,customer,sku,action,price,ts,note\n"
        "t1,alice@example.com,SKU-1,buy,9.50,2024-07-01 12:00:00,gift\n"
        "t2,bob@example.com,SKU-2, cart ,,2024-07-01T08:30:00+00:00,\n"
        "t3,alice@example.com,SKU-1,refund,9.50,2024-07-01 23:30:00Z,\n"
        "t4,carol@example.com,SKU-3,wishlist,1.00,2024-07-01 09:00:00,\n"
        "t5,carol@example.com,SKU-3,buy,1.00,not a time,secret\n"
    )
    raw, conformed = ingest(source, data)
    # A timestamp that does not parse is a malformed row, set aside with the mapped columns only.
    assert conformed.rejected[["reason", "_line"]].values.tolist() == [
        ["unparseable_timestamp", 6]]
    assert conformed.rejected.loc[0, "customer"] == PS.one("carol@example.com")
    assert "note" not in conformed.rejected.columns
    assert conformed.primary == "events"
    events = conformed.tables["events"]
    assert list(events.columns) == columns("events")  # the extra "note" column is dropped
    assert events["event_type"].tolist()[:3] == ["purchase", "add_to_cart", "return"]
    # Unmapped values are left for the batch checks to report, not silently fixed.
    assert events["event_type"].iloc[3] == "wishlist"
    assert events["quantity"].tolist() == [1, 1, 1, 1]
    assert events["timestamp"].iloc[0] == ts("2024-07-01 10:00:00")  # CEST is UTC+2
    assert events["timestamp"].iloc[1] == ts("2024-07-01 08:30:00")
    assert events["timestamp"].iloc[2] == ts("2024-07-01 23:30:00")
    assert events["event_id"].tolist() == ["t1", "t2", "t3", "t4"]
    assert pd.isna(events["unit_price"].iloc[1])
    assert events["user_id"].iloc[0] == PS.one("alice@example.com")
    assert_no_raw_ids(conformed, ["alice@", "bob@", "carol@"])
    (batch,) = source.discover([data])
    assert batch.batch_date == dt.date(2024, 7, 1)


def test_csv_items_keep_extra_columns_with_delimiter_and_encoding(tmp_path: Path) -> None:
    mapping = write_mapping(
        tmp_path,
        "table: items\ndelimiter: ';'\nencoding: latin-1\n"
        "columns: {item_id: sku, title: name, category: cat, first_seen: added}\n"
        "constants: {brand: Acme}\nkeep: [colour]\n",
    )
    data = tmp_path / "catalogue.csv"
    data.write_bytes(
        "sku;name;cat;added;colour;price\n"
        "A1;Café mug;kitchen;2024-01-01;red;3.5\n".encode("latin-1")
    )
    _, conformed = ingest(MappedCsvSource.from_file(mapping), data)
    items = conformed.tables["items"]
    assert list(items.columns) == [*columns("items"), "colour"]
    row = items.iloc[0]
    assert row["title"] == "Café mug" and row["brand"] == "Acme" and row["colour"] == "red"
    # "price" is neither mapped nor kept: dropped, and named for the batch report.
    assert pd.isna(row["price"]) and conformed.dropped_columns == ["price"]
    assert row["first_seen"] == ts("2024-01-01")


def test_parquet_users_input(tmp_path: Path) -> None:
    mapping = write_mapping(
        tmp_path, "table: users\ncolumns: {user_id: customer_no, country: land}\nkeep: [age]\n"
    )
    pd.DataFrame(
        {"customer_no": [1001, 1002], "land": ["DE", None], "age": [31, 45]}
    ).to_parquet(tmp_path / "customers.parquet")
    raw, conformed = ingest(MappedCsvSource.from_file(mapping), tmp_path / "customers.parquet")
    assert raw["_line"].tolist() == [1, 2]
    users = conformed.tables["users"]
    assert list(users.columns) == ["user_id", "country", "segments", "age"]
    assert users["user_id"].tolist() == [PS.one("1001"), PS.one("1002")]
    assert users["country"].iloc[0] == "DE" and pd.isna(users["country"].iloc[1])
    assert users["age"].tolist() == ["31", "45"]
    assert_no_raw_ids(conformed, ["1001", "1002"])


def test_csv_users_attributes_become_segments(tmp_path: Path) -> None:
    mapping = write_mapping(
        tmp_path, "table: users\ncolumns: {user_id: id, segments: labels}\n"
        "split: {segments: ';'}\nattributes: [tier, age_band]\n")
    (tmp_path / "users.csv").write_text(
        "id,labels,tier,age_band,email\n"
        "1,vip; newsletter,gold,25-34,a@b.c\n"
        "2,,,,d@e.f\n"
        "3,,silver|bronze, 35-44 ,g@h.i\n"
    )
    _, conformed = ingest(MappedCsvSource.from_file(mapping), tmp_path / "users.csv")
    users = conformed.tables["users"]
    assert users["segments"].iloc[0] == "vip|newsletter|tier:gold|age_band:25-34"
    assert pd.isna(users["segments"].iloc[1]), "no attributes: null, not an empty tag"
    assert users["segments"].iloc[2] == "tier:silver bronze|age_band:35-44", \
        "a separator inside a value cannot forge a second attribute"
    assert conformed.dropped_columns == ["email"]
    assert_no_raw_ids(conformed, ["a@b.c"])


def test_parquet_problems_are_unreadable(tmp_path: Path) -> None:
    source = MappedCsvSource.from_file(write_mapping(tmp_path, EVENTS_MAPPING))
    pd.DataFrame({"txn_id": ["t1"], "customer": ["c"]}).to_parquet(tmp_path / "a.parquet")
    (tmp_path / "b.parquet").write_bytes(b"PAR1 this is not parquet")
    batches = source.discover([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    with pytest.raises(UnreadableBatch, match=r"a.parquet: missing required columns sku, action"):
        source.read_raw(batches[0])
    with pytest.raises(UnreadableBatch, match="b.parquet: unreadable parquet"):
        source.read_raw(batches[1])


def test_csv_discover_finds_both_formats_undated_first(tmp_path: Path) -> None:
    source = MappedCsvSource.from_file(write_mapping(tmp_path, EVENTS_MAPPING, "m.yml"))
    for name in ("2024-07-02.csv", "2024-07-01.parquet", "full.csv", "readme.txt"):
        (tmp_path / name).write_text("x")
    assert [b.name for b in source.discover([tmp_path])] == ["full", "2024-07-01", "2024-07-02"]
    only_csv = MappedCsvSource(
        CsvMapping.from_dict({"format": "csv", **_events_mapping_dict()})
    )
    assert [b.name for b in only_csv.discover([tmp_path])] == ["full", "2024-07-02"]


def _events_mapping_dict() -> dict:
    import yaml

    return yaml.safe_load(EVENTS_MAPPING)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("table: orders\ncolumns: {event_id: id}\n", "unknown table 'orders'"),
        ("table: events\nformat: xlsx\n" + EVENTS_MAPPING.split("\n", 2)[2], "unknown format"),
        (
            EVENTS_MAPPING.replace("  item_id: sku", "  item_id: sku\n  sku_name: name"),
            "unknown events column.*sku_name",
        ),
        (
            EVENTS_MAPPING.replace("  item_id: sku\n", ""),
            "required events column.*item_id neither mapped",
        ),
        (
            EVENTS_MAPPING.replace("constants:\n  quantity: 1\n", ""),
            "required events column.*quantity",
        ),
        (EVENTS_MAPPING + "colums: {}\n", "unknown setting.*colums"),
        (EVENTS_MAPPING.replace("Europe/Berlin", "Mars/Olympus"), "unknown timezone"),
        (EVENTS_MAPPING + "delimiter: ';;'\n", "single character"),
        (EVENTS_MAPPING + "encoding: klingon\n", "unknown encoding"),
        (EVENTS_MAPPING.replace("  quantity: 1", "  event_id: x"), "both mapped"),
        (EVENTS_MAPPING + "values2: 1\n", "unknown setting"),
        (
            EVENTS_MAPPING.replace("values:\n", "values:\n  order_id: {a: b}\n"),
            "order_id is neither mapped",
        ),
        ("- just\n- a list\n", "expected a YAML mapping"),
        ("table: events\ncolumns: [a, b]\n", "columns must be a mapping"),
        ("table: [unclosed\n", "not valid YAML"),
        (EVENTS_MAPPING + "keep: [customer]\n", "customer holds the raw customer id"),
        (EVENTS_MAPPING + "keep: [item_id]\n", "would shadow the canonical"),
        (EVENTS_MAPPING + "keep: note\n", "keep must be a list"),
        (EVENTS_MAPPING + "timestamp_unit: h\n", "unknown timestamp_unit 'h'"),
        ("table: items\ncolumns: {item_id: a, title: b, category: c}\n"
         "constants: {first_seen: '2024-01-01'}\ntimestamp_unit: s\n",
         "no timestamp column is mapped"),
        (EVENTS_MAPPING + "split: {order_id: '|'}\n", "split: order_id is not mapped"),
        (EVENTS_MAPPING + "split: {item_id: ''}\n", "separator"),
        (EVENTS_MAPPING + "attributes: [note]\n", "only a users table has them"),
        ("table: users\ncolumns: {user_id: id}\nattributes: [id]\n",
         "id holds the raw customer id"),
        ("table: users\ncolumns: {user_id: id}\nattributes: tier\n",
         "attributes must be a list"),
    ],
)
def test_csv_mapping_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write_mapping(tmp_path, text, "shop.yaml")
    with pytest.raises(UsageError, match=message) as err:
        MappedCsvSource.from_file(path)
    assert "shop.yaml" in str(err.value)  # the message names the mapping at fault


def test_csv_mapping_file_missing(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read mapping"):
        MappedCsvSource.from_file(tmp_path / "nope.yaml")


def test_example_mapping_is_valid_and_registered() -> None:
    source = get_source("csv", str(REPO / "infra" / "mappings" / "example-orders.yaml"))
    assert isinstance(source, MappedCsvSource)
    assert source.mapping.table == "events"
    assert source.mapping.values["event_type"]["refund"] == "return"
    assert isinstance(get_source("online-retail"), OnlineRetailSource)
    assert isinstance(get_source("movielens-100k"), MovieLensSource)


# --- Bring-your-own: privacy, epoch timestamps, generated ids, multi-valued columns ----------

LEAN_MAPPING = """
table: events
columns: {user_id: customer, item_id: sku, timestamp: ts}
constants: {event_type: purchase, quantity: 1}
"""


def test_csv_keeps_only_listed_columns_and_names_the_dropped(tmp_path: Path) -> None:
    source = MappedCsvSource.from_file(
        write_mapping(tmp_path, LEAN_MAPPING + "keep: [channel]\n"))
    data = tmp_path / "orders.csv"
    data.write_text(
        "customer,email,sku,phone,ts,channel\n"
        "c-17,ann@example.com,S1,+44 7700 900123,2024-07-01T10:00:00Z,web\n"
    )
    _, conformed = ingest(source, data)
    events = conformed.tables["events"]
    assert list(events.columns) == [*columns("events"), "channel"]
    assert conformed.dropped_columns == ["email", "phone"]
    assert_no_raw_ids(conformed, ["ann@example.com", "7700 900123", "c-17"])


def test_csv_items_and_users_drop_unlisted_columns_by_default(tmp_path: Path) -> None:
    mapping = write_mapping(tmp_path, "table: users\ncolumns: {user_id: id}\n")
    data = tmp_path / "customers.csv"
    data.write_text("id,email,country\n1001,bob@example.com,DE\n")
    _, conformed = ingest(MappedCsvSource.from_file(mapping), data)
    assert list(conformed.tables["users"].columns) == columns("users")
    assert conformed.dropped_columns == ["email", "country"]
    assert_no_raw_ids(conformed, ["bob@example.com", "1001"])


@pytest.mark.parametrize(("unit", "value"), [("s", "881250949"), ("ms", "881250949000")])
def test_csv_epoch_timestamps(tmp_path: Path, unit: str, value: str) -> None:
    source = MappedCsvSource.from_file(
        write_mapping(tmp_path, LEAN_MAPPING + f"timestamp_unit: {unit}\n"))
    data = tmp_path / "ratings.csv"
    data.write_text(f"customer,sku,ts\n1,S1,{value}\n2,S1,soon\n3,S1,1e30\n4,S1,\n")
    _, conformed = ingest(source, data)
    stamps = conformed.tables["events"]["timestamp"]
    assert stamps.iloc[0] == pd.Timestamp(881250949, unit="s", tz=UTC)
    assert stamps.iloc[1:].isna().all(), "not a number, out of range or blank: null"


def test_csv_generated_event_ids_are_stable_across_re_exports(tmp_path: Path) -> None:
    mapping = write_mapping(tmp_path, LEAN_MAPPING.replace(
        "ts}", "ts, unit_price: price}"))
    source = MappedCsvSource.from_file(mapping)
    first = tmp_path / "export-a.csv"
    first.write_text(
        "customer,sku,ts,price\n"
        "c1,S1,2024-07-01T10:00:00Z,9.50\n"
        "c2,S1,2024-07-01T10:00:00Z,9.50\n"
        "c1,S2,2024-07-01T11:00:00Z,3\n"
        "c1,S2,2024-07-01T11:00:00Z,3\n"  # the same purchase twice in the export
    )
    again = tmp_path / "export-b.csv"  # columns and rows reordered, numbers written otherwise
    again.write_text(
        "price,ts,sku,customer\n"
        "3.0,2024-07-01 11:00:00+00:00,S2,c1\n"
        "9.5,2024-07-01 10:00:00Z,S1,c2\n"
        "3,2024-07-01T11:00:00Z,S2,c1\n"
        "9.5,2024-07-01T10:00:00Z,S1,c1\n"
    )
    _, one = ingest(source, first)
    _, two = ingest(source, again)
    ids_one, ids_two = one.tables["events"]["event_id"], two.tables["events"]["event_id"]
    assert ids_one.is_unique and set(ids_one) == set(ids_two)
    assert ids_one.str.match(r"^h-[0-9a-f]{20}(-\d+)?$").all()
    assert ids_one.iloc[3] == ids_one.iloc[2] + "-2", "a repeat gets an occurrence suffix"
    assert ids_one.iloc[0] != ids_one.iloc[1], "another shopper, another event"
    other_key = Pseudonymiser("other-key")
    (batch,) = source.discover([first])
    renamed = source.conform(source.read_raw(batch), batch, other_key)
    assert set(renamed.tables["events"]["event_id"]).isdisjoint(ids_one), \
        "ids come from the pseudonym, never the raw customer id"


def test_csv_split_takes_the_first_value_and_every_tag_before_value_maps(tmp_path: Path
                                                                        ) -> None:
    source = MappedCsvSource.from_file(REPO / "infra" / "mappings" / "movielens-latest-movies.yaml")
    data = tmp_path / "movies.csv"
    data.write_text(
        "movieId,title,genres\n"
        '1,Toy Story (1995),Adventure|Animation|Children\n'
        '2,"Jumanji, (1995)", |Adventure\n'
        "3,Unknown,(no genres listed)\n"
        "4,Single,Drama\n"
    )
    _, conformed = ingest(source, data)
    items = conformed.tables["items"].set_index("item_id")
    assert items["category"].tolist() == ["Adventure", "Adventure", "other", "Drama"]
    assert items.loc["1", "tags"] == "Adventure|Animation|Children", "every value a tag"
    assert items.loc["2", "tags"] == "Adventure", "blank values skipped"
    assert pd.isna(items.loc["3", "tags"]), "value maps apply to tags too"
    assert items.loc["2", "title"] == "Jumanji, (1995)"
    assert (items["first_seen"] == ts("1995-01-01")).all()


def test_movielens_latest_ratings_mapping(tmp_path: Path) -> None:
    source = MappedCsvSource.from_file(
        REPO / "infra" / "mappings" / "movielens-latest-ratings.yaml")
    data = tmp_path / "ratings.csv"
    data.write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n")
    _, conformed = ingest(source, data)
    events = conformed.tables["events"]
    assert events["event_id"].str.startswith("h-").all() and events["event_id"].is_unique
    assert events["rating"].tolist() == [4.0, 4.5]
    assert events["timestamp"].iloc[0] == pd.Timestamp(964982703, unit="s", tz=UTC)
    assert events["user_id"].iloc[0] == PS.one("1")
