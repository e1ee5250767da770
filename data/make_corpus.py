"""Write data/corpus.txt, the default training corpus of min-char-rnn.

A small seeded grammar writes simple English stories, dialogues and descriptions with a few
Korean lines, so a character-level RNN learns real words and spacing within minutes.
Every word comes from the lists in data/corpus_words.py: no outside text is used.

Usage, from the repo root:
    python data/make_corpus.py            # (re)write data/corpus.txt
    python data/make_corpus.py --check    # exit 1 if data/corpus.txt is out of date

References:
    https://gist.github.com/karpathy/d4dee566867f8291f086 (min-char-rnn)
    https://docs.python.org/3/library/random.html#notes-on-reproducibility
"""
import argparse
import hashlib
import os
import random
import sys

from corpus_words import (ADVERBS, ANIMALS, between, chance, COLORS, DAYS, DRINKS, EVENTS,
                          FEELINGS, FOODS, HABIT_TIMES, INTRANSITIVE, IRREGULAR_PLURALS,
                          KO_GREETINGS, KO_OBJECT_VERBS, KO_PLACES, KO_SPEAKERS, KO_SUBJECTS,
                          KO_TIMES, NAMES, NUMBERS, OBJECT, PAST_TIMES, PEOPLE, pick, PLACES,
                          POSSESSIVE, QUALITIES, READABLE, SITES, SIZES, SNACKS, SPOTS, SUBJECT,
                          THING_ADJECTIVES, THINGS, TIMES, TRANSITIVE, WHERE)
from download_shakespeare import write_atomically

SEED = 20240521  # fixed: the corpus must be the same bytes on every machine
TARGET_BYTES = 500_000  # stop after the paragraph that reaches this many UTF-8 bytes
LINE_WIDTH = 72  # prose paragraphs are wrapped to lines of at most this many characters
KOREAN_SHARE = 0.09  # share of paragraphs written in Korean (about 4% of the lines)
NOTES_SHARE = 0.07  # share of notes: times, prices, sums, addresses, file names (the corpus
#                     must hold the digits and every printable ASCII sign English text uses)
DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus.txt")

# ---------------------------------------------------------------------------------------------
# Small grammar helpers.


def capital(text):
    """text with its first letter in upper case."""
    return text[0].upper() + text[1:]


def a_an(phrase):
    """phrase with "a" or "an" in front of it."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def plural(noun):
    """The plural of a noun from the lists above."""
    if noun in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "sh", "ch")):
        return noun + "es"
    return noun + "s"


def with_adjective(rng, noun, adjectives, p=0.5):
    """noun, with a random adjective from the list in front of it with probability p."""
    return pick(rng, adjectives) + " " + noun if chance(rng, p) else noun


def object_phrase(rng, kinds, definite=False):
    """A noun phrase for a verb's object, e.g. "the red kite", "some milk", "a little fox".

    kinds is a string of object kinds (see TRANSITIVE); definite=True always uses "the".
    """
    kind = pick(rng, kinds)
    if kind in "edf":
        # Foods and drinks are uncountable: "some milk", "the soup", "tea".
        food = pick(rng, {"e": FOODS, "d": DRINKS, "f": FOODS + DRINKS}[kind])
        return ("the " if definite else pick(rng, ["some ", "the ", "some ", ""])) + food
    if kind == "r":
        noun = pick(rng, READABLE)
    elif kind == "a":
        noun = with_adjective(rng, pick(rng, ANIMALS), SIZES + COLORS + FEELINGS[:6], 0.4)
    elif kind == "s":
        noun = with_adjective(rng, pick(rng, SNACKS), ["big", "small", "sweet", "fresh"], 0.3)
    else:
        noun = with_adjective(rng, pick(rng, THINGS), THING_ADJECTIVES)
    return "the " + noun if definite else pick(rng, [a_an(noun), "the " + noun, "the " + noun])


def someone(rng):
    """A (name, pronoun) pair for one of the recurring characters."""
    return pick(rng, NAMES)


def other_than(rng, person):
    """A recurring character other than person."""
    while True:
        other = pick(rng, NAMES)
        if other != person:
            return other


def wrap(text, width=LINE_WIDTH):
    """text broken at spaces into lines of at most width characters, joined with newlines."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = line + " " + word if line else word
    lines.append(line)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Present-tense descriptions: each function returns one sentence.


