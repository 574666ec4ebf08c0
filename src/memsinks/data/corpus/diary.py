"""A child's diary entries and short letters, in the stories' language but not stories.

An entry is written in the first person by a child: one line on the day or its weather,
a morning trip to a place with a grown-up and what was seen or done there (an animal, a
friend and a pet, a found thing, a lost toy, a bike ride), one later event (something
made at home, a friend's visit, lunch, a fright, rain, school, supper, a grown-up's memory)
and a closing line on how the day felt and what comes next. A letter to a grown-up
opens with a greeting and a line of news, tells the morning and one later event the same
way, and ends with a goodbye and the child's name. There is no plot arc: no "Once upon a
time", no problem built up and resolved, just the day's small events in order.

The domain shares the stories' characters, places, toys, pets, animals, foods, helpers,
feelings and verbs (the word lists, values and several small rules are imported from
:mod:`.stories`), and it emits only words that the stories or facts grammars already
emit, so adding it leaves the corpus vocabulary unchanged. Neither of them emits "my" or
"our", so the child writes "with mom", "grandpa gave me" and "the kite".
"""

from __future__ import annotations

from functools import cache

from .grammar import Grammar, Variable, alts
from .stories import (
    _CRITTERS,
    _FEARS,
    _FOODS,
    _HELPERS,
    _KIDS,
    _PET_NAMES,
    _PETS,
    _PLACES,
    _RULES,
    _TOYS,
)

# Grown-ups a child can name without "my": "with mom", "grandpa gave me".
_ADULTS = [h for h in _HELPERS if h.text in ("mom", "dad", "grandma", "grandpa", "nanny")]

_VARIABLES = [
    Variable("writer", _KIDS, pool="kids"),  # the child who writes (named in letters)
    Variable("friend", _KIDS, pool="kids"),
    Variable("helper", _ADULTS, pool="adults"),  # the grown-up of the day
    Variable("reader", _ADULTS, pool="adults"),  # the grown-up a letter is written to
    Variable("kin", _HELPERS),  # someone of the friend's family
    Variable("toy", _TOYS),
    Variable("pet", _PETS),
    Variable("petname", _PET_NAMES),
    Variable("place", _PLACES),
    Variable("food", _FOODS),
    Variable("critter", _CRITTERS),
    Variable("fear", _FEARS),
]

