"""
The words data/make_corpus.py writes its corpus with, and the seeded picks among them: names and
their pronouns, nouns by kind, places, times, adjectives, verbs with their forms and the kinds of
object they take, a few Korean sentence parts, and the days, events and sites of the notes.
Changing any of them changes the corpus (make_corpus.py --check says so).
"""


# ---------------------------------------------------------------------------------------------
# Random picks. Python promises that Random(seed).random() gives the same numbers in every
# version; choice(), sample() and shuffle() carry no such promise, so every pick below is built
# from random() alone.


def pick(rng, items):
    """One element of the list items, each equally likely."""
    return items[int(rng.random() * len(items))]


def chance(rng, p):
    """True with probability p."""
    return rng.random() < p


def between(rng, low, high):
    """An int in low..high, both ends included."""
    return low + int(rng.random() * (high - low + 1))


def verbs(table):
    """A table of verbs, four words a verb, verbs apart by "|" -> [(word, word, word, word)]."""
    return [tuple(v.split()) for v in table.replace("\n", " | ").split("|") if v.strip()]


# Recurring characters, with the pronoun used for them
NAMES = [("Anna", "she"), ("Ben", "he"), ("Tom", "he"), ("Mia", "she"), ("Sam", "he"),
         ("Lucy", "she"), ("Max", "he"), ("Ella", "she"), ("Jack", "he"), ("Rosa", "she"),
         ("Leo", "he"), ("Nina", "she"), ("Zoe", "she"), ("Quinn", "he"), ("Uma", "she"),
         ("Xavier", "he")]
SUBJECT = {"he": "he", "she": "she"}
OBJECT = {"he": "him", "she": "her"}
POSSESSIVE = {"he": "his", "she": "her"}

PEOPLE = ["mother", "father", "sister", "brother", "friend", "teacher", "grandmother",
          "grandfather", "baker", "farmer", "doctor", "neighbor", "uncle", "aunt"]
ANIMALS = ["cat", "dog", "bird", "fox", "horse", "cow", "duck", "fish", "mouse", "rabbit",
           "bear", "frog", "sheep", "goat", "owl", "hen", "pig", "puppy", "kitten", "zebra",
           "lizard"]
THINGS = ["ball", "book", "box", "cup", "hat", "key", "kite", "lamp", "letter", "map", "coat",
          "shoe", "bag", "boat", "bell", "chair", "table", "clock", "pen", "picture", "flower",
          "stone", "basket", "ring", "candle", "blanket", "toy", "bottle", "spoon", "plate",
          "bike", "drum", "shell", "feather", "leaf", "umbrella", "pencil", "card", "gift",
          "rope", "bucket", "doll", "sock", "window", "door", "puzzle", "jacket", "quilt"]
SNACKS = ["apple", "cake", "egg", "orange", "pear", "cookie", "sandwich", "carrot", "pie"]
FOODS = ["bread", "soup", "rice", "honey", "cheese", "jam", "fruit", "corn", "pasta"]
DRINKS = ["milk", "tea", "water", "juice", "cocoa"]
READABLE = ["book", "letter", "map", "card", "story", "poem", "note"]
IRREGULAR_PLURALS = {"mouse": "mice", "sheep": "sheep", "fish": "fish", "leaf": "leaves",
                     "man": "men", "woman": "women", "child": "children", "story": "stories",
                     "puppy": "puppies"}

# Places as (where it is, where one goes): "in the garden", "to the garden".
PLACES = [("in the garden", "to the garden"), ("at the market", "to the market"),
          ("by the river", "to the river"), ("in the forest", "into the forest"),
          ("at school", "to school"), ("in the kitchen", "into the kitchen"),
          ("on the hill", "up the hill"), ("near the sea", "to the sea"),
          ("in the village", "to the village"), ("at the station", "to the station"),
          ("in the park", "to the park"), ("under the bridge", "to the bridge"),
          ("on the farm", "to the farm"), ("in the library", "to the library"),
          ("by the lake", "to the lake"), ("at the shop", "to the shop"),
          ("on the beach", "to the beach"), ("in the field", "to the field"),
          ("at home", "home"), ("in the house", "into the house"), ("at the zoo", "to the zoo")]
