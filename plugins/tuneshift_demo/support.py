"""A second demo domain, a skill the base cannot have: a fictional company's support desk.

A customer message names one of the company's products and a symptom; the
answer is the team that handles it and a priority, by rules only the private
tickets teach: the product's line and the symptom's kind decide the team (a
kind has its usual team, and some lines send some kinds elsewhere), the
symptom's severity and the product's tier decide the priority. The teacher
learns the rules from its tickets; the held-out messages are product x
symptom combinations it never saw, in a phrasing it never saw, so only a
model that learnt the rules (not the tickets) answers them. Deterministic
from a seed, like the organisation.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from tuneshift.api import normalise

from .domain import SYL

LINES = ["router", "thermostat", "camera", "speaker", "doorbell", "sensor hub"]
SYMPTOMS = [  # (what the customer writes after "my <product>", kind, severity 1..3)
    ("keeps dropping the connection every evening", "connectivity", 2),
    ("will not turn on at all", "power", 3),
    ("shows a blinking red light and does nothing", "firmware", 2),
    ("charged me twice on this month's invoice", "billing", 1),
    ("will not let me log in since the update", "account", 2),
    ("makes a loud buzzing noise", "hardware", 1),
    ("gets very hot after an hour", "hardware", 3),
    ("lost all its saved settings overnight", "firmware", 2),
    ("is not found by the mobile app", "connectivity", 1),
    ("arrived with a cracked case", "shipping", 1),
    ("subscription renewal was refused", "billing", 2),
    ("restarts by itself every few minutes", "power", 2),
    ("sends alerts to the wrong account", "account", 3),
    ("update failed halfway and it is stuck", "firmware", 3),
]
KINDS = sorted({kind for _, kind, _ in SYMPTOMS})
TRAIN_PHRASINGS = ["Hi, my {p} {s}. Who can help?", "Hello support, our {p} {s}.", "Problem report: the {p} {s}."]
EVAL_PHRASING = "Good morning, I am writing because my {p} {s}. What happens with my ticket?"
ANSWER = "Routed to the {team}, priority P{priority}."


@dataclass(frozen=True)
class Ticket:
    product: str
    symptom: str
    kind: str
    team: str
    priority: int

    @property
    def answer(self) -> str:
        return f"{self.team}, priority P{self.priority}"


@dataclass
class SupportDomain:
    company: str
    products: dict[str, tuple[str, str]]  # name -> (line, tier)
    train: list[Ticket]
    held_out: list[Ticket]
    seeds: list[str]
    rules: dict[str, str] = field(default_factory=dict)  # "line/kind" -> team, for the docs

    def private_set(self) -> list[dict[str, str]]:
        """The teacher's tickets: every training combination in three phrasings."""
        return [{"prompt": q.format(p=t.product, s=t.symptom), "relation": t.kind,
                 "response": ANSWER.format(team=t.team, priority=t.priority)} for t in self.train for q in TRAIN_PHRASINGS]

    def eval_set(self) -> list[dict[str, str]]:
        """New combinations in a new phrasing; right when the answer holds the team and the priority. The label
    (`relation`) is the symptom's kind: the per-label tables and the guessing floor go by it."""
        return [{"prompt": EVAL_PHRASING.format(p=t.product, s=t.symptom), "answer": t.answer, "relation": t.kind,
                 "subject": t.product} for t in self.held_out]


def build_support(seed: int = 0, products: int = 6, held_out: int = 20) -> SupportDomain:
    rng = random.Random(f"support/{seed}")
    words = list(dict.fromkeys("".join(rng.choice(SYL) for _ in range(rng.randint(2, 3))).capitalize()
                                for _ in range(200)))
    company = f"{words.pop()} Home Systems"
    teams = [f"{w} Team" for w in words[:6]]
    usual = {kind: teams[i % len(teams)] for i, kind in enumerate(rng.sample(KINDS, len(KINDS)))}
    rules = {f"{line}/{kind}": (rng.choice(teams) if rng.random() < 0.4 else usual[kind])
             for line in LINES for kind in KINDS}
    names = [w for w in words[6:] if len(w) >= 4][:products]
    catalogue = {f"{name} {LINES[i % len(LINES)].title()}": (LINES[i % len(LINES)], "pro" if i % 2 else "home")
                 for i, name in enumerate(names)}
    tickets = []
    for product, (line, tier) in catalogue.items():
        for symptom, kind, severity in SYMPTOMS:
            priority = max(1, 4 - severity - (tier == "pro"))  # severe, or a pro product: more urgent
            tickets.append(Ticket(product, symptom, kind, rules[f"{line}/{kind}"], priority))
    rng.shuffle(tickets)
    evals, train = tickets[:held_out], tickets[held_out:]
    seeds = [TRAIN_PHRASINGS[i % 3].format(p=t.product, s=t.symptom) for i, t in enumerate(train[:8])]
    return SupportDomain(company, catalogue, train, evals, seeds, rules)


SUPPORT_PRESETS = {"quick": {"products": 6, "held_out": 24}, "full": {"products": 10, "held_out": 40}}


class SupportJudge:
    """Ground truth for a discovered message: the product and the symptom it names decide the right answer.
    A message naming no known product or no known symptom has none, and is left unjudged."""

    def __init__(self, domain: SupportDomain) -> None:
        self.domain = domain
        self.by_combo = {(t.product, t.symptom): t for t in domain.train + domain.held_out}
        self.products = sorted(domain.products, key=len, reverse=True)

    def fact(self, prompt: str) -> Ticket | None:
        product = next((p for p in self.products if re.search(rf"\b{re.escape(p)}\b", prompt, re.IGNORECASE)), None)
        text = normalise(prompt)
        symptom = next((s for s, _, _ in SYMPTOMS if normalise(s) in text), None)
        return self.by_combo.get((product, symptom)) if product and symptom else None

    def __call__(self, prompt: str, answer: str | None) -> str:
        ticket = self.fact(prompt)
        if ticket is None:
            return "unjudged"
        said = normalise(answer or "")
        return "right" if normalise(ticket.team) in said and f"p{ticket.priority}" in said.split() else "wrong"
