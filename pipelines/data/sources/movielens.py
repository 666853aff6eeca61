"""Adapter for MovieLens 100K (GroupLens): 100,000 ratings of 1,682 movies by 943 users.

The whole data set is one batch: ``u.data`` (the ratings) is the primary table, while ``u.item``
and ``u.user`` become the catalogue (genres as tags) and the users (demographics as segments).
A rating is treated as a consumption, so each becomes a ``purchase`` event of quantity 1 that
also carries the explicit rating. The data set's README forbids redistribution: read it in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from contracts.pseudonyms import Pseudonymiser
from contracts.tables import conform
from pipelines.data.sources.base import (
    BatchInput,
    Conformed,
    Source,
    UnreadableBatch,
    UsageError,
    refusal,
    set_aside,
)
from pipelines.data.sources.reading import read_delimited, strict

FILES = ("u.data", "u.item", "u.user")
RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
USER_COLUMNS = ["user_id", "age", "gender", "occupation", "zip"]
ITEM_COLUMNS = ["item_id", "title", "release_date", "video_release_date", "url"]

# The README's collection period, 19 September 1997 through 22 April 1998.
WINDOW = (pd.Timestamp("1997-09-19", tz="UTC"), pd.Timestamp("1998-04-23", tz="UTC"))

# u.genre's content, for a copy of the data set that lacks that file.
DEFAULT_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)

REJECT_REASONS: tuple[str, ...] = (
    "unparseable_user_id",
    "unparseable_item_id",
    "unparseable_rating",
    "unparseable_timestamp",
    "rating_out_of_range",
)


class MovieLensSource(Source):
    name = "movielens-100k"
    raw_suite = None

    def discover(self, paths: Sequence[Path]) -> list[BatchInput]:
        folders: list[Path] = []
        for path in paths:
            if path.is_dir():
                folder = path
            elif path.is_file() and path.name == "u.data":
                folder = path.parent
            elif path.exists():
                raise UsageError(f"{path}: give the ml-100k folder or its u.data file")
            else:
                raise UsageError(f"no such file or folder: {path}")
            if folder.resolve() not in [f.resolve() for f in folders]:
                folders.append(folder)
        batches = []
        for folder in folders:
            files = tuple(folder / name for name in FILES)
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise UsageError(
                    f"{folder}: not a MovieLens 100K folder, missing {', '.join(missing)}"
                )
            batches.append(
                BatchInput(source=self.name, name="ml-100k", files=files, window=WINDOW,
                           refused=refusal([*files, folder / "u.genre"]))
            )
        return batches

    def read_raw(self, batch: BatchInput) -> pd.DataFrame:
        return read_delimited(batch.files[0], sep="\t", names=RATING_COLUMNS)

    def conform(
        self, raw: pd.DataFrame, batch: BatchInput, pseudonymiser: Pseudonymiser
    ) -> Conformed:
        user = _ids(raw["user_id"])
        item = _ids(raw["item_id"])
        rating = pd.to_numeric(_text(raw["rating"]), errors="coerce").astype("Float64")
        seconds = _whole(raw["timestamp"])
        timestamp = pd.to_datetime(seconds, unit="s", utc=True)
        # An id that does not parse is still someone's id: rejected rows get its pseudonym too.
        user_id = pseudonymiser.series(user.fillna(_text(raw["user_id"])))

        checks = {
            "unparseable_user_id": user.isna(),
            "unparseable_item_id": item.isna(),
            "unparseable_rating": rating.isna(),
            "unparseable_timestamp": timestamp.isna(),
            "rating_out_of_range": ~_flag(rating.between(1, 5)),
        }
        rejected, ok = set_aside(raw, checks, REJECT_REASONS, "user_id", user_id)
        # The event id names the shopper by pseudonym, never by raw id: event ids reach curated
        # data, rejected rows, quarantine reasons and reports. Duplicate user/item pairs would
        # repeat an event_id; the batch checks report those.
        events = pd.DataFrame(
            {
                "event_id": "ml-" + user_id[ok] + "-" + item[ok],
                "user_id": user_id[ok],
                "item_id": item[ok],
                "event_type": "purchase",
                "quantity": 1,
                "unit_price": np.nan,
                "timestamp": timestamp[ok],
                "rating": rating[ok],
            }
        )
        items, users = side_tables(batch.files[1].parent,
                                   events.groupby("item_id")["timestamp"].min())
        users["user_id"] = pseudonymiser.series(users["user_id"])
        return Conformed(
            primary="events",
            tables={
                "events": conform("events", events),
                "items": conform("items", items),
                "users": conform("users", users),
            },
            rejected=rejected.reset_index(drop=True),
        )


def _genres(path: Path) -> list[str]:
    """Genre names in flag order, from u.genre (``name|index`` lines)."""
    if not path.is_file():
        return list(DEFAULT_GENRES)
    frame = _read(path, sep="|", names=["name", "index"])
    order = pd.to_numeric(frame["index"], errors="coerce")
    if order.isna().any() or sorted(order.astype(int)) != list(range(len(frame))):
        raise UnreadableBatch(f"{path.name}: genre indexes are not 0..{len(frame) - 1}")
    return list(frame.assign(order=order).sort_values("order")["name"].str.strip())


def side_tables(folder: Path, first_rated: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The catalogue (``u.item``, genres as tags) and the users (``u.user``, by raw id, their
    demographics as segments) of an ml-100k folder; ``first_rated``: each item's first rating
    time, its ``first_seen`` where it has no release date."""
    items = _items(folder / "u.item", _genres(folder / "u.genre"), first_rated)
    return items, _users(folder / "u.user")


