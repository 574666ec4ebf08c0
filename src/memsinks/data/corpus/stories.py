"""Children's short stories in the spirit of TinyStories.

A story is an opening that introduces the hero, one sentence of setting, and one of
several plots (a lost toy, a rainy day, a fear, sharing food, a hurt animal, a new
friend, a gift, a new bike, a runaway pet), each told in a few steps with several
phrasings per step. Characters, places and objects are lazily drawn variables, so a
story keeps talking about the same hero, friend and toy; pronouns follow the hero.
"""

from __future__ import annotations

from functools import cache

from .grammar import Grammar, Value, Variable, alts

_GIRLS = (
    "Mia Lily Emma Anna Sara Lucy Ella Zoe Maya Nora Ruby Rosa Ivy Lena Hannah Grace "
    "Chloe Amy Julia Clara Nina Sophie Alice Molly Kate Jenny Tara Eva Luna Rita Mila "
    "Leah Iris Olivia Bella Poppy Holly Jane Sofia Elsa"
).split()
_BOYS = (
    "Tom Ben Sam Leo Jack Finn Noah Luke Owen Jake Tim Adam Eli Theo Oscar Hugo Ryan "
    "Dan Omar Ravi Kai Milo Jonah Felix Oliver Henry Peter Paul Mark Nick Ali Ian "
    "Ethan Liam Lucas Arthur Simon Carlos Ahmed Victor"
).split()


def _kid(name: str, girl: bool) -> Value:
    kind = "girl" if girl else "boy"
    he, his, him, self_ = (
        ("she", "her", "her", "herself") if girl else ("he", "his", "him", "himself")
    )
    return Value(
        name,
        {
            "kind": kind,
            "kind_named": f"{kind} named {name}",
            "he": he,
            "He": he.capitalize(),
            "his": his,
            "His": his.capitalize(),
            "him": him,
            "himself": self_,
        },
    )


_KIDS = [_kid(n, True) for n in _GIRLS] + [_kid(n, False) for n in _BOYS]


def _person(word: str, girl: bool) -> Value:
    he, his, him = ("she", "her", "her") if girl else ("he", "his", "him")
    return Value(word, {"he": he, "He": he.capitalize(), "his": his, "him": him})


_HELPERS = [
    _person("mom", True),
    _person("dad", False),
    _person("grandma", True),
    _person("grandpa", False),
    _person("aunt", True),
    _person("uncle", False),
    _person("big sister", True),
    _person("big brother", False),
    _person("nanny", True),
]


def _thing(word: str) -> Value:
    article = "an" if word[0] in "aeiou" else "a"
    return Value(word, {"a": f"{article} {word}"})


_TOYS = [
    _thing(w)
    for w in alts(
        "ball | kite | doll | teddy bear | toy car | toy boat | toy train | yellow truck | "
        "yo yo | spinning top | jump rope | robot | drum | whistle | balloon | paper plane | "
        "blue bucket | wooden horse | umbrella | airplane | old hat | rag doll | music box | "
        "magic wand | little shovel | red scarf | green frisbee | puppet"
    )
]

_PETS = [
    _thing(w)
    for w in alts(
        "dog | cat | puppy | kitten | bunny | hamster | parrot | turtle | pony | goat | "
        "lamb | mouse | guinea pig"
    )
]
_PET_NAMES = (
    "Spot Rex Buddy Coco Fluffy Patch Pip Sunny Biscuit Pepper Ginger Muffin Shadow "
    "Whiskers Bubbles Rusty Snowy Button Peanut Socks Tiger Lucky Pickles Toffee Bean "
    "Noodle Ziggy Pebble Waffles Mittens"
).split()

_PLACES = (
    "park beach forest garden meadow playground lake river hill farm field pond "
    "orchard valley square harbor zoo market library fair"
).split()

_FOODS = [
    _thing(w)
    for w in alts(
        "apple | banana | cookie | sandwich | orange | pear | muffin | cupcake | peach | "
        "plum | big pretzel | bag of grapes | bag of cherries | box of raisins | "
        "piece of cake | slice of pie | bowl of berries | cheese roll | carrot cake | jam tart"
    )
]


