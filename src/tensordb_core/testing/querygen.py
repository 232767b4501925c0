"""Seeded random documents and portable queries, for checking a store against the reference evaluator.

Why random: the corners of MongoDB's semantics (null versus missing, arrays of
subdocuments, type brackets, bool versus number, field order in subdocuments)
are where backends disagree, and hand-written cases never cover their
combinations.  Values come from a small domain so that queries actually hit.
Array-valued fields are never used as sort keys (outside the portable contract).
"""

from __future__ import annotations

import random
from typing import Any

INTS = [-2, -1, 0, 1, 2, 3]
FLOATS = [-1.5, 0.5, 1.0, 2.0, 2.5]
STRINGS = ["", "a", "b", "ab", "B", "é", "z"]
SUB_FIELDS = ["x", "y"]
#: Paths the query generator aims at, including ones no document has.
PATHS = ["a", "b", "t", "n", "n.x", "n.y", "a.x", "a.y", "n.x.y", "nope", "t.x"]
#: With ``numeric_paths``: subdocuments may hold digit-named fields, arrays nest, and queries aim
#: numeric path parts at both (MongoDB reads ``"0"`` as a position *and* as a field name).
DIGIT_FIELDS = ["0", "1"]
NUMERIC_PATHS = ["a.0", "a.1", "a.0.x", "a.1.x", "a.0.0", "a.0.1", "a.0.0.x", "a.x.0", "n.0", "n.0.x", "n.1.y",
                 "t.0", "t.2", "a.0.x.0", "a.00"]