def _items(path: Path, genres: list[str], first_rated: pd.Series) -> pd.DataFrame:
    """The catalogue: title, first flagged genre as category, all genres as tags, release
    date."""
    raw = _read(path, sep="|", names=ITEM_COLUMNS + genres, encoding=_encoding(path))
    flags = raw[genres].apply(lambda col: col.str.strip())
    bad_flags = ~flags.isin(["0", "1"]).all(axis=1)
    if bad_flags.any():
        line = raw.loc[bad_flags, "_line"].iloc[0]
        raise UnreadableBatch(
            f"{path.name}: line {line}: expected {len(genres)} genre flags of 0 or 1"
        )
    flagged = flags == "1"
    # "unknown" is a placeholder genre, not a category worth recommending by.
    named = [g for g in genres if g != "unknown"]
    items = pd.DataFrame({"item_id": _ids(raw["item_id"]), "title": _text(raw["title"])})
    items["category"] = flagged[named].idxmax(axis=1).where(flagged[named].any(axis=1), "other")
    items["brand"] = None
    items["price"] = np.nan
    released = pd.to_datetime(
        _text(raw["release_date"]), format="%d-%b-%Y", utc=True, errors="coerce"
    )
    # No release date: the first rating is the earliest we know the movie existed.
    items["first_seen"] = released.fillna(items["item_id"].map(first_rated))
    genre_lists = flagged[named].apply(lambda row: "|".join(row.index[row]), axis=1)
    items["tags"] = genre_lists.astype("string").replace("", pd.NA)
    return items


def _users(path: Path) -> pd.DataFrame:
    """The users with their demographics as segments (``age:25-34|gender:M|occupation:writer``):
    the age in bands and no zip code, since a full zip narrows a person down too far."""
    raw = _read(path, sep="|", names=USER_COLUMNS)
    age = _whole(raw["age"]).astype("Float64")
    parts = pd.DataFrame({
        "age": age.map(_age_band, na_action="ignore").astype("string"),
        "gender": _text(raw["gender"]),
        "occupation": _text(raw["occupation"]),
    })
    segments = parts.apply(
        lambda row: "|".join(f"{name}:{value}" for name, value in row.items()
                             if not pd.isna(value) and str(value).strip()), axis=1)
    return pd.DataFrame(
        {
            "user_id": _ids(raw["user_id"]),
            "country": None,
            "segments": segments.astype("string").replace("", pd.NA),
        }
    )


AGE_BANDS = ((18, "under 18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"),
             (65, "55-64"))


def _age_band(age: float) -> str:
    """The age band (as the GroupLens 1M release groups ages), not the age itself."""
    return next((band for upper, band in AGE_BANDS if age < upper), "65 and over")


def _read(path: Path, *, sep: str, names: list[str], encoding: str = "utf-8") -> pd.DataFrame:
    try:
        # Side files are not counted row by row: a broken line in one makes the batch unreadable.
        return strict(read_delimited(path, sep=sep, names=names, encoding=encoding), path.name)
    except OSError as err:
        raise UnreadableBatch(f"{path.name}: cannot read: {err.strerror or err}") from None


def _encoding(path: Path) -> str:
    """u.item is latin-1 in the GroupLens release (accented titles); accept a UTF-8 copy too."""
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    except OSError as err:
        raise UnreadableBatch(f"{path.name}: cannot read: {err.strerror or err}") from None
    return "utf-8"


def _ids(values: pd.Series) -> pd.Series:
    """Positive whole ids as canonical strings ("007" and "7" are one movie); else NA."""
    numbers = _whole(values)
    return numbers.where(numbers > 0).astype("Int64").astype("string")


def _whole(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(_text(values), errors="coerce").astype("Float64")
    return numbers.where(_flag(numbers == numbers.round()))


def _text(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def _flag(mask: pd.Series) -> pd.Series:
    return mask.fillna(False).astype(bool)
