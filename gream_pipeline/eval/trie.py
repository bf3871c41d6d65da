"""Prefix trie over the valid semantic IDs (token-id level) and the ID ↔ item catalog.

IDs are prefix-free (CONVENTIONS.md: 4 tokens, 5 with the conflict slot), so every complete ID is a leaf. An index that
gives several items the same tokens (no conflict slot) yields one leaf whose ID names all of them (see metrics.py for
the item-level rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass
class IDCatalog:
    """Valid IDs of an index: `ids[i]` is the ID string, `tokens[i]` its tokens, `items[i]` the items carrying it."""

    ids: list[str]
    tokens: list[list[str]]
    items: list[list[str]]
    item_to_id: dict[str, str]
    id_index: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_index(cls, index: Mapping[str, Sequence[str]]) -> "IDCatalog":
        by_id: dict[str, tuple[list[str], list[str]]] = {}
        item_to_id: dict[str, str] = {}
        for item, toks in index.items():
            sid = "".join(toks)
            item_to_id[str(item)] = sid
            by_id.setdefault(sid, (list(toks), []))[1].append(str(item))
        ids = sorted(by_id)
        cat = cls(ids=ids, tokens=[by_id[s][0] for s in ids], items=[by_id[s][1] for s in ids],
                  item_to_id=item_to_id)
        cat.id_index = {s: i for i, s in enumerate(ids)}
        cat._check_prefix_free()
        return cat

    def id_to_items(self) -> dict[str, list[str]]:
        return dict(zip(self.ids, self.items))

    def _check_prefix_free(self) -> None:
        seen = set(self.ids)
        for toks in self.tokens:
            for j in range(1, len(toks)):
                if "".join(toks[:j]) in seen:
                    raise ValueError(f"index is not prefix-free: {''.join(toks[:j])} prefixes {''.join(toks)}")


@dataclass
class TokenTrie:
    """Trie over token ids. Node 0 is the root; `children[n]` maps token id → child node; `leaf[n]` is the ID index
    (into the catalog) completed at node n, or -1."""

    children: list[dict[int, int]]
    leaf: list[int]
    token_str: dict[int, str]
    max_depth: int

    @classmethod
    def build(cls, catalog: IDCatalog, token_to_id: Mapping[str, int]) -> "TokenTrie":
        children: list[dict[int, int]] = [{}]
        leaf = [-1]
        token_str: dict[int, str] = {}
        for i, toks in enumerate(catalog.tokens):
            node = 0
            for t in toks:
                tid = token_to_id[t]
                token_str[tid] = t
                nxt = children[node].get(tid)
                if nxt is None:
                    nxt = len(children)
                    children[node][tid] = nxt
                    children.append({})
                    leaf.append(-1)
                node = nxt
            leaf[node] = i
        return cls(children=children, leaf=leaf, token_str=token_str,
                   max_depth=max((len(t) for t in catalog.tokens), default=0))

    def walk(self, token_ids: Sequence[int]) -> int | None:
        """Node reached by following `token_ids` from the root, or None when it leaves the trie."""
        node = 0
        for t in token_ids:
            node = self.children[node].get(int(t))
            if node is None:
                return None
        return node

    def tensors(self):
        """Padded child tables for the vectorised beam: (child_tok, child_node, leaf) as torch LongTensors;
        missing children are -1."""
        import torch

        width = max((len(c) for c in self.children), default=1) or 1
        n = len(self.children)
        child_tok = torch.full((n, width), -1, dtype=torch.long)
        child_node = torch.full((n, width), -1, dtype=torch.long)
        for i, ch in enumerate(self.children):
            if ch:
                child_tok[i, : len(ch)] = torch.tensor(list(ch.keys()), dtype=torch.long)
                child_node[i, : len(ch)] = torch.tensor(list(ch.values()), dtype=torch.long)
        return child_tok, child_node, torch.tensor(self.leaf, dtype=torch.long)


def token_ids_for(tokenizer, catalog: IDCatalog) -> dict[str, int]:
    """Vocabulary ids of every ID token; each must be a single token of the tokenizer."""
    needed = sorted({t for toks in catalog.tokens for t in toks})
    ids = tokenizer.convert_tokens_to_ids(needed)
    unk = getattr(tokenizer, "unk_token_id", None)
    missing = [t for t, i in zip(needed, ids) if i is None or (unk is not None and i == unk)]
    if missing:
        raise ValueError(f"{len(missing)} ID tokens are not single tokens of the tokenizer, e.g. {missing[:5]}")
    return dict(zip(needed, ids))
