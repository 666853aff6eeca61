"""Explained answers of a data dir's champion, as the endpoint builds them: the figures the README
quotes ("Because you bought ...") come from here.

Loads ``models:/<model_name>@champion`` of the data dir's registry
(``contracts.pyfunc.load_logged``, the endpoint's loader), goes through the known shoppers in
sorted order, explains each one's top ``--k`` at the moment ``--when`` (``explain_many``, the
endpoint's code path) and keeps, per shopper, the first item whose reason names past purchases,
until ``--answers`` items, with the attributions of the wide part (``history_items``) and of the
recent-sales ``trend``. Prints one JSON object.

    python bench/explained_answers.py --data-dir DIR --when 2011-12-10T12:00
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contracts import registry  # noqa: E402
from contracts.pyfunc import load_logged  # noqa: E402
from contracts.settings import Settings  # noqa: E402
from models.queries import Query  # noqa: E402


def explained_answers(data_dir: Path, when: pd.Timestamp | None, k: int, answers: int,
                      marker: str = "Because you bought") -> dict:
    settings = Settings().with_values(data_dir=data_dir.resolve())
    registry.configure(settings)
    uri = f"models:/{settings.model_name}@{registry.CHAMPION}"
    model = load_logged(uri)
    found = []
    for user in sorted(model.known_users):
        ranked = model.recommend_many([Query(user, k, when=when)])[0]
        if not len(ranked.items):
            continue
        for item, explained in zip(ranked.items, model.explain_many([(user, ranked.items)],
                                                                    when)[0], strict=True):
            if marker in explained.reason:
                attributions = explained.explanation.attributions
                found.append({"item": model.titles[model.item_ids[item]],
                              "reason": explained.reason,
                              "history_items": round(attributions.get("history_items", 0.0), 2),
                              "trend": round(attributions.get("trend", 0.0), 2)})
                break
        if len(found) >= answers:
            break
    return {"model": uri, "when": None if when is None else str(when), "answers": found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the trained data dir")
    parser.add_argument("--when", type=pd.Timestamp, default=None,
                        help="the requests' moment (default: now)")
    parser.add_argument("--k", type=int, default=3, help="items per answer (default: 3)")
    parser.add_argument("--answers", type=int, default=3, help="answers to print (default: 3)")
    args = parser.parse_args()
    print(json.dumps(explained_answers(args.data_dir, args.when, args.k, args.answers),
                     ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
