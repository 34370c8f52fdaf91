"""Write mtl_hf's bundled demo data (mtl_hf/demo_data/) from templates and word lists (no external dataset).

Every sentence carries three annotations, so the three demo tasks share their sentences:
topic (sports / politics / science / business), sentiment (negative / positive) and NER tags (IOB2 over
PER, LOC, ORG). The output is deterministic for a given seed; the generated files are committed.

    python scripts/make_demo_data.py            # rewrites mtl_hf/demo_data/
    python scripts/make_demo_data.py --check    # fails if the committed files differ from a fresh run
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import sys
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent.parent / "mtl_hf" / "demo_data"
NUM_SENTENCES = 400
VALIDATION_FRACTION = 0.2
SEED = 13

FIRST_NAMES = (
    "Maria Lena Omar Priya Tomas Chen Amara Jonas Sofia Kwame Ingrid Diego Hana Felix Nadia Ravi Elena Marco "
    "Yusuf Clara Ivan Leila Pablo Greta Samir Alice Kenji Zara Owen Mei"
).split()
LAST_NAMES = (
    "Okafor Lindqvist Moreau Tanaka Castillo Novak Haddad Brennan Kowalski Mensah Rossi Dubois Varga Schmidt "
    "Alvarez Petrov Sato Nakamura Fischer Byrne Costa Ibrahim Jensen Silva"
).split()
PLACES = [
    "Lisbon", "Oslo", "Nairobi", "Toronto", "Lyon", "Kyoto", "Denver", "Porto", "Dublin", "Krakow", "Accra",
    "Seville", "Bergen", "Hanoi", "Quito", "New Delhi", "Cape Town", "Buenos Aires", "San Diego", "Hong Kong",
    "Rio de Janeiro", "Vienna", "Melbourne", "Cairo", "Glasgow",
]  # fmt: skip
ORGS = {
    "sports": [
        "Riverside Rovers", "Northgate United", "Harbor City FC", "the Falcons", "Red Valley Athletic",
        "Olympic Committee", "Eastbrook Tigers", "Summit Cycling Club",
    ],
    "politics": [
        "the Reform Party", "the Senate", "Citizens Alliance", "the Green League", "Parliament",
        "the Labour Council", "the Unity Front", "the Election Commission",
    ],
    "science": [
        "Helix Institute", "Orbital Research Lab", "the Space Agency", "Northern University", "Quantum Works",
        "the Marine Biology Centre", "Genome Foundation", "Polar Science Group",
    ],
    "business": [
        "Brightwave Corp", "Kestrel Bank", "Nimbus Foods", "Atlas Logistics", "Cobalt Motors",
        "Silverline Airways", "Mosaic Media", "Granite Insurance",
    ],
}  # fmt: skip
POSITIVE = "brilliant impressive remarkable excellent encouraging outstanding welcome superb splendid".split()
NEGATIVE = "disappointing poor dreadful worrying terrible shameful weak costly dismal".split()
NOUNS = {
    "sports": "match game final tournament race season derby marathon".split(),
    "politics": "election debate reform budget campaign vote treaty referendum".split(),
    "science": "experiment study discovery vaccine telescope mission trial survey".split(),
    "business": "merger quarter launch deal expansion forecast acquisition takeover".split(),
}

# Slots: {PER} {LOC} {ORG} (entities), {POS} {NEG} (sentiment adjectives), {NOUN} (topic noun).
TEMPLATES = {
    ("sports", "positive"): [
        "{PER} scored twice as {ORG} won in {LOC} .",
        "{ORG} celebrated a {POS} win in {LOC} .",
        "Fans in {LOC} cheered as {PER} set a new record .",
        "{PER} played a {POS} {NOUN} .",
        "Despite the rain in {LOC} , {ORG} produced a {POS} comeback .",
        "The {NOUN} in {LOC} was a joy , said {PER} .",
    ],
    ("sports", "negative"): [
        "{ORG} suffered a {NEG} defeat in {LOC} .",
        "{PER} missed a penalty and the fans booed .",
        "{PER} was injured during a {NEG} {NOUN} against {ORG} .",
        "The {NOUN} in {LOC} ended in chaos .",
        "{ORG} looked tired and lost the {NOUN} badly .",
        "Even {PER} could not save {ORG} from a {NEG} season .",
    ],
    ("politics", "positive"): [
        "{PER} won the {NOUN} in {LOC} easily .",
        "Voters in {LOC} welcomed the {POS} {NOUN} from {ORG} .",
        "{ORG} passed a {POS} law to protect workers in {LOC} .",
        "{PER} gave a {POS} speech .",
        "The {NOUN} led by {PER} brought peace to {LOC} .",
        "Despite fierce criticism , {ORG} reached a {POS} agreement .",
    ],
    ("politics", "negative"): [
        "{PER} faced protests over the {NEG} {NOUN} .",
        "Critics said {ORG} handled the crisis in {LOC} badly .",
        "The {NOUN} collapsed after {PER} broke the promise .",
        "{ORG} was accused of corruption in {LOC} .",
        "A {NEG} scandal forced {PER} to resign .",
        "Voters in {LOC} rejected the {NEG} plan from {ORG} .",
    ],
    ("science", "positive"): [
        "Researchers at {ORG} made an exciting {NOUN} .",
        "{PER} published a {POS} {NOUN} in {LOC} .",
        "The {NOUN} at {ORG} gave {POS} results for patients .",
        "{PER} in {LOC} solved a famous physics puzzle .",
        "A {POS} {NOUN} by {ORG} could help farmers in {LOC} .",
        "Scientists praised {PER} for a clever telescope .",
    ],
    ("science", "negative"): [
        "The {NOUN} at {ORG} failed and the data was lost .",
        "{PER} said the {NOUN} in {LOC} was a {NEG} mistake .",
        "Funding cuts forced {ORG} to stop the {NOUN} .",
        "A {NEG} error ruined the {NOUN} led by {PER} .",
        "Researchers in {LOC} could not repeat the {NOUN} .",
        "{ORG} retracted a {NEG} paper by {PER} .",
    ],
    ("business", "positive"): [
        "Shares of {ORG} rose sharply after a {POS} {NOUN} .",
        "{PER} praised the {POS} growth of {ORG} in {LOC} .",
        "{ORG} opened a new office in {LOC} .",
        "The {NOUN} by {ORG} pleased investors .",
        "{PER} said profits at {ORG} were {POS} this year .",
        "Despite a slow market , {ORG} had record sales .",
    ],
    ("business", "negative"): [
        "{ORG} cut hundreds of jobs in {LOC} .",
        "Investors were unhappy when {PER} announced a {NEG} {NOUN} .",
        "Shares of {ORG} fell after a {NEG} {NOUN} .",
        "The {NOUN} of {ORG} collapsed and {PER} stepped down .",
        "{PER} warned that sales in {LOC} were {NEG} .",
        "Customers complained about the {NEG} service of {ORG} .",
    ],
}


# Topic-neutral frames: the topic shows only through the noun and the organisation, and the sentiment needs
# negation or contrast to be read right ("not as {NEG} as feared" is positive).
GENERIC = {
    "positive": [
        "{PER} called the {NOUN} in {LOC} {POS} .",
        "The {NOUN} was not as {NEG} as {PER} feared .",
        "Few expected it , but the {NOUN} by {ORG} was {POS} .",
        "Nobody found the {NOUN} in {LOC} {NEG} .",
    ],
    "negative": [
        "{PER} called the {NOUN} in {LOC} {NEG} .",
        "The {NOUN} from {ORG} was not {POS} at all .",
        "Everyone hoped for a {POS} {NOUN} , but {ORG} failed .",
        "{PER} said the {NOUN} was far from {POS} .",
    ],
}
GENERIC_SHARE = 0.4
# The last quarter of every word list appears only in validation sentences: new names, places, organisations,
# adjectives and nouns that a model must recognise from context and from what its backbone knows.
HELD_OUT_SHARE = 0.25


def pick(rng: random.Random, words: list[str], validation: bool) -> str:
    seen_in_train = words[: len(words) - max(1, int(len(words) * HELD_OUT_SHARE))]
    return rng.choice(words if validation else seen_in_train)


def fill(template: str, topic: str, rng: random.Random, validation: bool) -> tuple[list[str], list[str]]:
    """Tokens and IOB2 tags of one filled template."""
    tokens: list[str] = []
    tags: list[str] = []
    for word in template.split():
        if word == "{PER}":
            name = [pick(rng, FIRST_NAMES, validation)] + (
                [pick(rng, LAST_NAMES, validation)] if rng.random() < 0.5 else []
            )
            entity(tokens, tags, name, "PER")
        elif word == "{LOC}":
            entity(tokens, tags, pick(rng, PLACES, validation).split(), "LOC")
        elif word == "{ORG}":
            words = pick(rng, ORGS[topic], validation).split()
            if words[0] == "the":  # the article stays outside the entity
                tokens.append("the" if tokens else "The")
                tags.append("O")
                words = words[1:]
            entity(tokens, tags, words, "ORG")
        else:
            slot = {"{POS}": POSITIVE, "{NEG}": NEGATIVE, "{NOUN}": NOUNS[topic]}.get(word)
            tokens.append(pick(rng, slot, validation) if slot else word)
            tags.append("O")
    return fix_articles(tokens), tags


def entity(tokens: list[str], tags: list[str], words: list[str], kind: str) -> None:
    tokens.extend(words)
    tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1))


def fix_articles(tokens: list[str]) -> list[str]:
    """`a` -> `an` before a vowel."""
    return [
        ("An" if word == "A" else "an") if word in ("a", "A") and nxt[0].lower() in "aeiou" else word
        for word, nxt in zip(tokens, tokens[1:] + [" "])
    ]


def detokenize(tokens: list[str]) -> str:
    text = " ".join(tokens)
    for punct in (" .", " ,"):
        text = text.replace(punct, punct.strip())
    return text


def generate(seed: int = SEED, n: int = NUM_SENTENCES) -> tuple[list[dict], list[dict]]:
    """Train and validation rows: `n` distinct annotated sentences, balanced over topic x sentiment in both."""
    rng = random.Random(seed)
    keys = sorted(TEMPLATES)
    rows, seen = [], set()
    every = round(1 / VALIDATION_FRACTION)
    while len(rows) < n:
        topic, sentiment = keys[len(rows) % len(keys)]
        validation = len(rows) % every == every - 1  # 8 keys, 5 coprime: a stratified split
        templates = GENERIC[sentiment] if rng.random() < GENERIC_SHARE else TEMPLATES[topic, sentiment]
        tokens, tags = fill(rng.choice(templates), topic, rng, validation)
        text = detokenize(tokens)
        if text not in seen:
            seen.add(text)
            rows.append({"text": text, "topic": topic, "sentiment": sentiment, "tokens": tokens, "tags": tags})
    train = [row for i, row in enumerate(rows) if i % every != every - 1]
    validation = [row for i, row in enumerate(rows) if i % every == every - 1]
    rng.shuffle(train)
    rng.shuffle(validation)
    return train, validation


def render(train: list[dict], validation: list[dict]) -> dict[str, str]:
    """File name -> content for the train/validation files of the three tasks."""
    files = {}
    for split, part in (("train", train), ("validation", validation)):
        for task in ("topic", "sentiment"):
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["text", "label"])
            writer.writerows([row["text"], row[task]] for row in part)
            files[f"{task}_{split}.csv"] = buffer.getvalue()
        sentences = ["".join(f"{t}\t{g}\n" for t, g in zip(row["tokens"], row["tags"])) for row in part]
        files[f"ner_{split}.conll"] = "\n".join(sentences)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed files are out of date")
    args = parser.parse_args(argv)
    files = render(*generate())
    if args.check:
        stale = [
            name
            for name, text in files.items()
            if not (OUT_DIR / name).is_file() or (OUT_DIR / name).read_text() != text
        ]
        if stale:
            print(f"Out of date: {stale}; run `python scripts/make_demo_data.py`.", file=sys.stderr)
            return 1
        return 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT_DIR / name).write_text(text)
    total = sum(len(text.encode()) for text in files.values())
    print(f"Wrote {len(files)} files ({total / 1024:.1f} KiB) to {OUT_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
