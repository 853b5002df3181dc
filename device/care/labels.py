"""``painmon export-labels``: the labelled moments of the stays kept on the device.

Each row is one label with the moment's features and the stay's pseudonymous reference:
a self-report (``label`` "nrs", the rating in ``nrs``) or a scale score (``label`` "painad" or
"cpot", ``total`` on its own scale and ``score_0_10`` as the mapping uses it). One stay
(``--stay REF``) or every stay kept, in admission order; a stay's rows never mix with another's.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TextIO

from device.care.selfreport import SelfReportStore, flat_features
from device.care.stay import StayStore


def stay_rows(store: StayStore, reference: str | None = None) -> list[dict]:
    rows: list[dict] = []
    for stay in store.stays(reference):
        head = {"stay": stay.reference, "stay_id": stay.id}
        reports = SelfReportStore(store.directory(stay))
        try:
            labels = [(r.t, {**head, "label": "nrs", **r.to_dict()}, r) for r in reports.reports()]
        finally:
            reports.close()
        for s in store.scale_scores(stay):
            labels.append((s.t, {**head, "label": s.scale, **s.to_dict()}, s))
        rows += [(row, item) for _, row, item in sorted(labels, key=lambda x: x[0])]
    return rows


def export_stay_labels(state_dir: Path, out: TextIO, fmt: str = "jsonl",
                       reference: str | None = None) -> int:
    """Write the labels of one stay (``reference``) or of every stay; returns the count."""
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"export format must be jsonl or csv, got {fmt!r}")
    store = StayStore(state_dir)
    try:
        rows = stay_rows(store, reference)
    finally:
        store.close()
    if fmt == "jsonl":
        for row, _ in rows:
            out.write(json.dumps(row, separators=(",", ":")) + "\n")
        return len(rows)
    flat = []
    for row, item in rows:
        base = {k: v for k, v in row.items() if k != "features"}
        if isinstance(base.get("items"), dict):
            base.update({f"item_{k}": v for k, v in base.pop("items").items()})
        flat.append({**base, **flat_features(item)})
    columns: list[str] = []
    for row in flat:
        columns += [k for k in row if k not in columns]
    writer = csv.DictWriter(out, fieldnames=columns or ["stay"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return len(flat)