WHERE = [where for where, _ in PLACES]  # just the "in the garden" forms
# Spots inside a room, for things that are lost and found.
SPOTS = ["under the table", "on the chair", "in the box", "behind the door", "under the bed",
         "on the shelf", "in the bag", "next to the lamp", "by the window", "in the basket"]

TIMES = ["in the morning", "at night", "after lunch", "before dinner", "in the evening",
         "at noon", "in the spring", "in the summer", "in the autumn", "in the winter",
         "after school", "on Sunday", "on Saturday"]
PAST_TIMES = ["yesterday", "last night", "one day", "last week", "long ago", "that morning",
              "on Monday", "one evening", "one summer", "the next day"]
HABIT_TIMES = ["every day", "every morning", "every night", "on Sundays", "most days",
               "in the winter", "after school", "in the evening"]

SIZES = ["big", "small", "little", "tiny", "long", "short", "tall", "round", "heavy", "light"]
COLORS = ["red", "blue", "green", "yellow", "white", "black", "brown", "pink", "gray", "orange"]
QUALITIES = ["old", "new", "soft", "clean", "wet", "dry", "warm", "cold", "pretty", "shiny",
             "bright", "dark", "strange", "funny", "quiet", "nice", "good", "lovely"]
THING_ADJECTIVES = SIZES + COLORS + QUALITIES
FEELINGS = ["happy", "sad", "hungry", "tired", "sleepy", "cold", "scared", "lost", "quiet",
            "busy", "brave", "kind", "clever", "glad", "angry", "calm", "excited", "lonely"]
NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "many"]
ADVERBS = ["slowly", "quickly", "quietly", "happily", "loudly", "softly", "carefully", "again",
           "all day", "for a while", "very well", "together"]

# Verbs that take an object: base, third person, past, kinds of object it takes.
# Kinds: t = thing, s = snack, e = food, d = drink, f = food or drink, a = animal,
# r = something to read.
TRANSITIVE = verbs("""
    see sees saw tsa | find finds found tsa | take takes took tsf
    make makes made tsf | want wants wanted tsf | carry carries carried ta
    like likes liked tsfa | paint paints painted t | buy buys bought tsf
    lose loses lost t | hold holds held ta | wash washes washed ta
    watch watches watched a | eat eats ate se | drink drinks drank d
    bring brings brought tsf | sell sells sold tsf | fix fixes fixed t
    drop drops dropped ts | love loves loved tsfa | keep keeps kept ta
    draw draws drew ta | hide hides hid ts | read reads read r
    feed feeds fed a | open opens opened t | share shares shared sf
    cook cooks cooked e
""")
# Verbs without an object: base, third person, past, -ing form.
INTRANSITIVE = verbs("""
    run runs ran running | walk walks walked walking | sit sits sat sitting
    sleep sleeps slept sleeping | laugh laughs laughed laughing | sing sings sang singing
    wait waits waited waiting | jump jumps jumped jumping | smile smiles smiled smiling
    dance dances danced dancing | play plays played playing | work works worked working
    swim swims swam swimming | rest rests rested resting | read reads read reading
    cook cooks cooked cooking | draw draws drew drawing | listen listens listened listening
""")

# Korean: a few sentence parts built from a small, fixed set of Hangul syllables.
KO_SUBJECTS = ["나는", "민수는", "지아는"]
KO_SPEAKERS = ["민수가", "지아가"]
KO_PLACES = ["학교에", "집에", "시장에", "공원에"]
KO_TIMES = ["오늘", "아침에"]
KO_OBJECT_VERBS = [("책을", "읽습니다"), ("밥을", "먹습니다"), ("물을", "마십니다"),
                   ("사과를", "먹습니다"), ("사과를", "좋아합니다"), ("책을", "좋아합니다")]
KO_GREETINGS = ["안녕하세요?", "감사합니다.", "좋습니다."]

# Notes: days, events and places for timetables, addresses and file names
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
EVENTS = ["swimming", "piano lesson", "football", "art club", "dentist", "library visit",
          "bake sale", "zoo trip", "quiz night", "music class"]
SITES = ["school", "farm", "zoo", "library", "bakery", "garden"]
