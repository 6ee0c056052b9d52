"""The CORAG/CARROT search (METHODS.md §3.3) over ordered chunk combinations, independent of chunks and scorers.

Items are candidate indices ``0..k-1`` with integer costs; a node is an ordered sequence of distinct
items (the root is the empty sequence). One iteration:

1. **Selection**: from the root, while the node is expanded, move to the live child (within budget,
   subtree not exhausted) with the highest ``U = V/N + c·sqrt(ln N(parent) / N) − λ·cost/B``.
2. **Expansion**: create *all* children (the node's sequence plus one unused item, in item order)
   whose cost stays ``<= budget``; with ``prune=False`` (the authors' code) children over the budget
   are created and scored too, but they are never descended into, backed up or picked.
3. **Evaluation**: one call of ``evaluate(sequences)`` for all new children; each gets
   ``V = R``, ``N = 1`` (no random roll-out).
4. **Backpropagation**: ``best_child`` (paper): the best new child's reward is added to the expanded
   node and every ancestor (``V += R``, ``N += 1``); ``all_children`` (code): every new in-budget
   child's reward is added that way (``N`` grows by the number of children).

A node whose in-budget children are all exhausted (or that has none) is *exhausted*: selection never
enters it again, and the search stops early once the root is exhausted (the whole in-budget tree has
been explored; further iterations could not change anything). **Global selection** looks at every
explored node at any depth within the budget: ``avg`` (paper) takes the highest ``V/N``, ``own``
(code) the highest own score; ties go to the higher own score / average, more visits, the shallower
node, then the earlier one.

Example:
    >>> table = {(0,): 0.9, (1,): 0.5, (2,): 0.5, (1, 2): 1.0, (2, 1): 1.0}
    >>> result = search([1, 1, 1], lambda seqs: [table.get(s, 0.1) for s in seqs],
    ...                 SearchConfig(budget=2, iterations=20, c=1.0, lambda_=0.0))
    >>> result.best.seq, result.stopped
    ((1, 2), 'exhausted')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Backprop = Literal["best_child", "all_children"]
FinalSelect = Literal["avg", "own"]


def ucb(value: float, visits: int, parent_visits: int, cost: float, *, c: float, lambda_: float,
        budget: float) -> float:
    """``V/N + c·sqrt(ln N(parent) / N) − λ·cost/B`` (the exploration term is 0 while ``N(parent) <= 1``).

    Example:
        >>> round(ucb(3.0, 2, 8, 50, c=2.0, lambda_=0.5, budget=100), 6)
        3.289334
    """
    exploit = value / visits
    explore = c * math.sqrt(math.log(parent_visits) / visits) if parent_visits > 1 else 0.0
    return exploit + explore - lambda_ * cost / budget


@dataclass(eq=False)
class Node:
    """One ordered combination in the policy tree."""

    seq: tuple[int, ...]
    cost: int
    parent: Node | None = None
    order: int = 0
    fits: bool = True
    own: float = float("nan")
    value: float = 0.0
    visits: int = 0
    children: list[Node] = field(default_factory=list)
    expanded: bool = False
    exhausted: bool = False

    @property
    def depth(self) -> int:
        return len(self.seq)

    @property
    def average(self) -> float:
        return self.value / self.visits if self.visits else float("nan")

    def walk(self) -> Iterator[Node]:
        """This node and all its descendants (depth first, in creation order)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))


@dataclass(frozen=True)
class SearchConfig:
    budget: int
    iterations: int
    c: float
    lambda_: float
    backprop: Backprop = "best_child"
    final_select: FinalSelect = "avg"
    prune: bool = True
    seed: int | None = None


@dataclass
class SearchResult:
    root: Node
    best: Node | None
    iterations: int = 0
    expansions: int = 0
    nodes: int = 0
    stopped: str = "iterations"

    def nodes_in_budget(self) -> list[Node]:
        return [n for n in self.root.walk() if n is not self.root and n.fits]


def _final_key(node: Node, final_select: FinalSelect) -> tuple[float, ...]:
    main, second = (node.average, node.own) if final_select == "avg" else (node.own, node.average)
    return (main, second, node.visits, -node.depth, -node.order)


def search(costs: Sequence[int], evaluate: Callable[[list[tuple[int, ...]]], Sequence[float]],
           config: SearchConfig) -> SearchResult:
    """Run the search over items with ``costs``; ``evaluate`` scores a batch of sequences (one call per expansion)."""
    k = len(costs)
    rng = np.random.default_rng(config.seed) if config.seed is not None else None
    root = Node((), 0, expanded=False)
    result = SearchResult(root=root, best=None)
    created = 0
    for _ in range(config.iterations):
        if root.exhausted:
            result.stopped = "exhausted"
            break
        result.iterations += 1
        node = root
        while node.expanded:
            live = [ch for ch in node.children if ch.fits and not ch.exhausted]
            utilities = [ucb(ch.value, ch.visits, node.visits, ch.cost, c=config.c, lambda_=config.lambda_,
                             budget=config.budget) for ch in live]
            top = max(utilities)
            best = [i for i, u in enumerate(utilities) if u == top]
            node = live[best[0] if rng is None or len(best) == 1 else int(rng.choice(best))]
        # expansion: every unused item, in item order
        used = set(node.seq)
        children: list[Node] = []
        for item in range(k):
            if item in used:
                continue
            cost = node.cost + int(costs[item])
            fits = cost <= config.budget
            if fits or not config.prune:
                created += 1
                children.append(Node(node.seq + (item,), cost, parent=node, order=created, fits=fits))
        node.children = children
        node.expanded = True
        result.expansions += 1
        if children:
            rewards = [float(r) for r in evaluate([ch.seq for ch in children])]
            if len(rewards) != len(children):
                raise ValueError(f"evaluate returned {len(rewards)} scores for {len(children)} sequences")
            for ch, reward in zip(children, rewards):
                ch.own = ch.value = reward
                ch.visits = 1
            fitting = [ch for ch in children if ch.fits]
            if fitting:
                if config.backprop == "best_child":
                    top_child = max(fitting, key=lambda ch: (ch.own, -ch.order))
                    _backup(node, [top_child.own])
                else:
                    _backup(node, [ch.own for ch in fitting])
        _mark_exhausted(node)
    else:
        if root.exhausted:
            result.stopped = "exhausted"
    result.nodes = created
    candidates = result.nodes_in_budget()
    if candidates:
        result.best = max(candidates, key=lambda n: _final_key(n, config.final_select))
    return result


def _backup(node: Node | None, rewards: Sequence[float]) -> None:
    while node is not None:
        node.value += float(sum(rewards))
        node.visits += len(rewards)
        node = node.parent


def _mark_exhausted(node: Node | None) -> None:
    while node is not None and node.expanded and all(ch.exhausted or not ch.fits for ch in node.children):
        node.exhausted = True
        node = node.parent


def brute_force(costs: Sequence[int], score: Callable[[tuple[int, ...]], float], budget: int) -> tuple[tuple[int, ...], float]:
    """The best ordered combination within ``budget`` by enumerating all of them (tests and small k only)."""
    best: tuple[tuple[int, ...], float] = ((), float("-inf"))
    stack: list[tuple[tuple[int, ...], int]] = [((), 0)]
    while stack:
        seq, cost = stack.pop()
        for item in range(len(costs)):
            if item in seq or cost + costs[item] > budget:
                continue
            child = seq + (item,)
            value = score(child)
            if value > best[1]:
                best = (child, value)
            stack.append((child, cost + costs[item]))
    return best
