"""English sentences for the TTS source: a small seeded grammar, so every transcript is known.

The transcripts feed the character-accuracy metric later, so sentences are written the way an
ASR system prints them: numbers and times as words, no abbreviations, plain punctuation.
Templates mix statements, questions, instructions and lists so speaking rate and prosody
vary; `sentences(n, rng)` never returns the same sentence twice within one call.
"""
from __future__ import annotations

import numpy as np

_NAMES = ["Anna", "Peter", "Maria", "James", "Sofia", "David", "Laura", "Thomas", "Helen", "Robert",
          "Julia", "Daniel", "Emma", "Victor", "Clara", "Samuel", "Nora", "Oliver", "Grace", "Henry"]
_PEOPLE = ["the teacher", "my neighbour", "the old farmer", "a young doctor", "the pilot", "our guide",
           "the baker", "her brother", "the engineer", "a tired student", "the captain", "my uncle",
           "the nurse", "the driver", "a quiet child", "the manager"]
_THINGS = ["the red umbrella", "a wooden box", "the morning train", "a cup of tea", "the kitchen window",
           "an old map", "the garden gate", "a blue bicycle", "the last letter", "a heavy suitcase",
           "the silver key", "a loaf of bread", "the paper lantern", "a bowl of soup", "the broken clock",
           "a small boat", "the green jacket", "a bag of apples", "the winter coat", "a box of matches"]
_PLACES = ["at the station", "near the river", "in the library", "behind the house", "on the hill",
           "at the market", "in the small village", "by the harbour", "under the bridge", "in the city centre",
           "at the end of the road", "in the forest", "on the second floor", "next to the school"]
_VERBS_T = ["found", "carried", "painted", "repaired", "forgot", "opened", "cleaned", "sold", "borrowed",
            "dropped", "noticed", "brought", "packed", "checked", "ordered", "moved"]
_VERBS_I = ["waited", "laughed", "walked home", "slept", "sang quietly", "worked late", "stayed inside",
            "ran ahead", "listened carefully", "arrived early", "turned around", "sat down"]
_ADVERBS = ["slowly", "quickly", "carefully", "yesterday", "this morning", "last night", "again",
            "without a word", "before dinner", "after the storm", "once more", "at last"]
_ADJS = ["cold", "bright", "quiet", "busy", "warm", "strange", "calm", "noisy", "beautiful", "empty"]
_TIMES = ["seven", "eight thirty", "half past nine", "ten fifteen", "noon", "six in the evening",
          "a quarter to five", "eleven", "two o'clock", "midnight"]
_NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve",
            "fifteen", "twenty", "thirty", "forty two", "one hundred"]
_WEATHER = ["rain", "snow", "wind", "sunshine", "fog", "a storm", "thunder"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

_TEMPLATES = [
    "{Person} {vt} {thing} {place}.",
    "{Name} {vt} {thing} {adv}.",
    "{Name} {vi} {place} {adv}.",
    "Did {person} really {vt_base} {thing}?",
    "Please bring {thing} to {name} before {time}.",
    "The meeting starts at {time} on {day}, so do not be late.",
    "We counted {num} birds {place} this morning.",
    "It was a {adj} day, and {person} {vi}.",
    "Why did {name} leave {thing} {place}?",
    "After the {weather_n}, {person} {vt} {thing}.",
    "There were {num} people waiting {place}.",
    "Can you tell {name} that the train leaves at {time}?",
    "{Name} said that {thing} was too {adj} for the trip.",
    "If the weather is {adj} on {day}, we will meet {place}.",
    "First open {thing}, then wait for {name}, and finally call {person}.",
    "The forecast for {day} says {weather} and a {adj} evening.",
    "I think {person} {vt} {thing} {adv}, but nobody saw it.",
    "How many days does it take to walk from the village to the sea?",
    "{Name} and {name2} {vi} {place}.",
    "Turn left {place} and walk for about {num} minutes.",
]

_BASE = {"found": "find", "carried": "carry", "painted": "paint", "repaired": "repair", "forgot": "forget",
         "opened": "open", "cleaned": "clean", "sold": "sell", "borrowed": "borrow", "dropped": "drop",
         "noticed": "notice", "brought": "bring", "packed": "pack", "checked": "check", "ordered": "order",
         "moved": "move"}


def _pick(rng: np.random.Generator, items: list[str]) -> str:
    return items[int(rng.integers(len(items)))]


def sentence(rng: np.random.Generator) -> str:
    """One sentence drawn from the grammar with `rng`."""
    tpl = _pick(rng, _TEMPLATES)
    vt = _pick(rng, _VERBS_T)
    name = _pick(rng, _NAMES)
    name2 = _pick(rng, [n for n in _NAMES if n != name])
    person = _pick(rng, _PEOPLE)
    fields = dict(
        person=person, Person=person[0].upper() + person[1:], name=name, Name=name, name2=name2,
        thing=_pick(rng, _THINGS), place=_pick(rng, _PLACES), vt=vt, vt_base=_BASE[vt],
        vi=_pick(rng, _VERBS_I), adv=_pick(rng, _ADVERBS), adj=_pick(rng, _ADJS), time=_pick(rng, _TIMES),
        num=_pick(rng, _NUMBERS), weather=_pick(rng, _WEATHER), day=_pick(rng, _DAYS),
    )
    fields["weather_n"] = fields["weather"].removeprefix("a ")
    s = tpl.format(**fields)
    return s[0].upper() + s[1:]


def sentences(n: int, rng: np.random.Generator, exclude: set[str] | None = None,
              max_join: int = 2) -> list[str]:
    """`n` distinct utterance texts; some join up to `max_join` sentences for longer utterances.

    `exclude` holds texts another split already uses, so train/validation/test texts never repeat.
    """
    seen = set(exclude or ())
    out: list[str] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * max(n, 1) + 1000:
            raise RuntimeError(f"sentence grammar exhausted after {len(out)} of {n} distinct sentences")
        k = 1 + int(rng.integers(max_join)) if max_join > 1 else 1
        text = " ".join(sentence(rng) for _ in range(k))
        if text in seen:
            continue
        seen.add(text)
        out.append(text)
    return out