def _critter(word: str, part: str, home: str, food: str) -> Value:
    article = "an" if word[0] in "aeiou" else "a"
    return Value(word, {"a": f"{article} {word}", "part": part, "home": home, "food": food})


_CRITTERS = [
    _critter("bird", "wing", "nest", "seeds"),
    _critter("squirrel", "paw", "tree", "nuts"),
    _critter("hedgehog", "foot", "bush", "worms"),
    _critter("duckling", "wing", "pond", "grain"),
    _critter("rabbit", "leg", "burrow", "carrots"),
    _critter("baby fox", "paw", "den", "berries"),
    _critter("owl", "wing", "tree", "bugs"),
    _critter("frog", "leg", "pond", "flies"),
    _critter("little deer", "leg", "forest", "leaves"),
    _critter("sparrow", "wing", "nest", "crumbs"),
    _critter("robin", "wing", "nest", "worms"),
    _critter("mole", "paw", "tunnel", "worms"),
]

_FEARS = alts(
    "the dark | big dogs | deep water | the tall slide | loud thunder | the old stairs | "
    "bees | spiders | the big waves | riding the bus | the doctor | the high swing"
)

_VARIABLES = [
    Variable("hero", _KIDS, pool="kids"),
    Variable("friend", _KIDS, pool="kids"),
    Variable("helper", _HELPERS),
    Variable("toy", _TOYS),
    Variable("pet", _PETS),
    Variable("petname", _PET_NAMES),
    Variable("place", _PLACES),
    Variable("food", _FOODS),
    Variable("critter", _CRITTERS),
    Variable("fear", _FEARS),
]