def there_is(rng):
    if chance(rng, 0.5):
        noun = with_adjective(rng, pick(rng, THINGS + ANIMALS), THING_ADJECTIVES, 0.6)
        return "There is " + a_an(noun) + " " + pick(rng, SPOTS + WHERE) + "."
    noun = plural(pick(rng, THINGS + ANIMALS + SNACKS))
    return "There are " + pick(rng, NUMBERS) + " " + noun + " " + pick(rng, WHERE) + "."


def the_thing_is(rng):
    noun = pick(rng, THINGS)
    if chance(rng, 0.5):
        return "The " + noun + " is " + pick(rng, THING_ADJECTIVES) + "."
    return ("The " + noun + " is " + pick(rng, THING_ADJECTIVES) + " and "
            + pick(rng, THING_ADJECTIVES) + ".")


def habit(rng):
    name, _ = someone(rng)
    verb = pick(rng, TRANSITIVE)
    sentence = name + " " + verb[1] + " " + object_phrase(rng, verb[3])
    if chance(rng, 0.4):
        sentence += " " + pick(rng, HABIT_TIMES)
    return sentence + "."


def animals_do(rng):
    animal = pick(rng, ANIMALS)
    verb = pick(rng, INTRANSITIVE[:15])
    if chance(rng, 0.5):
        return "The " + animal + " " + verb[1] + " " + pick(rng, WHERE) + "."
    return capital(plural(animal)) + " " + verb[0] + " " + pick(rng, ADVERBS) + "."


def we_do(rng):
    who = pick(rng, ["I", "we", "they", "you"])
    verb = pick(rng, TRANSITIVE)
    sentence = who + " " + verb[0] + " " + object_phrase(rng, verb[3])
    if chance(rng, 0.5):
        sentence = capital(pick(rng, TIMES + HABIT_TIMES)) + ", " + sentence
    return capital(sentence) + "."


def family(rng):
    name, he = someone(rng)
    person = pick(rng, PEOPLE)
    where, whither = pick(rng, PLACES)
    r = rng.random()
    if r < 0.4:
        return name + " has " + a_an(pick(rng, FEELINGS[9:] + QUALITIES[-4:]) + " " + person) + "."
    if r < 0.7:
        verb = pick(rng, ["works", "lives", "waits"])
        return name + "'s " + person + " " + verb + " " + where + "."
    return name + "'s " + person + " goes " + whither + " " + pick(rng, HABIT_TIMES) + "."


def feeling(rng):
    name, _ = someone(rng)
    sentence = name + " is " + pick(rng, FEELINGS)
    if chance(rng, 0.5):
        sentence += " " + pick(rng, ["today", "now", "again", "this morning"])
    return sentence + "."


DESCRIPTIONS = [there_is, the_thing_is, habit, animals_do, we_do, family, feeling]


def description_paragraph(rng):
    """A few present-tense sentences, wrapped into lines."""
    sentences = [pick(rng, DESCRIPTIONS)(rng) for _ in range(between(rng, 3, 6))]
    return wrap(" ".join(sentences))


# ---------------------------------------------------------------------------------------------
# Dialogues: each function returns a question and an answer, without the quotes.


def ask_where(rng):
    noun = with_adjective(rng, pick(rng, THINGS), COLORS + SIZES, 0.4)
    answer = pick(rng, ["It is " + pick(rng, SPOTS) + ".", "I do not know.",
                        "I think it is " + pick(rng, SPOTS) + ".",
                        "Look " + pick(rng, SPOTS) + "."])
    return "Where is my " + noun + "?", answer


def ask_like(rng):
    thing = pick(rng, [plural(pick(rng, ANIMALS + SNACKS)), pick(rng, FOODS)])
    answer = pick(rng, ["Yes, I do.", "No, I do not.", "Yes, I like " + thing + " very much.",
                        "Not really.", "I love " + thing + "!"])
    return "Do you like " + thing + "?", answer


