"""A fictional organisation whose facts no pre-trained model can know, deterministic from a seed.

It is a graph: the organisation lists its departments, a department lists its
members and projects and has a head, a person has a birthplace, a role, a
year of joining and a department, a project has a lead, a city and a start
year. A few seed prompts name a small corner of it; the rest can only be
found by following the names in the teacher's answers.

Every fact comes with three training phrasings (the teacher's private data)
and, for single-valued facts, a fourth, held-out phrasing for evaluation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

SYL = ["ba", "dre", "fel", "gor", "hal", "ith", "kor", "lune", "mar", "nev", "ost", "pra", "quel", "ros", "sav",
       "tam", "ul", "vex", "wyn", "zar", "cal", "dor", "esh", "vin"]
ROLES = ["glass engineer", "tide analyst", "archive keeper", "signal designer", "field botanist", "ledger auditor",
         "lamp chemist", "route planner", "kiln operator", "map illustrator", "weather modeller", "rope rigger"]
DEPT_WORDS = ["Lantern", "Tidal", "Copper", "Meridian", "Saltmarsh", "Aurora", "Quarry", "Harbor"]
DEPT_KINDS = ["Works", "Analytics", "Foundry", "Studio", "Office", "Lab"]
PROJECT_BIRDS = ["Osprey", "Heron", "Kestrel", "Plover", "Merlin", "Curlew", "Avocet", "Gannet"]

# relation -> (three training phrasings, one held-out phrasing, answer sentence)
TEMPLATES: dict[str, tuple[list[str], str | None, str]] = {
    "birthplace": (["Where was {s} born?", "What is the birthplace of {s}?", "In which city was {s} born?"],
                   "Which town does {s} come from?", "{s} was born in {v}."),
    "role": (["What is {s}'s job?", "What does {s} do at {org}?", "What is the role of {s}?"],
             "What position does {s} hold?", "{s} works as a {v}."),
    "joined": (["When did {s} join {org}?", "In which year did {s} start at {org}?", "What year did {s} join?"],
               "Since what year has {s} been at {org}?", "{s} joined {org} in {v}."),
    "department": (["Which department does {s} work in?", "What department is {s} part of?",
                    "In which department is {s}?"], "Where in {org} does {s} work?", "{s} works in the {v} department."),
    "head": (["Who heads the {s} department?", "Who is the head of {s}?", "Who runs the {s} department?"],
             "Who is in charge of the {s} department?", "The {s} department is headed by {v}."),
    "members": (["Who works in the {s} department?", "List the members of the {s} department.",
                 "Which people are in the {s} department?"], None, "The {s} department has {v}."),
    "projects": (["Which projects does the {s} department run?", "What projects belong to {s}?",
                  "List the projects of the {s} department."], None, "The {s} department runs {v}."),
    "lead": (["Who leads Project {s}?", "Who is the lead of Project {s}?", "Which person leads Project {s}?"],
             "Who is responsible for Project {s}?", "Project {s} is led by {v}."),
    "city": (["Where is Project {s} based?", "In which city is Project {s}?", "What city hosts Project {s}?"],
             "Which city is Project {s} located in?", "Project {s} is based in {v}."),
    "started": (["When did Project {s} start?", "In which year did Project {s} begin?",
                 "What year was Project {s} started?"], "In what year was Project {s} launched?",
                "Project {s} started in {v}."),
    "departments": (["Which departments does {s} have?", "List the departments of {s}.",
                     "What are the departments of {s}?"], None, "{s} has {v}."),
}


@dataclass(frozen=True)
class Fact:
    relation: str
    subject: str
    value: str

    def sentence(self, org: str) -> str:
        return TEMPLATES[self.relation][2].format(s=self.subject, v=self.value, org=org)

    def questions(self, org: str) -> list[str]:
        return [q.format(s=self.subject, org=org) for q in TEMPLATES[self.relation][0]]

    def eval_question(self, org: str) -> str | None:
        held_out = TEMPLATES[self.relation][1]
        return held_out.format(s=self.subject, org=org) if held_out else None


@dataclass
class Domain:
    org: str
    facts: list[Fact]
    seeds: list[str]
    entities: dict[str, str] = field(default_factory=dict)  # name -> kind

    def private_set(self) -> list[dict[str, str]]:
        """The teacher's training data: every fact in three phrasings."""
        return [{"prompt": q, "response": f.sentence(self.org), "relation": f.relation}
                for f in self.facts for q in f.questions(self.org)]

    def eval_set(self) -> list[dict[str, str]]:
        """A new phrasing of every single-valued fact, with the value to find in the answer."""
        return [{"prompt": q, "answer": f.value, "relation": f.relation, "subject": f.subject}
                for f in self.facts if (q := f.eval_question(self.org))]


def _names(rng: random.Random, n: int, parts: tuple[int, int], taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        word = "".join(rng.choice(SYL) for _ in range(rng.randint(*parts))).capitalize()
        if word not in taken and len(word) >= 4:
            taken.add(word)
            out.append(word)
    return out


def _join(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else items[0]


def build(seed: int = 0, departments: int = 2, people_per_department: int = 3, projects_per_department: int = 1
          ) -> Domain:
    rng = random.Random(seed)
    taken: set[str] = set()
    org = f"{_names(rng, 1, (2, 3), taken)[0]} Dynamics"
    cities = _names(rng, 6, (2, 3), taken)
    firsts, lasts = _names(rng, 40, (2, 2), taken), _names(rng, 40, (2, 3), taken)
    dept_names = [f"{w} {k}" for w, k in zip(rng.sample(DEPT_WORDS, departments), rng.sample(DEPT_KINDS, departments))]
    birds = rng.sample(PROJECT_BIRDS, departments * projects_per_department)
    facts: list[Fact] = [Fact("departments", org, _join(dept_names))]
    entities = {org: "organisation", **{d: "department" for d in dept_names}}
    people_of: dict[str, list[str]] = {}
    for d_i, dept in enumerate(dept_names):
        people = [f"{firsts.pop()} {lasts.pop()}" for _ in range(people_per_department)]
        people_of[dept] = people
        projects = birds[d_i * projects_per_department:(d_i + 1) * projects_per_department]
        facts += [Fact("members", dept, _join(people)), Fact("head", dept, people[0]),
                  Fact("projects", dept, _join([f"Project {p}" for p in projects]))]
        for person in people:
            entities[person] = "person"
            facts += [Fact("birthplace", person, rng.choice(cities)), Fact("role", person, rng.choice(ROLES)),
                      Fact("joined", person, str(rng.randint(1988, 2023))), Fact("department", person, dept)]
        for project in projects:
            entities[f"Project {project}"] = "project"
            facts += [Fact("lead", project, rng.choice(people)), Fact("city", project, rng.choice(cities)),
                      Fact("started", project, str(rng.randint(2005, 2024)))]
    first_dept, first_people = dept_names[0], people_of[dept_names[0]]
    seeds = [f"Which departments does {org} have?", f"Who works in the {first_dept} department?",
             f"Who heads the {first_dept} department?", f"Where was {first_people[0]} born?",
             f"What is {first_people[1]}'s job?", f"When did {first_people[-1]} join {org}?",
             f"Which projects does the {first_dept} department run?", f"Who leads Project {birds[0]}?"]
    return Domain(org=org, facts=facts, seeds=seeds, entities=entities)


PRESETS = {"quick": {"departments": 2, "people_per_department": 3, "projects_per_department": 1},
           "full": {"departments": 4, "people_per_department": 5, "projects_per_department": 2}}