_RULES: dict[str, list[str | tuple[int, str]]] = {
    "story": ["<opening> <setting> <when> , <plot>"],
    # --- who and where ------------------------------------------------------------------
    "opening": [
        "Once upon a time , there was a <kid_adj> {hero.kind_named} .",
        "There was once a <kid_adj> {hero.kind_named} .",
        "Long ago , in a <town_adj> town , there lived a <kid_adj> {hero.kind_named} .",
        "{hero} was a <kid_adj> {hero.kind} .",
        "In a <town_adj> village near the <landmark> , there lived a {hero.kind_named} .",
        "Not far from the <landmark> lived a <kid_adj> {hero.kind_named} .",
    ],
    "kid_adj": alts(
        "little | small | kind | happy | brave | curious | cheerful | shy | clever | "
        "gentle | playful | funny | busy | sweet | quiet | friendly | lively | polite | "
        "young | cheeky"
    ),
    "town_adj": alts(
        "small | quiet | sunny | busy | little | pretty | green | sleepy | windy | cozy | snowy"
    ),
    "landmark": alts(
        "sea | mountains | big forest | big lake | old bridge | old castle | river | "
        "green hills | tall lighthouse | windmill"
    ),
    "setting": [
        "{hero.He} lived with {hero.his} {helper} in a <house_adj> house .",
        "{hero.He} loved to <pastime> .",
        "{hero.He} had {pet.a} named {petname} .",
        "Every day , {hero.he} liked to <pastime> .",
        "{hero.His} best friend was {hero.his} {pet} , {petname} .",
        "More than anything , {hero.he} liked to <pastime> .",
    ],
    "house_adj": alts(
        "small | little | blue | yellow | white | red | wooden | tiny | cozy | big | tall"
    ),
    "pastime": alts(
        "play outside | play games | draw pictures | paint with bright colors | "
        "sing songs | read books | run and jump | dance | build things with blocks | "
        "look at the stars | help in the garden | climb trees | ride {hero.his} bike | "
        "bake cookies | collect shiny stones | watch the birds | swim in the lake | "
        "tell funny jokes | make up stories"
    ),
    "when": alts(
        "One <day_part> | Early one morning | Last summer | On a <weather_adj> day | "
        "The next morning | After school | That weekend"
    ),
    "day_part": alts(
        "day | morning | afternoon | evening | bright morning | warm afternoon | "
        "spring day | summer day | autumn day"
    ),
    "weather_adj": ["sunny", "windy", "warm", "cloudy", "bright", "cool", "lovely"],
    # --- plots: each first sentence starts with the hero, the second word picks the plot
    "plot": [
        (2, "{hero} took {hero.his} {toy} to the {place} . <lost>"),
        (2, "{hero} was playing with {hero.his} {toy} at the {place} . <lost>"),
        (2, "{hero} wanted to go to the {place} to <outdoor_fun> . <rain>"),
        (1, "{hero} and {hero.his} {helper} planned a trip to the {place} . <rain>"),
        (2, "{hero} was afraid of {fear} . <fear>"),
        (1, "{hero} felt scared , because {hero.he} was afraid of {fear} . <fear>"),
        (2, "{hero} had {food.a} in {hero.his} bag . <share>"),
        (1, "{hero} brought {food.a} to the {place} . <share>"),
        (2, "{hero} found {critter.a} at the {place} . <critter>"),
        (1, "{hero} saw {critter.a} under <a_tree> . <critter>"),
        (2, "{hero} moved to a new town with {hero.his} {helper} . <newfriend>"),
        (1, "{hero} started at a new school . <newfriend>"),
        (2, "{hero} wanted to make a gift for {hero.his} {helper} . <gift>"),
        (2, "{hero} got a new <color> bike for {hero.his} birthday . <bike>"),
        (2, "{hero} went to the {place} with {hero.his} {pet} , {petname} . <pet>"),
    ],
    "color": ["red", "blue", "green", "yellow", "pink", "purple", "orange", "shiny"],
    "a_tree": ["a big tree", "an old oak tree", "a pine tree", "an apple tree", "a bush"],
    "sad": ["sad", "very sad", "upset", "unhappy", "worried", "gloomy"],
    "happy": ["happy", "very happy", "glad", "so happy", "proud", "joyful", "excited"],
    # --- lost toy -----------------------------------------------------------------------
    "lost": ["<lost_problem> <lost_search> <lost_help> <lost_found>"],
    "lost_problem": [
        "Suddenly , a strong wind blew the {toy} away .",
        "But when {hero.he} turned around , the {toy} was gone !",
        "After a while , {hero.he} could not see the {toy} anymore .",
        "Then {hero.he} put the {toy} down and ran off to play .",
    ],
    "lost_search": [
        "{hero.He} looked <everywhere> , but {hero.he} could not find it .",
        "{hero} felt <sad> and began to cry .",
        "{hero} searched and searched , but the {toy} was not there .",
    ],
    "everywhere": alts(
        "everywhere | under the benches | behind the trees | in the tall grass | "
        "near the water | all around | up and down the path"
    ),
    "lost_help": [
        'Then {hero.his} friend {friend} came by . "Do not be sad , I will help you ," '
        "said {friend} .",
        '{hero.His} friend {friend} saw {hero.him} and said , "Let us look together !"',
        'Just then , {hero.his} {helper} came . "Let me help you ," said {hero.his} {helper} .',
        "An old man with a <old_thing> saw {hero.him} and stopped to help .",
    ],
    "old_thing": ["dog", "cane", "hat", "cart", "kind smile", "long beard"],
    "lost_found": [
        "Soon they found the {toy} <found_spot> . {hero} was <happy> again .",
        'At last , they saw the {toy} <found_spot> . "Thank you !" said {hero} .',
        "They looked <found_spot> , and there it was ! {hero} hugged the {toy} and smiled .",
        "After a long time , they found it <found_spot> . From that day on , {hero} "
        "took good care of {hero.his} {toy} .",
    ],
    "found_spot": alts(
        "under a bush | behind a big rock | in the tall grass | next to a tree | "
        "on a low branch | by the gate | near a little bridge"
    ),
    # --- rainy day ----------------------------------------------------------------------
    "outdoor_fun": alts(
        "play | have a picnic | fly a kite | look for shells | feed the ducks | "
        "pick flowers | ride on the swings | run in the sun"
    ),
    "rain": ["<rain_problem> <rain_idea> <rain_end>"],
    "rain_problem": [
        "But then dark clouds came , and it started to rain .",
        "But soon the sky turned grey , and big drops of rain began to fall .",
        "Sadly , it rained all day , and they had to stay at home .",
        "When they got up , there was a storm outside .",
    ],
    "rain_idea": [
        '{hero} felt <sad> . "Do not worry ," said {hero.his} {helper} . "We can '
        '<indoor_fun> inside !"',
        "{hero} looked out of the window and sighed . Then {hero.he} had an idea : "
        "{hero.he} would <indoor_fun> .",
        '"What can we do now ?" asked {hero} . "Let us <indoor_fun> ," said {hero.his} {helper} .',
    ],
    "indoor_fun": alts(
        "build a fort with pillows | bake a cake | paint a big picture | "
        "play a board game | read a story | make paper boats | have a picnic on the floor | "
        "sing and dance | do a puzzle"
    ),
    "rain_end": [
        "It was so much fun that {hero} forgot all about the rain .",
        "They laughed and played all afternoon . Rainy days can be fun too .",
        "In the end , {hero} said it was the best day ever .",
        "When the rain stopped , {hero} was <happy> , but {hero.he} did not want the game to end .",
    ],
    # --- fear ---------------------------------------------------------------------------
    "fear": ["<fear_friend> <fear_try> <fear_end>"],
    "fear_friend": [
        '{hero.His} friend {friend} said , "I was scared too , but it is not so bad ."',
        '{hero.His} {helper} held {hero.his} hand and said , "You are braver than you think ."',
        '"Be brave , {hero} ," said {hero.his} {helper} . "I am right here ."',
        "{friend} , a {friend.kind} from next door , told {hero.him} a trick : count to "
        "ten and breathe slowly .",
    ],
    "fear_try": [
        "{hero} took a deep breath and tried again .",
        "{hero} closed {hero.his} eyes , counted to ten , and tried once more .",
        "So {hero} tried , one small step at a time .",
        "The next day , {hero} tried again , and it was easier .",
    ],
    "fear_end": [
        "Soon {hero.he} was not afraid of {fear} anymore .",
        "{hero} smiled . {hero.He} was <happy> that {hero.he} had been brave .",
        "{hero} learned that being brave means trying even when you are scared .",
        "After that day , {hero} was not scared of {fear} anymore .",
    ],
    # --- sharing ------------------------------------------------------------------------
    "share": ["<share_problem> <share_act> <share_end>"],
    "share_problem": [
        "{hero.His} friend {friend} had no food and looked hungry .",
        "Then {hero.he} saw {friend} , who had forgotten {friend.his} lunch .",
        "A {friend.kind_named} sat nearby and looked at the {food} .",
    ],
    "share_act": [
        '{hero} broke the {food} in two and said , "Here , this is for you ."',
        "{hero} thought for a moment . Then {hero.he} shared the {food} with {friend} .",
        '"Do you want some ?" asked {hero} . {friend} nodded and smiled .',
    ],
    "share_end": [
        "They ate together and laughed . Sharing made the {food} taste even better .",
        "Then {friend} said thank you , and soon they were good friends .",
        "{hero} felt warm inside . It is nice to share with others .",
        "From that day on , {hero} and {friend} always shared their lunch .",
    ],
    # --- hurt animal --------------------------------------------------------------------
    "critter": ["<critter_problem> <critter_care> <critter_end>"],
    "critter_problem": [
        "The poor {critter} had a hurt {critter.part} and could not move .",
        "It was cold and hungry , and its {critter.part} was hurt .",
        "It looked lost , and it was shaking .",
    ],
    "critter_care": [
        "{hero} carried it home very gently . {hero.His} {helper} helped {hero.him} "
        "make a soft bed in a box .",
        "{hero} gave it some {critter.food} and a little water .",
        "{hero} and {hero.his} {helper} took care of it for a few days .",
        '"We must help it ," said {hero} , and {hero.he} gave it some {critter.food} .',
    ],
    "critter_end": [
        "Soon the {critter} was well again and went back to its {critter.home} .",
        "When the {critter} felt better , {hero} let it go . It looked back at "
        "{hero.him} , as if to say thank you .",
        "After a while , the {critter} was strong again . {hero} was <happy> to see it go home .",
        "In the end , the {critter} got better , and {hero} learned to be kind to every animal .",
    ],
    # --- new friend ---------------------------------------------------------------------
    "newfriend": ["<new_problem> <new_meet> <new_end>"],
    "new_problem": [
        "{hero.He} did not know anyone , and {hero.he} felt lonely .",
        "On the first day , {hero.he} sat alone and felt <sad> .",
        "Everything was new , and {hero.he} missed {hero.his} old friends .",
    ],
    "new_meet": [
        'Then a {friend.kind_named} came over . "Do you want to play ?" asked {friend} .',
        '{friend} , a {friend.kind} with a big smile , said , "Hello ! I am {friend} ."',
        'Then {hero} saw a {friend.kind_named} and said , "Hi ! Can I play too ?"',
    ],
    "new_end": [
        "They played <game> all afternoon , and {hero} was not lonely anymore .",
        "Soon {hero} and {friend} were best friends .",
        "From that day on , {hero} and {friend} played together every day .",
        "{hero} smiled . The new place did not feel so new anymore .",
    ],
    "game": alts("tag | hide and seek | ball | with blocks | catch | in the sand | on the swings"),
    # --- gift ---------------------------------------------------------------------------
    "gift": ["<gift_why> <gift_make> <gift_end>"],
    "gift_why": [
        "Soon it would be the birthday of {hero.his} {helper} .",
        "{hero.His} {helper} had been sick , and {hero} wanted to cheer {helper.him} up .",
        "{hero.His} {helper} always helped {hero.him} , and {hero} wanted to say thank you .",
    ],
    "gift_make": [
        "So {hero} <made_gift> , but it did not look right at first .",
        "{hero} <made_gift> all by {hero.himself} .",
        "With help from {hero.his} friend {friend} , {hero} <made_gift> .",
    ],
    "made_gift": alts(
        "drew a picture of a <gift_subject> | made a card with a <gift_subject> on it | "
        "baked a small cake | picked a bunch of flowers | wrote a short poem | "
        "built a little box for treasures | painted a rock with a <gift_subject> on it"
    ),
    "gift_subject": ["sun", "rainbow", "heart", "house", "flower", "cat", "tree", "star"],
    "gift_end": [
        "When {hero.his} {helper} saw the gift , {helper.he} gave {hero} a big hug .",
        '"This is the best gift ever ," said {hero.his} {helper} , and {hero} was <happy> .',
        "{hero.His} {helper} smiled and kept the gift for a long time .",
    ],
    # --- bike ---------------------------------------------------------------------------
    "bike": ["<bike_problem> <bike_help> <bike_end>"],
    "bike_problem": [
        "But when {hero.he} tried to ride it , {hero.he} fell down .",
        "{hero.He} got on , but the bike wobbled and {hero.he} fell into the grass .",
        "Riding was hard , and {hero.he} fell again and again .",
    ],
    "bike_help": [
        '"Try again ," said {hero.his} {helper} . "I will hold the bike ."',
        "{hero.His} {helper} ran next to {hero.him} and held the seat .",
        '{hero.His} friend {friend} said , "Look straight ahead and keep pedaling !"',
    ],
    "bike_end": [
        "Soon {hero} could ride all by {hero.himself} . {hero.He} was <happy> .",
        "At the end of the day , {hero} rode all the way to the {place} .",
        "{hero} did not give up , and at last {hero.he} could ride fast .",
    ],
    # --- runaway pet --------------------------------------------------------------------
    "pet": ["<pet_problem> <pet_search> <pet_end>"],
    "pet_problem": [
        "Suddenly {petname} saw {critter.a} and ran after it .",
        "{petname} ran off to chase {critter.a} and did not come back .",
        "When {hero} looked up , {petname} was gone !",
    ],
    "pet_search": [
        '{hero} called , "{petname} ! {petname} !" but there was no answer .',
        "{hero} looked behind every tree and under every bush .",
        "{hero} felt <sad> , but {hero.he} kept looking .",
    ],
    "pet_end": [
        "At last , {hero.he} found {petname} <found_spot> , safe and happy .",
        "Then {hero.he} heard a small sound . It was {petname} , <found_spot> !",
        "Soon {petname} came running back , and {hero} gave it a big hug .",
    ],
}


@cache
def grammar() -> Grammar:
    """The stories grammar (built and checked once)."""
    return Grammar(_RULES, _VARIABLES, start="story")