_RULES_DIARY: dict[str, list[str | tuple[int, str]]] = {
    # A diary entry opens with the day or its weather; a letter with a greeting.
    "entry": [
        (3, "<opening> <morning> <later> <close>"),
        (1, "<greeting> <letter_open> <morning> <later> <letter_close>"),
    ],
    # --- the day and its weather ------------------------------------------------------------
    "opening": [
        "Today was a <day_adj> day .",
        "What a <day_adj> day it was !",
        "The sun was out , and the sky was <sky> .",
        "It rained in the morning , but then the sun came out .",
        "It was <weather_pair> outside .",
        "It was a <season_day> day .",
        "It was so cold that I put on a warm <warm_thing> .",
        "There was a strong wind all day .",
        "There was no rain , and the sky was <sky> .",
        "In the morning there were dark clouds , but it did not rain .",
        "Last night there was a storm , but now the sky is <sky> .",
        "I got up very early , when it was still dark .",
    ],
    "day_adj": alts(
        "good | busy | fun | lovely | long | happy | great | funny | nice | very busy | "
        "very good | cozy | quiet"
    ),
    "sky": alts("blue | very blue | bright | clear"),
    "weather_pair": alts(
        "sunny and warm | windy and cold | cloudy and cool | warm and bright | "
        "grey and cold | sunny and windy | cool and quiet"
    ),
    "season_day": alts(
        "warm spring | bright spring | hot summer | lovely summer | cool autumn | "
        "windy autumn | snowy winter | cold winter"
    ),
    "warm_thing": alts("hat | scarf | red scarf | coat"),
    # --- morning: a trip to the place with a grown-up ---------------------------------------
    "morning": [
        (2, "In the morning , I went to the {place} with {helper} . <at_place>"),
        (2, "After breakfast , {helper} and I went to the {place} . <at_place>"),
        (1, "Early in the morning , {helper} took me to the {place} . <at_place>"),
        (1, "This morning , {helper} and I went to the {place} by bus . <at_place>"),
        (1, "We went to the {place} with {helper} . <at_place>"),
    ],
    "at_place": [
        (2, "We saw {critter.a} <near_spot> . It ate some {critter.food} <critter_then> ."),
        (
            1,
            "We saw {critter.a} with a hurt {critter.part} . The poor animal could not "
            "move , so we gave it some {critter.food} .",
        ),
        (1, '"Look !" said {helper} . There was {critter.a} <near_spot> .'),
        (1, "Then I heard a small sound . It was {critter.a} <near_spot> !"),
        (2, "We <did_outside> , and I found <found_thing> <found_spot> ."),
        (1, "I played with {toy.a} , and {helper} sat under <a_tree> ."),
        (1, "I rode the <color> bike all the way there . I fell down once , but I was not hurt ."),
        (2, "There we saw {friend} and {friend.his} {pet} , {petname} . <pet_bit>"),
        (2, "{friend} was there too , so we played <game> together . <friend_bit>"),
        (1, "<toy_gone> At first we could not find it , but then we saw it <found_spot> ."),
        (1, "Then there were so many <many_things> ! They were <many_adj> ."),
        (1, "An old man with a <old_thing> smiled at us ."),
        (1, "Just then , {friend} came by . {friend.He} brought {food.a} , and we shared it ."),
    ],
    "critter_then": alts(
        "and went back to its {critter.home} | very slowly | and then it was gone"
    ),
    "near_spot": alts(
        "near the water | in the tall grass | on a low branch | by the gate | "
        "under <a_tree> | next to a big rock"
    ),
    "did_outside": alts(
        "had a picnic | looked for shells | picked a bunch of flowers | played on the swings | "
        "ran in the sun | played in the sand | looked at the boats | went to feed the ducks | "
        "went very high on the swing"
    ),
    "found_thing": alts(
        "a shiny stone | a little shell | two white feathers | some red leaves | "
        "two pine cones | a tiny nest | a green frog"
    ),
    "toy_gone": [
        "When I turned around , the {toy} was gone !",
        "Suddenly the wind blew the {toy} away !",
    ],
    "many_things": alts("birds | ducks | people | boats | dogs | flowers | bees"),
    "many_adj": alts("so funny | very loud | everywhere | all around us | big and small"),
    "pet_bit": [
        "{petname} ran off to chase {critter.a} , and we laughed and laughed .",
        "{petname} was so happy to see me .",
        "{petname} can run very fast .",
        "I hugged {petname} , and {friend} smiled .",
        'I called , "{petname} !" and {petname} came running , safe and happy .',
        "{friend.He} let me hold {petname} for a while .",
    ],
    "friend_bit": [
        '"This is so much fun !" said {friend} .',
        '"Can we play again soon ?" asked {friend} .',
        "{friend.He} was <happy> , and so was I .",
        "{friend} is a very <kid_adj> {friend.kind} . I like {friend.him} very much .",
        "We always have fun together .",
        "We did not want to go home .",
    ],
    # --- later in the day: at home, with a friend, the evening ------------------------------
    "later": [
        (3, "After lunch , {helper} and I <did_home> . <home_bit>"),
        (
            1,
            "After lunch , {helper} took me to the doctor . I was a little scared , but I "
            "was brave .",
        ),
        (1, "After school , I <after_school> ."),
        (2, "In the afternoon , {friend} and I <did_with_friend> . <friend_bit>"),
        (
            1,
            "In the afternoon , {friend} came to the door with {friend.his} {kin} . <visit_bit>",
        ),
        (1, "Then it was time for lunch . We ate {food.a} and <lunch_more> . <food_bit>"),
        (1, "Then it began to rain , so we went inside . <rain_bit>"),
        (1, "At the {place} , I was afraid of {fear} . <brave_bit>"),
        (1, "Suddenly there was <scary> , and I was afraid . <brave_bit>"),
        (1, "When we got home , I played with {toy.a} that {helper} gave me . <toy_bit>"),
        (2, "In the evening , we ate <supper> , and {helper} <after_supper> ."),
        (1, "At night , {helper} read me a story about {critter.a} ."),
        (1, "When it got dark , we looked at the stars from the window ."),
        (1, "At school , there was a new {friend.kind_named} . <new_bit>"),
        (1, "We were playing <game> when it started to rain . <rain_bit>"),
        (
            1,
            "When {helper} was small , {helper.he} lived in a <town_adj> village near the "
            "<landmark> . {helper.He} liked to <pastime> every day .",
        ),
        (
            1,
            "It was the birthday of {friend} , so I made a card with a <gift_subject> on it . "
            "{friend.He} gave me a big hug .",
        ),
        (
            1,
            "{friend} fell and began to cry , so I helped {friend.him} up . Then "
            "{friend.he} felt better .",
        ),
    ],
    "did_home": alts(
        "baked cookies | made a cake | planted flowers in the garden | read books | "
        "built a fort with pillows | did a puzzle | made paper boats | "
        "painted a picture with bright colors | played a board game | cooked soup | "
        "picked apples"
    ),
    "home_bit": [
        '"You are very good at this ," said {helper} .',
        "It was hard at first , but then it was fun .",
        "I helped , and {helper} said I was a big help .",
        "{helper.He} was very proud of me .",
        "I loved it , and so did {helper} .",
    ],
    "after_school": alts(
        "did a puzzle | read a story | drew a picture of a <gift_subject> | "
        "helped in the garden | made a card to cheer up {helper} | learned to <pastime>"
    ),
    "did_with_friend": alts(
        "played <game> | built a fort with pillows | drew pictures | told funny jokes | "
        "made paper boats | did a puzzle | played a board game | looked at the stars"
    ),
    "visit_bit": [
        "We played <game> until it was time to go . When they had to go , I was <sad> .",
        '"Let us <indoor_fun> ," said {friend} , and we did .',
        "Everything was fun , even the rain .",
    ],
    "lunch_more": alts(
        "some bread with cheese | a bowl of soup | some hot soup | a glass of milk | "
        "some rice | bread and jam | a glass of apple juice"
    ),
    "food_bit": [
        "I shared the {food} with {helper} , and {helper.he} said thank you .",
        "It was so good that I wanted more .",
        "I kept a little of the {food} for later .",
        "After that , I was not hungry anymore .",
        "The food was so good !",
    ],
    "scary": alts("a big dog | a tall slide | deep water | a bee | loud thunder | a dark tunnel"),
    "brave_bit": [
        'Then {helper} said , "Be brave . I am right here ." So I took a deep breath '
        "and tried again .",
        "Then {helper} told me a trick : count to ten and breathe slowly .",
        '"Do not worry ," said {helper} , and soon I felt better .',
        '"Try again ," said {helper} . So I tried again , and it was easier .',
        "But I counted to ten , and then I was not scared anymore .",
        "But {helper} held me close , and soon I felt brave .",
        "I looked again , and it was not so bad after all .",
    ],
    "toy_bit": [
        "It is the best gift ever .",
        "I took good care of it all day .",
        "Then I lost the {toy} , but I found it <found_spot> .",
        "Then {helper} played with me until it was dark .",
    ],
    "supper": alts(
        "soup and bread | fish and rice | a big pie | eggs and bread | "
        "porridge with honey | carrot cake | cheese and bread"
    ),
    "after_supper": alts(
        "told funny jokes | played a board game with me | read a story | made hot tea | "
        "looked at the stars with me | told me one more story"
    ),
    "new_bit": [
        '{friend.He} sat alone and looked lonely , so I said , "Do you want to play ?" '
        "{friend.He} nodded and smiled .",
        "{friend.His} name is {friend} , and {friend.he} is from a town far away .",
        "{friend.He} has a big smile and is very <kid_adj> .",
        "We played <game> together , and now we are friends .",
    ],
    "rain_bit": [
        '"Let us <indoor_fun> ," said {helper} .',
        "Then I had an idea : we could <indoor_fun> .",
        "I sighed and looked out of the window .",
        "When the rain stopped , we went outside again .",
    ],
    "pastime": alts(
        "play outside | draw pictures | sing songs | read books | climb trees | "
        "swim in the lake | watch the birds | bake cookies | ride a bike | dance"
    ),
    # --- closing ----------------------------------------------------------------------------
    "close": ["<feel_line> <end_line>"],
    "feel_line": [
        (2, "I am <happy> , and I am very sleepy now ."),
        (2, "It was the best day ever ."),
        (1, "I think it was a <day_adj> day ."),
        (1, "I felt <happy> all day ."),
        (1, "I was <sad> , because we had to go home ."),
        (1, "Not every day is as good as this one ."),
        (1, "We did so many fun things ."),
        (1, "Sadly , we had to go home ."),
    ],
    "end_line": [
        "I want to do it all again .",
        "I want every day to be like this .",
        "More than anything , I want to go to the {place} again .",
        "On the weekend , we will go to the {place} again .",
        "That is all for now .",
        "I wanted to stay there all day .",
    ],
    # --- letters ----------------------------------------------------------------------------
    "greeting": ["Hi {reader} !", "Hello {reader} !"],
    "letter_open": [
        "I missed you very much .",
        "I want to say thank you for the {toy} . I like it very much !",
        "Every day , I think about you .",
        "We have {pet.a} now ! Its name is {petname} .",
        "We moved to a new town , and I have a new friend named {friend} .",
        "We are all well .",
        "Do you know that we have a new <house_adj> house ?",
        "I was sick for a few days , but now I am well again .",
        "I wrote a short poem for you .",
    ],
    "letter_close": ["<letter_bye> <sign>"],
    "letter_bye": [
        "I will see you soon .",
        "I will tell you more when I see you .",
        "Here is a picture I drew for you .",
        "I want you to come and see us soon !",
        "It would be so nice if you could come to see us .",
        "Soon it will be summer , and then I will see you .",
        "We planned a trip to the {place} , so I will tell you all about it .",
    ],
    "sign": ["From {writer} .", "A big hug from {writer} !", "With a big hug , {writer} ."],
    # --- rules shared with the stories -------------------------------------------------------
    **{
        k: _RULES[k]
        for k in (
            "a_tree",
            "color",
            "found_spot",
            "game",
            "gift_subject",
            "happy",
            "house_adj",
            "indoor_fun",
            "kid_adj",
            "landmark",
            "old_thing",
            "sad",
            "town_adj",
        )
    },
}


@cache
def grammar() -> Grammar:
    """The diary grammar (built and checked once)."""
    return Grammar(_RULES_DIARY, _VARIABLES, start="entry")
