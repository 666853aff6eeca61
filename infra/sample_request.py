"""Call the running endpoint's /recommend for one shopper of the demo shop and print the answer.

The synthetic generator writes each shopper's planted preferences to ``ground_truth.json`` beside
``users.csv``; they are printed above the reasons, so the reader can check that the explanations
recover them. Standard library only. Exit status 1 when the answer is not a full explained list.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import urllib.request
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--customers", type=Path, required=True, help="the shop's users.csv")
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args()

    with args.customers.open(newline="") as handle:
        customer = next(csv.DictReader(handle))["customer_id"]
    truth_file = args.customers.with_name("ground_truth.json")
    planted = json.loads(truth_file.read_text())["users"].get(customer) \
        if truth_file.is_file() else None
    body = {"user_id": customer, "k": args.k, "explain": True}
    headers = {"Content-Type": "application/json"}
    if os.environ.get("SHOPREC_API_TOKEN"):
        headers["Authorization"] = f"Bearer {os.environ['SHOPREC_API_TOKEN']}"
    request = urllib.request.Request(f"{args.url.rstrip('/')}/recommend", method="POST",
                                     data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())

    print(f"$ curl -X POST {args.url}/recommend -H 'Content-Type: application/json' "
          f"-d '{json.dumps(body)}'")
    model = answer["model"]
    print(f"model {model['name']} v{model['version']} (run {model['run_id']}), "
          f"fallback: {answer['fallback'] or 'none'}")
    if planted:
        print(f"{customer}'s planted preferences: {planted}")
    for item in answer["items"]:
        explanation = item.get("explanation") or {}
        print(f"  {item['rank']}. {item['title']} [{item['category']}, {item['price']}] "
              f"score {item['score']:.3f}")
        print(f"     why: {explanation.get('reason', '-')}")
        top = sorted(explanation.get("attributions", []), key=lambda a: -a["attribution"])[:3]
        print("     top attributions: " + ", ".join(
            f"{a['feature']}={a['value']} ({a['attribution']:+.3f})" for a in top))
    complete = all(item.get("explanation") for item in answer["items"])
    return 0 if answer["items"] and complete else 1


if __name__ == "__main__":
    sys.exit(main())
