"""The problems view's ranking, as plain values (the screen is tested in test_problems.py)."""

from __future__ import annotations

import random

from wsconsole.console.problems import (
    PROBLEM_SORTS,
    merge_problem_pages,
    problem_of,
    problems_titles,
    rank_problems,
)

NOW = 10_000.0


def row(id: str, buffered: int = 0, latency: float | None = 0.001, idle: float = 0.0) -> dict:
    return {"id": id, "buffered": buffered, "latency": latency, "last_activity": NOW - idle}


def test_buffered_then_slow_then_idle_then_the_rest() -> None:
    """Buffered bytes first (most first), then latency, then idle time, then everyone else."""
    rows = [row("calm"), row("idle", idle=600), row("slow", latency=0.9),
            row("slower", latency=2.0), row("full", buffered=10 << 20),
            row("fuller", buffered=20 << 20, idle=900), row("none-yet", latency=None),
            row("a-little", buffered=100)]
    ranked = [r["id"] for r in rank_problems(rows, NOW, 100)]
    assert ranked[:5] == ["fuller", "full", "slower", "slow", "idle"]
    assert ranked[5] == "a-little"  # the rest: by buffered bytes, then latency
    assert problem_of(row("calm"), NOW) is None and problem_of(row("x", idle=61), NOW) == "idle"


def test_the_union_of_the_three_orders_first_pages_holds_the_worst_page() -> None:
    """Ranking the first n of each server order gives the n worst of everyone."""
    rng = random.Random(3)
    # Each connection's values differ from the others' (as measured values do).
    everyone = [row(f"c{i}", buffered=rng.choice([0, rng.randrange(200_000)]),
                    latency=rng.choice([None, rng.uniform(0, 0.5)]),
                    idle=rng.uniform(0, 120)) for i in range(500)]

    def page(sort: str) -> dict:
        key = sort.lstrip("-")
        value = (lambda r: r[key] if r[key] is not None else -1.0)
        ordered = sorted(everyone, key=lambda r: (value(r), r["id"]),
                         reverse=sort.startswith("-"))
        return {"connections": ordered[:20], "total": len(everyone)}

    merged = merge_problem_pages([page(sort) for sort in PROBLEM_SORTS], NOW, 20)
    expected = rank_problems(everyone, NOW, 20)
    problems = [r["id"] for r in expected if problem_of(r, NOW)]
    assert len(problems) == 20
    assert [r["id"] for r in merged["connections"]] == problems
    assert merged["problems"] and merged["next_cursor"] is None


def test_the_titles_say_it_is_the_problems_view_and_count_each_problem() -> None:
    """The title names the view and its order, the subtitle what was found and how to leave."""
    title, subtitle = problems_titles([row("a", buffered=1 << 20), row("b", idle=100),
                                       row("c")], NOW, "everyone")
    assert title.startswith("PROBLEMS")
    assert subtitle == "everyone · 1 buffered, 1 idle · p or esc leaves"
