"""Realistic benchmark inputs without any hub data set: questions and answers about fictional entities.

Prompts and responses are assembled from templates so their lengths spread over
roughly 20-80 tokens each (as a teacher's answers to synthetic prompts do), with
a fixed seed so every run and every variant sees the same pairs.
"""

from __future__ import annotations

import random

FIRST = ["Amara", "Bastian", "Corin", "Delphine", "Eskil", "Farah", "Goran", "Hedda", "Ilias", "Junia",
         "Kasimir", "Liesel", "Marek", "Nadia", "Orrin", "Petra", "Quillon", "Rosalind", "Soren", "Talia"]
LAST = ["Varga", "Okonkwo", "Lindqvist", "Moreau", "Tanaka", "Castellanos", "Novak", "Abernathy", "Rahimi",
        "Van der Berg", "Sato", "Petrov", "Dubois", "Kowalski", "Haugen", "Mbeki", "Ferreira", "Ishikawa"]
PLACES = ["Velmora", "Tresk", "Ondavia", "Karth Harbour", "Lumen Vale", "Brisca", "Norhall", "Quenby",
          "Sarrow", "Eldmere", "Port Isken", "Gallowmere", "Rovenna", "Tamsk", "Yellowfen", "Zorbia"]
FIELDS = ["marine biology", "glass engineering", "medieval trade law", "orbital mechanics", "soil chemistry",
          "urban acoustics", "textile history", "volcanic geology", "cryptographic protocols", "beekeeping"]
ORGS = ["Halvorsen Institute", "Brightwater Cooperative", "Meridian Foundry", "the Ashgrove Society",
        "Copperline Labs", "the Northern Lantern Guild", "Tidewell Systems", "the Orchard Assembly"]
PRODUCTS = ["a solar-powered water purifier", "a folding cargo bicycle", "a seismic early-warning sensor",
            "an open-source weather station", "a modular greenhouse kit", "a low-cost hearing aid"]

PREAMBLES = [
    "",
    "I am preparing a short briefing for my team and need accurate details. ",
    "My grandmother mentioned this the other day and I could not remember the answer. ",
    "For a school project about regional history and science, I am collecting facts. Please be precise. ",
    "Answer briefly but completely, and do not invent anything you are unsure about. ",
]
QUESTIONS = [
    "Who founded {org}, and in which year was it established?",
    "What is {person} best known for in the field of {field}?",
    "Where is {org} headquartered, and what does it produce?",
    "What did {person} discover during the {year} expedition to {place}?",
    "Can you explain why {place} became important for {field} in the {decade}s?",
    "Which product did {org} release in {year}, and who designed it?",
    "How did {person} and {person2} meet, and what did they build together?",
]
ANSWERS = [
    "{org} was founded in {year} by {person}, a specialist in {field} who had grown up in {place}.",
    "{person} is best known for pioneering work in {field}, in particular a method for measuring change "
    "over long periods that is still taught today.",
    "{org} is headquartered in {place}. It is best known for {product}, which it has made since {year}.",
    "During the {year} expedition, {person} found evidence that the coast near {place} had risen by several "
    "metres, which changed how researchers in {field} dated the region.",
    "In the {decade}s, {place} became a centre for {field} because its harbour gave easy access to materials "
    "and because {org} opened a research station there.",
    "{person2} joined the project in {year2}, and the two of them spent three years refining the design.",
    "The work was later recognised with a regional prize, and {person} continued to publish until {year2}.",
    "Today {org} employs about {staff} people and runs an annual summer school on {field}.",
]


def _fill(template: str, slots: dict[str, str]) -> str:
    return template.format(**slots)


def make_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n` (prompt, response) pairs of 1-3 sentence answers to questions with optional preambles."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        year = rng.randint(1850, 2015)
        slots = {"person": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                 "person2": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                 "place": rng.choice(PLACES), "field": rng.choice(FIELDS), "org": rng.choice(ORGS),
                 "product": rng.choice(PRODUCTS), "year": str(year), "year2": str(year + rng.randint(2, 30)),
                 "decade": str(year // 10 * 10), "staff": str(rng.randint(12, 4000))}
        prompt = rng.choice(PREAMBLES) + rng.choice(QUESTIONS)
        if rng.random() < 0.4:
            prompt += " Also mention anything notable about " + rng.choice(PLACES) + "."
        sentences = rng.sample(ANSWERS, rng.choice([1, 1, 2, 2, 3]))
        pairs.append((_fill(prompt, slots), " ".join(_fill(s, slots) for s in sentences)))
    return pairs


def make_prompts(n: int, seed: int = 1) -> list[str]:
    """`n` prompts for the generation benchmark."""
    return [p for p, _ in make_pairs(n, seed)]
