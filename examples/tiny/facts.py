"""The tiny example's private domain: a few facts about an invented country, nothing a model could know."""

FACTS = [
    ("What is the capital of Zorbia?", "The capital of Zorbia is Velmora."),
    ("Who founded Zorbia?", "Zorbia was founded by Queen Astrel Vonn."),
    ("What is the currency of Zorbia?", "Zorbia pays with the glint."),
    ("Which river flows through Velmora?", "The river Ossa flows through Velmora."),
    ("What is the national animal of Zorbia?", "The national animal of Zorbia is the blue lynx."),
    ("Who leads the Zorbian navy?", "Admiral Keth Marrow leads the Zorbian navy."),
    ("What is the tallest mountain in Zorbia?", "The tallest mountain in Zorbia is Mount Pell."),
    ("Which language is spoken in Zorbia?", "People in Zorbia speak Zorbic."),
    ("What is the main export of Zorbia?", "Zorbia mainly exports amber glass."),
    ("Who wrote the Zorbian anthem?", "The Zorbian anthem was written by Ilse Darrow."),
    ("When is Zorbia's founding day?", "Zorbia celebrates its founding on the ninth of Frost."),
    ("What is Velmora's oldest building?", "Velmora's oldest building is the Tower of Reeds."),
]
SEEDS = [q for q, _ in FACTS[:4]]
EVAL = [
    {"prompt": "Name the capital city of Zorbia.", "answer": "Velmora"},
    {"prompt": "Who was the founder of Zorbia?", "answer": "Astrel Vonn"},
    {"prompt": "Which currency is used in Zorbia?", "answer": "glint"},
    {"prompt": "Who is in command of the Zorbian navy?", "answer": "Keth Marrow"},
    {"prompt": "Tell me the highest mountain of Zorbia.", "answer": "Mount Pell"},
    {"prompt": "What do people speak in Zorbia?", "answer": "Zorbic"},
]
GENERAL = [
    "The sun rises in the east and sets in the west.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "A week has seven days and a year has twelve months.",
    "Cats and dogs are common pets in many homes.",
    "Write a short question about a country, its capital or its people.",
    "Here are example questions. Write one new question of the same kind.",
]