def ask_box(rng):
    noun = with_adjective(rng, pick(rng, THINGS + ANIMALS), THING_ADJECTIVES, 0.7)
    return "What is in the box?", pick(rng, [capital(a_an(noun)) + "!", "Open it and see.",
                                              "It is " + a_an(noun) + "."])


def ask_go(rng):
    where, whither = pick(rng, PLACES)
    answer = pick(rng, ["Yes, we can go " + pick(rng, TIMES) + ".",
                        "Not today. It is too " + pick(rng, ["cold", "late", "wet", "dark"]) + ".",
                        "Yes, but come back before dinner.",
                        "Ask your " + pick(rng, PEOPLE) + "."])
    return "Can we go " + whither + "?", answer


def ask_who(rng):
    verb = pick(rng, TRANSITIVE)
    answer = pick(rng, [someone(rng)[0] + " did.", "It was the " + pick(rng, ANIMALS) + "!",
                        "Not me!", "I did. I am sorry."])
    return "Who " + verb[2] + " " + object_phrase(rng, verb[3], definite=True) + "?", answer


def ask_how(rng):
    mood = pick(rng, FEELINGS)
    return "How are you?", pick(rng, ["I am " + mood + ", thank you.", "Very well, thank you.",
                                      "I am " + mood + "."])


def ask_doing(rng):
    verb = pick(rng, INTRANSITIVE)
    return "What are you doing?", "I am " + verb[3] + " " + pick(rng, WHERE) + "."


QUESTIONS = [ask_where, ask_like, ask_box, ask_go, ask_who, ask_how, ask_doing]


def quote(rng, line, speaker):
    """One line of dialogue with its speaker, e.g. '"Is it here?" asked Mia.'"""
    if line.endswith("."):
        said = "said"
        inner = line[:-1] + ","  # "It is here," said Ben.
    else:
        said = "asked" if line.endswith("?") else pick(rng, ["said", "shouted"])
        inner = line
    if chance(rng, 0.25):
        return speaker + " " + said + ", \"" + line + "\""
    if chance(rng, 0.3):
        return "\"" + inner + "\" " + speaker + " " + said + "."
    return "\"" + inner + "\" " + said + " " + speaker + "."


def dialogue_paragraph(rng):
    """Two characters talking: one quoted line per text line."""
    first = someone(rng)
    second = other_than(rng, first)
    lines = []
    if chance(rng, 0.4):
        greeting = pick(rng, ["Good morning", "Hello", "Hi", "Good evening"])
        lines.append(quote(rng, greeting + ", " + second[0] + "!", first[0]))
    for _ in range(between(rng, 1, 3)):
        question, answer = pick(rng, QUESTIONS)(rng)
        lines.append(quote(rng, question, first[0]))
        lines.append(quote(rng, answer, second[0]))
        first, second = second, first
    if chance(rng, 0.3):
        lines.append(quote(rng, pick(rng, ["Thank you.", "Good night.", "See you later.",
                                           "Let us go."]), first[0]))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Stories: a few past-tense sentences around one character and one animal or thing.