class QueryGen:
    """Draw documents and queries from one seeded generator."""

    def __init__(self, seed: int, *, numeric_paths: bool = False) -> None:
        self.rng = random.Random(seed)
        self.numeric_paths = numeric_paths
        self.sub_fields = SUB_FIELDS + DIGIT_FIELDS if numeric_paths else SUB_FIELDS
        self.paths = PATHS + NUMERIC_PATHS * 2 if numeric_paths else PATHS
        self.max_depth = 3 if numeric_paths else 2

    # values ---------------------------------------------------------------------------------
    def scalar(self) -> Any:
        r = self.rng.random()
        if r < 0.3:
            return self.rng.choice(INTS)
        if r < 0.45:
            return self.rng.choice(FLOATS)
        if r < 0.75:
            return self.rng.choice(STRINGS)
        if r < 0.88:
            return self.rng.choice([True, False])
        return None

    def subdoc(self, depth: int = 0) -> dict[str, Any]:
        fields = self.rng.sample(self.sub_fields, self.rng.randint(0, 2))
        out: dict[str, Any] = {}
        for f in fields:
            out[f] = self.value(depth + 1) if depth < 1 and self.rng.random() < 0.3 else self.scalar()
        return out

    def array(self, depth: int = 0) -> list[Any]:
        n = self.rng.randint(0, 3)
        kind = self.rng.random()
        if kind < 0.45:
            return [self.scalar() for _ in range(n)]
        if kind < 0.8:
            return [self.subdoc(depth + 1) for _ in range(n)]
        return [self.value(depth + 1) for _ in range(n)]

    def value(self, depth: int = 0) -> Any:
        r = self.rng.random()
        if depth >= self.max_depth or r < (0.4 if self.numeric_paths else 0.55):
            return self.scalar()
        if r < 0.75:
            return self.array(depth)
        return self.subdoc(depth)

    def document(self, i: int) -> dict[str, Any]:
        doc: dict[str, Any] = {"_id": f"d{i:04d}"}
        if self.rng.random() < 0.85:
            doc["a"] = self.value()
        if self.rng.random() < 0.85:
            doc["b"] = self.scalar()
        if self.rng.random() < 0.8:
            doc["t"] = [self.rng.choice(STRINGS[:4]) for _ in range(self.rng.randint(0, 3))]
        r = self.rng.random()
        if r < 0.45:
            doc["n"] = self.subdoc()
        elif r < 0.7:
            doc["n"] = [self.subdoc() for _ in range(self.rng.randint(0, 3))]
        elif r < 0.85:
            doc["n"] = self.scalar()
        # "s" is a sortable field: never an array, sometimes a subdocument.
        r = self.rng.random()
        if r < 0.8:
            doc["s"] = self.scalar()
        elif r < 0.9:
            doc["s"] = self.subdoc()
        return doc

    def documents(self, n: int) -> list[dict[str, Any]]:
        return [self.document(i) for i in range(n)]

    # queries --------------------------------------------------------------------------------
    def operand(self, docs: list[dict[str, Any]] | None = None) -> Any:
        """A literal to compare with: mostly from the domain, sometimes a whole value from a document."""
        if docs and self.rng.random() < 0.2:
            doc = self.rng.choice(docs)
            key = self.rng.choice(["a", "n", "t"])
            if key in doc:
                return doc[key]
        r = self.rng.random()
        if r < 0.8:
            return self.scalar()
        if r < 0.9:
            return self.subdoc()
        return [self.scalar() for _ in range(self.rng.randint(0, 2))]

    def range_operand(self) -> Any:
        r = self.rng.random()
        if r < 0.45:
            return self.rng.choice(INTS + FLOATS)
        if r < 0.8:
            return self.rng.choice(STRINGS)
        if r < 0.93:
            return self.rng.choice([True, False])
        return None

    def operator(self, docs: list[dict[str, Any]] | None, depth: int) -> dict[str, Any]:
        r = self.rng.random()
        if r < 0.12:
            return {"$eq": self.operand(docs)}
        if r < 0.2:
            return {"$ne": self.operand(docs)}
        if r < 0.42:
            ops = self.rng.sample(["$gt", "$gte", "$lt", "$lte"], self.rng.randint(1, 2))
            return {op: self.range_operand() for op in ops}
        if r < 0.52:
            return {"$in": [self.operand(docs) for _ in range(self.rng.randint(0, 3))]}
        if r < 0.58:
            return {"$nin": [self.operand(docs) for _ in range(self.rng.randint(0, 3))]}
        if r < 0.65:
            return {"$exists": self.rng.choice([True, False])}
        if r < 0.71:
            return {"$all": [self.operand(docs) for _ in range(self.rng.randint(0, 2))]}
        if r < 0.77:
            return {"$size": self.rng.randint(0, 3)}
        if r < 0.88:
            if self.rng.random() < 0.5:
                return {"$elemMatch": self.operator(None, depth + 1) if depth < 2 else {"$gt": self.range_operand()}}
            field = self.rng.choice(self.sub_fields)
            cond = self.operand() if self.rng.random() < 0.5 else self.operator(None, depth + 1)
            return {"$elemMatch": {field: cond}}
        if depth < 2:
            return {"$not": self.operator(docs, depth + 1)}
        return {"$exists": True}

    def query(self, docs: list[dict[str, Any]] | None = None, depth: int = 0) -> dict[str, Any]:
        """A random portable query (validated by construction)."""
        r = self.rng.random()
        if depth < 2 and r < 0.15:
            op = self.rng.choice(["$and", "$or", "$nor"])
            return {op: [self.query(docs, depth + 1) for _ in range(self.rng.randint(1, 3))]}
        out: dict[str, Any] = {}
        for _ in range(1 if self.rng.random() < 0.8 else 2):
            path = self.rng.choice(self.paths)
            if self.rng.random() < 0.35:
                out[path] = self.operand(docs)
            else:
                out[path] = self.operator(docs, depth)
        return out

    def sort(self) -> list[tuple[str, int]]:
        """A sort over fields that are never arrays: ``s``, ``b`` and ``_id``."""
        fields = self.rng.sample(["s", "b", "_id"], self.rng.randint(1, 2))
        if "_id" in fields[:-1]:
            fields.remove("_id")
        return [(f, self.rng.choice([1, -1])) for f in fields]
