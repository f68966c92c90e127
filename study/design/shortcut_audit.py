"""The shortcut audit: how well strategies that need no understanding would score.

A study measures understanding of the AI's explanations only if its question cannot be
answered without it. Before launch, each strategy below is scored on the frozen main items
(attention checks are instructed, practice items come with feedback), as the accuracy it
would reach, guesses counted at their expected value:

- always the first choice / always the second choice ("always A", "always B"; "always
  yes", "always no");
- the larger picture (comparative questions): pick the partial image that shows more of the
  photo, guessing on a tie;
- the AI's answer, where the condition shows it: answer the class the AI names;
- the most frequent answer over the item set (the most frequent class, or the majority of
  yes/no);
- elimination over the item set: guess from the item set's answers, each used as often as it
  occurs (a participant who learnt or was told the set's composition; it beats chance when
  the set uses few of the offered answers, or some much more than others);
- reading the figure, in a condition whose figure carries the answer: for the comparative
  question in a SAG condition, both pair images drawn as nodes of the graph on the same
  page with their confidences; elsewhere a guess.

Chance is one over the number of choices. A strategy that beats chance by more than the
study's declared margin blocks the launch (study.services.study_launch) unless the
researcher overrides it with a reason, which is frozen into the design.

Pure functions over plain values: study.selectors.study_shortcut_audit builds the input
from a study's snapshot.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_MARGIN_POINTS = 10


@dataclass(frozen=True)
class AuditItem:
    correct: str  # the choice value that counts as correct
    ai_answer: str | None = None  # the choice value the AI names, if it is a choice
    pair_sizes: tuple[float, float] | None = None  # share of the photo A and B show
    readable_in: frozenset[str] = frozenset()  # conditions whose figure shows the answer


@dataclass(frozen=True)
class AuditCondition:
    name: str
    shows_ai_answer: bool
    has_figure: bool  # shows an explanation figure


@dataclass(frozen=True)
class AuditRow:
    strategy: str
    condition: str  # "" when the strategy is the same in every condition
    accuracy: float
    chance: float

    @property
    def beats_chance_by_points(self) -> float:
        return 100 * (self.accuracy - self.chance)

    def line(self) -> str:
        where = f" [{self.condition}]" if self.condition else ""
        return (
            f"{self.strategy}{where}: {100 * self.accuracy:.1f}% "
            f"(chance {100 * self.chance:.1f}%, {self.beats_chance_by_points:+.1f} points)"
        )


@dataclass(frozen=True)
class AuditReport:
    rows: tuple[AuditRow, ...]
    margin_points: float
    n_items: int

    @property
    def failures(self) -> tuple[AuditRow, ...]:
        """The rows that beat chance by more than the margin."""
        return tuple(row for row in self.rows if row.beats_chance_by_points > self.margin_points)

    def table(self) -> str:
        header = (
            f"Shortcut audit over {self.n_items} main item(s), margin "
            f"{self.margin_points:g} points above chance:"
        )
        return "\n".join([header, *(f"  {row.line()}" for row in self.rows)])

    def as_dict(self) -> dict:
        return {
            "margin_points": self.margin_points,
            "n_items": self.n_items,
            "rows": [
                {
                    "strategy": row.strategy,
                    "condition": row.condition,
                    "accuracy": round(row.accuracy, 6),
                    "chance": round(row.chance, 6),
                }
                for row in self.rows
            ],
        }


def shortcut_audit(
    *,
    choices: Sequence[str],
    choice_names: Sequence[str],
    items: Sequence[AuditItem],
    conditions: Sequence[AuditCondition],
    comparative: bool,
    margin_points: float = DEFAULT_MARGIN_POINTS,
) -> AuditReport:
    """Score every strategy on `items` (the main items); `choice_names` name the first two
    choices in the strategy names ("A", "yes", ...)."""
    if len(choices) < 2:
        raise ValueError("a question needs at least two choices")
    if not items:
        return AuditReport(rows=(), margin_points=margin_points, n_items=0)
    chance = 1 / len(choices)
    n = len(items)
    rows = []

    def add(strategy: str, hits: float, condition: str = "") -> None:
        rows.append(AuditRow(strategy, condition, hits / n, chance))

    for index in (0, 1):
        value = choices[index]
        add(f"always {choice_names[index]}", sum(item.correct == value for item in items))
    if comparative:
        add("the larger picture", sum(_larger_picture(item) for item in items))
    counts = Counter(item.correct for item in items)
    most_frequent, count = counts.most_common(1)[0]
    add(f"the most frequent answer ({_name(most_frequent, choices, choice_names)})", count)
    add("elimination over the item set", sum(c * c for c in counts.values()) / n)
    for condition in conditions:
        if condition.shows_ai_answer and any(item.ai_answer is not None for item in items):
            add(
                "the AI's answer",
                sum(item.ai_answer == item.correct for item in items),
                condition.name,
            )
        if condition.has_figure and (
            comparative or any(condition.name in item.readable_in for item in items)
        ):
            add(
                "reading the figure",
                sum(1 if condition.name in item.readable_in else chance for item in items),
                condition.name,
            )
    return AuditReport(rows=tuple(rows), margin_points=margin_points, n_items=n)


def _larger_picture(item: AuditItem) -> float:
    """1 if the picture showing more of the photo is the right one, 0 if not, 1/2 on a tie."""
    if item.pair_sizes is None:
        return 0.5
    a, b = item.pair_sizes
    if a == b:
        return 0.5
    return float(item.correct == ("A" if a > b else "B"))


def _name(value: str, choices: Sequence[str], choice_names: Sequence[str]) -> str:
    index = list(choices).index(value) if value in choices else -1
    return choice_names[index] if 0 <= index < len(choice_names) else value