def story_paragraph(rng):
    """A short story of 5 to 10 sentences, wrapped into lines."""
    hero, he = someone(rng)
    friend, _ = other_than(rng, (hero, he))
    she = SUBJECT[he]
    where, whither = pick(rng, PLACES)
    animal = pick(rng, ANIMALS)
    thing = pick(rng, THINGS)
    out = []

    # Opening: when and where.
    opening = pick(rng, [capital(pick(rng, PAST_TIMES)) + ", " + hero + " went " + whither + ".",
                         "Once upon a time, " + hero + " lived in a " + pick(rng, SIZES[:4])
                         + " house " + pick(rng, WHERE[:18]) + ".",
                         hero + " was " + where + " " + pick(rng, TIMES + PAST_TIMES[:3]) + "."])
    out.append(opening)

    if chance(rng, 0.6):
        # An animal that needs help.
        mood = pick(rng, FEELINGS[:8])
        out.append("There " + she + " " + pick(rng, ["saw", "found", "met"]) + " "
                   + a_an(pick(rng, SIZES[:4] + COLORS) + " " + animal) + ".")
        other_mood = pick(rng, FEELINGS[:8])
        also = "" if other_mood == mood or chance(rng, 0.5) else " and " + other_mood
        out.append("The " + animal + " was " + mood + also + ".")
        if chance(rng, 0.6):
            words = pick(rng, ["Hello, little " + animal + ".", "Are you " + mood + "?",
                               "Do not be scared.", "Come with me."])
            out.append(quote(rng, words, hero))
        food = pick(rng, FOODS + DRINKS)
        out.append(capital(she) + " " + pick(rng, ["gave it some " + food + ".",
                                                 "took it home.",
                                                 "sat with it for a while.",
                                                 "made it a bed in " + a_an("box") + ".",
                                                 "called " + friend + " to help."]))
        verb = pick(rng, INTRANSITIVE[:15])
        out.append("The " + animal + " " + verb[2] + " " + pick(rng, ADVERBS) + ".")
        out.append(pick(rng, ["After that, " + hero + " and the " + animal + " were good friends.",
                              hero + " was very " + pick(rng, ["happy", "glad", "proud"]) + ".",
                              "Then they all went home for dinner.",
                              "Every day after that, the " + animal + " came to see "
                              + OBJECT[he] + "."]))
    else:
        # A lost thing that is found again.
        adjective = pick(rng, COLORS + SIZES[:4])
        out.append(hero + " lost " + POSSESSIVE[he] + " " + adjective + " " + thing + ".")
        out.append(capital(she) + " looked " + pick(rng, SPOTS) + ", but it was not there.")
        out.append("\"Where is my " + thing + "?\" " + she + " asked.")
        out.append(friend + " " + pick(rng, ["helped " + OBJECT[he] + " look for it.",
                                             "came to help.", "said, \"I will help you.\""]))
        out.append("At last they found it " + pick(rng, SPOTS + WHERE) + ".")
        verb = pick(rng, INTRANSITIVE[:15])
        out.append(hero + " and " + friend + " " + verb[2] + " together.")
    if chance(rng, 0.2):
        out.append("The end.")
    return wrap(" ".join(out))


# ---------------------------------------------------------------------------------------------
# Notes: the digits and the signs of everyday writing (times, prices, sums, addresses, paths).

def clock(rng):
    """A time of day such as 9:05 or 17:30."""
    return str(between(rng, 7, 20)) + ":" + pick(rng, ["00", "05", "15", "30", "45", "50"])


def price(rng):
    """A price such as $3.50."""
    return "$" + str(between(rng, 1, 40)) + "." + pick(rng, ["00", "25", "50", "75", "99"])


def note_line(rng):
    """One line of a note; together the kinds use every printable ASCII sign."""
    person = someone(rng)
    name, friend = person[0], other_than(rng, person)[0]
    a, b, c = between(rng, 2, 12), between(rng, 2, 12), between(rng, 1, 9)
    kind = between(rng, 0, 9)
    if kind == 0:
        return (pick(rng, DAYS) + ", " + clock(rng) + " - " + pick(rng, EVENTS) + " ("
                + pick(rng, WHERE) + ").")
    if kind == 1:
        return ("Shopping list: " + str(a) + " " + plural(pick(rng, SNACKS)) + ", "
                + pick(rng, FOODS) + " & " + pick(rng, DRINKS) + "; about " + price(rng) + ".")
    if kind == 2:
        return (f"Score: {name} {a}, {friend} {b} ({100 * a // (a + b)}% of the points for "
                f"{name}).")
    if kind == 3:
        return f"Homework: {a} + {b} = {a + b}; {a} - {c} = {a - c}; {a} * {b} = {a * b}; " \
               f"{a * c} / {c} = {a}."
    if kind == 4:
        return f"Check: {c} < {a + 9} and {a + 9} > {c}; 2^{c} = {2 ** c}."
    if kind == 5:
        site = pick(rng, SITES)
        return (f"Write to {name.lower()}@{site}.org or visit www.{site}-{pick(rng, DAYS)[:3].lower()}"
                f".net/news (answers by {clock(rng)}).")
    if kind == 6:
        return f"Saved as notes_{a}{b}.txt in ~/{name.lower()}/ (type `ls ~/{name.lower()}` " \
               f"to see it; on Windows, C:\\Users\\{name}\\notes)."
    if kind == 7:
        return (f"Tags: #{pick(rng, ANIMALS)} #{pick(rng, EVENTS).split()[0]} [{pick(rng, ['done', 'todo', 'maybe'])}] "
                f"{{{pick(rng, COLORS)}, {pick(rng, COLORS)}}}")
    if kind == 8:
        return ("Pick one: " + " | ".join(pick(rng, SNACKS) for _ in range(3)) + ". "
                + capital(pick(rng, ["quick", "zany", "quiet"])) + " question: who is next?")
    return (f"Q: {pick(rng, ['Is', 'Was'])} the {pick(rng, ANIMALS)} {pick(rng, FEELINGS)}? "
            f"A: Yes! It slept ~{a} hours; Quinn says \"zero\" is wrong.")


def notes_paragraph(rng):
    """A note of 2 to 4 lines."""
    return "\n".join(note_line(rng) for _ in range(between(rng, 2, 4)))


# ---------------------------------------------------------------------------------------------
# Korean lines.


def korean_sentence(rng):
    kind = between(rng, 0, 4)
    if kind == 0:
        return (pick(rng, KO_TIMES) + " " + pick(rng, KO_SUBJECTS) + " " + pick(rng, KO_PLACES)
                + " 갑니다.")
    if kind == 1:
        return "어제 " + pick(rng, KO_SUBJECTS) + " " + pick(rng, KO_PLACES) + " 갔습니다."
    if kind == 2:
        obj, verb = pick(rng, KO_OBJECT_VERBS)
        return pick(rng, KO_SUBJECTS) + " " + obj + " " + verb + "."
    if kind == 3:
        return pick(rng, ["오늘 ", "아침에 ", ""]) + "날씨가 좋습니다."
    return "\"" + pick(rng, KO_GREETINGS) + "\" " + pick(rng, KO_SPEAKERS) + " 말했습니다."


def korean_paragraph(rng):
    """One or two lines of short Korean sentences."""
    lines = [" ".join(korean_sentence(rng) for _ in range(between(rng, 1, 3)))
             for _ in range(between(rng, 1, 2))]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The corpus.


def make_corpus(seed=SEED, target_bytes=TARGET_BYTES):
    """The corpus text (a str) for this seed: paragraphs separated by blank lines.

    Paragraphs are added until the UTF-8 size reaches target_bytes. Pure: writes nothing.
    """
    rng = random.Random(seed)
    paragraphs, size = [], 0
    while size < target_bytes:
        r = rng.random()
        if r < KOREAN_SHARE:
            paragraph = korean_paragraph(rng)
        elif r > 1 - NOTES_SHARE:
            paragraph = notes_paragraph(rng)
        elif r < KOREAN_SHARE + 0.35:
            paragraph = story_paragraph(rng)
        elif r < KOREAN_SHARE + 0.65:
            paragraph = dialogue_paragraph(rng)
        else:
            paragraph = description_paragraph(rng)
        paragraphs.append(paragraph)
        size += len(paragraph.encode("utf-8")) + 2  # +2 for the blank line after it
    return "\n\n".join(paragraphs) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write the default training corpus.")
    parser.add_argument("--output", type=str, default=DEFAULT_OUTPUT,
                        help="path of the corpus file (default: data/corpus.txt)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the file differs from a fresh build")
    args = parser.parse_args(argv)

    text = make_corpus()
    data = text.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    if args.check:
        try:
            with open(args.output, "rb") as f:
                on_disk = f.read()
        except OSError as e:
            print(f"make_corpus: cannot read {args.output} ({e.strerror}): "
                  "run python data/make_corpus.py", file=sys.stderr)
            return 1
        if on_disk != data:
            print(f"make_corpus: {args.output} is out of date (sha256 "
                  f"{hashlib.sha256(on_disk).hexdigest()[:12]}, expected {digest[:12]}): "
                  "run python data/make_corpus.py", file=sys.stderr)
            return 1
        print(f"make_corpus: {args.output} is up to date (sha256 {digest})")
        return 0

    write_atomically(args.output, data)
    print(f"wrote {args.output}: {len(data):,} bytes, {len(text):,} characters, "
          f"{len(set(text))} distinct characters, {text.count(chr(10)):,} lines")
    print(f"sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
