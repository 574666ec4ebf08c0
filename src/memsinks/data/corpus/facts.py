"""Short encyclopedic entries about animals, plants, towns and dishes.

Each entry opens with a definition sentence and continues with a few fact sentences.
Core properties of an animal or plant (its class, habitat, food, young, leaves, fruit)
are fixed per entity, so the same "facts" recur across documents; numbers, regions,
seasons and phrasings are drawn freshly. Towns and dishes are fictional.
"""

from __future__ import annotations

from functools import cache

from .grammar import Grammar, Value, Variable, alts


def _article(words: str) -> str:
    return "an" if words[0] in "aeiou" else "a"


def _table(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("|")] for line in text.strip().splitlines()]


# name | plural | class | size | habitat | food | young | body
_ANIMAL_TABLE = """
grey otter | grey otters | mammal | small | rivers | fish , crabs and frogs | pups | thick brown fur and webbed feet
red fox | red foxes | mammal | small | woods | mice , berries and beetles | kits | a bushy tail and pointed ears
brown bear | brown bears | mammal | large | mountains | berries , roots and salmon | cubs | thick fur and long claws
snowy owl | snowy owls | bird | large | cold plains | lemmings and small birds | owlets | white feathers and yellow eyes
tall heron | tall herons | bird | tall | marshes | fish and frogs | chicks | long legs and a sharp beak
sea turtle | sea turtles | reptile | large | warm seas | sea grass and jellyfish | hatchlings | a hard shell and flat flippers
tree frog | tree frogs | amphibian | tiny | rain forests | flies and small insects | tadpoles | sticky toes and bright green skin
honey bee | honey bees | insect | tiny | meadows | nectar and pollen | larvae | a striped body and clear wings
mountain goat | mountain goats | mammal | sturdy | cliffs | grass , moss and herbs | kids | curved horns and a thick white coat
field mouse | field mice | mammal | tiny | fields | seeds , grain and snails | pups | big ears and a long thin tail
blue whale | blue whales | mammal | huge | open oceans | tiny shrimp called krill | calves | a long grey body and a wide mouth
gray wolf | gray wolves | mammal | large | northern forests | deer , hares and elk | pups | sharp teeth and a thick grey coat
barn swallow | barn swallows | bird | small | farmlands | flying insects | chicks | a forked tail and shiny blue wings
king penguin | king penguins | bird | large | icy coasts | fish and squid | chicks | black and white feathers and orange patches
desert lizard | desert lizards | reptile | small | deserts | ants and beetles | hatchlings | rough scales and a long tail
river trout | river trouts | fish | medium | cold streams | insects and small fish | fry | spotted sides and strong fins
giant tortoise | giant tortoises | reptile | huge | dry islands | cactus , grass and leaves | hatchlings | a domed shell and thick legs
common toad | common toads | amphibian | small | damp gardens | slugs , worms and beetles | tadpoles | bumpy skin and golden eyes
monarch butterfly | monarch butterflies | insect | small | open fields | nectar from flowers | caterpillars | orange wings with black lines
harbor seal | harbor seals | mammal | medium | rocky shores | fish and squid | pups | spotted fur and short flippers
black crow | black crows | bird | medium | towns and farms | seeds , insects and scraps | chicks | shiny black feathers and a strong beak
white stork | white storks | bird | tall | wet meadows | frogs , fish and worms | chicks | a long red bill and black wing tips
wild boar | wild boars | mammal | sturdy | oak forests | acorns , roots and worms | piglets | a long snout and coarse dark hair
hedge sparrow | hedge sparrows | bird | tiny | hedges and gardens | seeds and insects | chicks | a brown back and a grey chest
golden eagle | golden eagles | bird | large | high mountains | hares , rabbits and grouse | eaglets | broad wings and a hooked beak
spotted deer | spotted deer | mammal | medium | open woodlands | grass , leaves and fruit | fawns | a spotted coat and thin legs
sand crab | sand crabs | crustacean | small | sandy beaches | bits of seaweed and tiny animals | larvae | a hard shell and ten legs
night bat | night bats | mammal | tiny | caves | moths and other insects | pups | thin leathery wings and large ears
ring tailed lemur | ring tailed lemurs | mammal | small | dry forests | fruit , leaves and flowers | infants | a striped tail and bright orange eyes
purple octopus | purple octopuses | mollusk | medium | coral reefs | crabs and shellfish | larvae | eight arms and a soft body
wood ant | wood ants | insect | tiny | pine forests | honeydew and small insects | larvae | a red and black body and strong jaws
little grebe | little grebes | bird | small | quiet ponds | water insects and small fish | chicks | a round body and a short neck
prairie dog | prairie dogs | mammal | small | grasslands | grass and seeds | pups | short legs and a sandy coat
humpback whale | humpback whales | mammal | huge | cold oceans | krill and small fish | calves | long flippers and a knobbly head
snow leopard | snow leopards | mammal | large | rocky mountains | wild sheep and goats | cubs | pale spotted fur and a long thick tail
silver salmon | silver salmon | fish | medium | rivers and seas | insects , shrimp and small fish | fry | shiny silver scales
garden snail | garden snails | mollusk | tiny | gardens | leaves and soft plants | hatchlings | a spiral shell and two pairs of feelers
great bustard | great bustards | bird | heavy | open plains | seeds , insects and shoots | chicks | a grey head and a brown back
paddle beaver | paddle beavers | mammal | medium | streams and ponds | bark , twigs and water plants | kits | a flat tail and orange teeth
"""  # noqa: E501


def _animal(row: list[str]) -> Value:
    name, plural, cls, size, habitat, food, young, body = row
    return Value(
        name,
        {
            "A": _article(name).capitalize() + " " + name,
            "plural": plural,
            "Plural": plural.capitalize(),
            "class": cls,
            "size": size,
            "habitat": habitat,
            "food": food,
            "young": young,
            "body": body,
        },
    )


# name | kind | leaves | fruit
_PLANT_TABLE = """
oak | tree | broad leaves with round lobes | acorns
birch | tree | small heart shaped leaves | tiny winged seeds
willow | tree | long narrow leaves | fluffy seeds
maple | tree | leaves with five points | winged seeds
beech | tree | smooth oval leaves | small brown nuts
pine | tree | long thin needles | hard cones
cedar | tree | short flat needles | round cones
rowan | tree | feathery leaves | bright red berries
hazel | shrub | soft round leaves | sweet nuts
holly | shrub | shiny spiky leaves | red berries
elder | shrub | leaves in groups of five | dark purple berries
lavender | herb | thin silver leaves | tiny seeds
rosemary | herb | needle like leaves | small brown seeds
thyme | herb | tiny grey leaves | very small seeds
mint | herb | bright green toothed leaves | tiny seeds
basil | herb | soft shiny leaves | black seeds
tulip | flower | thick long leaves | seed pods
poppy | flower | hairy leaves | round seed heads
sunflower | flower | large rough leaves | striped seeds
bluebell | flower | narrow shiny leaves | small seed capsules
foxglove | flower | soft wide leaves | tiny seeds in pods
clover | flower | leaves in groups of three | small seed pods
nettle | herb | toothed leaves with stinging hairs | tiny green seeds
bramble | shrub | prickly leaves | blackberries
ivy | vine | dark leaves with pointed lobes | black berries
bracken | fern | large feathery fronds | spores
reed | grass | long flat leaves | fluffy seed heads
bamboo | grass | narrow pointed leaves | rare seeds
cactus | succulent | sharp spines instead of leaves | red fruits
kelp | seaweed | long brown blades | spores
daffodil | flower | long flat leaves | papery seed pods
marigold | flower | soft scented leaves | curved seeds
olive | tree | narrow silver green leaves | small oily fruits
fig | tree | large hand shaped leaves | soft sweet fruits
heather | shrub | tiny needle like leaves | very small seeds
"""


def _plant(row: list[str]) -> Value:
    name, kind, leaves, fruit = row
    return Value(
        name,
        {
            "kind": kind,
            "a_kind": f"{_article(kind)} {kind}",
            "leaves": leaves,
            "fruit": fruit,
        },
    )


_TOWNS = (
    "Brenmoor Caldwick Dunhallow Elmsworth Farrowby Glenmere Hollin Kestwick Larmouth "
    "Millbury Norcastle Oakhollow Pennfield Quarrow Redmarsh Stonebridge Thornwick "
    "Ulverby Valdon Westmere Yarrowby Ashcombe Brackwater Corrin Duneholm Eastfold "
    "Fennick Greyhaven Harlow Irwell Juniper Kilbrook Lindell Marwick Netherby Orrin "
    "Pellham Rosslyn Selbury Tarnwell"
).split()


def _dish(name: str, main: str) -> Value:
    return Value(name, {"lower": name.lower(), "main": main})


_DISHES = [
    _dish(name, main)
    for name, main in (
        ("Barley soup", "barley"),
        ("Honey bread", "flour and honey"),
        ("Fish pie", "white fish"),
        ("Lentil stew", "red lentils"),
        ("Apple crumble", "baked apples"),
        ("Pumpkin porridge", "pumpkin and oats"),
        ("Onion tart", "onions"),
        ("Mushroom pudding", "wild mushrooms"),
        ("Plum cake", "plums"),
        ("Cabbage pie", "cabbage and rice"),
        ("Corn bread", "corn meal"),
        ("Bean broth", "white beans"),
        ("Walnut loaf", "walnuts"),
        ("Rice pudding", "rice and milk"),
        ("Spinach pie", "spinach"),
        ("Carrot jam", "carrots"),
        ("Potato bake", "sliced potatoes"),
        ("Berry pudding", "forest berries"),
        ("Leek soup", "leeks"),
        ("Cheese bread", "cheese"),
        ("Ginger cake", "ginger"),
        ("Pea soup", "green peas"),
        ("Chestnut bread", "chestnut flour"),
        ("Buttermilk pie", "buttermilk"),
        ("Tomato stew", "tomatoes"),
        ("Herring salad", "herring"),
        ("Oat porridge", "oats"),
        ("Quince paste", "quinces"),
        ("Millet cake", "millet"),
        ("Turnip mash", "turnips"),
    )
]

_VARIABLES = [
    Variable("animal", [_animal(r) for r in _table(_ANIMAL_TABLE)]),
    Variable("plant", [_plant(r) for r in _table(_PLANT_TABLE)]),
    Variable("town", _TOWNS),
    Variable("dish", _DISHES),
]

_RULES: dict[str, list[str | tuple[int, str]]] = {
    # The first sentence names the entity; its first tokens pick the kind of entry.
    "entry": [
        (
            3,
            "The {animal} is a {animal.size} {animal.class} that lives in the "
            "{animal.habitat} of <region> . <animal>",
        ),
        (2, "The {animal} is found in <region> , where it is <status> . <animal>"),
        (
            2,
            "{animal.A} is a {animal.size} {animal.class} . It lives in "
            "{animal.habitat} across <region> . <animal>",
        ),
        (1, "Many {animal.plural} live in the {animal.habitat} of <region> . <animal>"),
        (3, "The {plant} is {plant.a_kind} that grows in <plant_place> . <plant>"),
        (2, "The {plant} grows wild in <region> , where it is <common> . <plant>"),
        (3, "{town} is <a_town_size> town <town_where> . <town>"),
        (2, "The town of {town} lies <town_where> . <town>"),
        (3, "{dish} is a <dish_kind> from <dish_from> . <dish>"),
        (1, "{dish} is one of the oldest dishes of <dish_from> . <dish>"),
    ],
    "region": alts(
        "the north | the far north | the south | the east | the west | northern lands | "
        "southern lands | many parts of the world | the eastern hills | the western coast | "
        "the islands | a few warm countries | cold countries | the lowlands | "
        "the high plateau"
    ),
    "number": alts(
        "two | three | four | five | six | seven | eight | nine | ten | eleven | twelve | "
        "fifteen | twenty | thirty | forty | fifty | sixty"
    ),
    "digit": alts("two | three | four | five | six | seven | eight | nine"),
    "small_number": alts("one | two | three | four | five | six"),
    "season": alts("spring | summer | autumn | winter | early spring | late summer"),
    "every_season": alts("spring | summer | autumn | winter | year"),
    # --- animals ------------------------------------------------------------------------
    "animal": ["<a_body> <a_food> <a_behave> <a_sense> <a_young> <a_extra>"],
    "a_sense": [
        "It has very good <sense> , which helps it find food .",
        "Its <sense> is much better than ours .",
        "Like many {animal.plural} , it depends on its <sense> .",
        "It can <ability> .",
    ],
    "sense": alts("eyesight | hearing | sense of smell | sense of touch"),
    "ability": alts(
        "see well in the dark | hear sounds from far away | smell food under the ground | "
        "stay still for hours | find its way home over long distances"
    ),
    "a_body": [
        "It has {animal.body} .",
        "Adults are about <number> <length_unit> long and have {animal.body} .",
        "You can know it by its <marking> . It has {animal.body} .",
        "Most {animal.plural} have {animal.body} .",
    ],
    "length_unit": alts("inches | feet | centimeters"),
    "marking": alts("size | shape | color | call | smell | way of moving"),
    "a_food": [
        "It eats {animal.food} .",
        "The {animal} feeds mostly on {animal.food} .",
        "Its diet is made up of {animal.food} .",
        "{animal.Plural} look for {animal.food} <active_time> .",
    ],
    "active_time": alts(
        "at night | at dawn | at dusk | during the day | in the early morning | "
        "in the late afternoon"
    ),
    "a_behave": [
        "It is most active <active_time> , when it is <weather> .",
        "It usually lives <social> .",
        "When it is in danger , it <danger> .",
        "It spends most of its time <time_spent> .",
    ],
    "weather": alts("cool | quiet | dark | calm | safer"),
    "social": alts(
        "alone | in pairs | in small groups | in large groups | with its family | "
        "close to others of its kind"
    ),
    "danger": alts(
        "hides | stays very still | moves away quickly | makes itself look bigger | "
        "calls to warn the others"
    ),
    "time_spent": alts(
        "looking for food | resting | close to its home | on the move | in the same small area"
    ),
    "a_young": [
        "In <season> , the female has <small_number> {animal.young} .",
        "Its young are called {animal.young} , and they stay with their mother for <duration> .",
        "The {animal.young} grow fast and can look after themselves after <duration> .",
        "Both parents take care of the {animal.young} .",
    ],
    "duration": alts(
        "a few weeks | about a month | several months | about a year | <number> weeks | "
        "<number> months"
    ),
    "a_extra": [
        "It can live for about <number> years .",
        "{animal.A} can live for <number> years or more in the wild .",
        "Today , the {animal} is <status> in <region> .",
        "Sadly , the number of {animal.plural} is <trend> .",
        "In winter , it <winter> .",
    ],
    "status": alts("common | rare | protected | hard to find | easy to see | quite common"),
    "trend": alts(
        "getting smaller | falling in many places | going down because of hunting | "
        "going down as wild land disappears"
    ),
    "winter": alts(
        "sleeps for a long time | moves to warmer places | grows a thicker coat | "
        "stays close to its home | hides under leaves or stones | travels far to find food"
    ),
    # --- plants -------------------------------------------------------------------------
    "plant_place": alts(
        "woods and hedges | wet ground | dry sandy soil | gardens and parks | "
        "rocky places | shady valleys | open meadows | warm sunny places | "
        "many kinds of soil"
    ),
    "common": alts("common | well known | rare | easy to find | loved by many"),
    "plant": ["<p_leaves> <p_flowers> <p_where> <p_winter> <p_use> <p_extra>"],
    "p_winter": [
        "In winter , it <plant_winter> .",
        "When the weather gets cold , it <plant_winter> .",
        "The name {plant} comes from an old word for <name_origin> .",
        "Many small animals live among its <plant_parts> .",
    ],
    "plant_winter": alts(
        "loses its leaves | stays green | dies back to the ground | rests until spring | "
        "keeps only its strongest leaves"
    ),
    "name_origin": alts("light | water | hill | sharp | sweet | green | old | small"),
    "plant_parts": alts("roots | leaves | branches | stems"),
    "p_leaves": [
        "It has {plant.leaves} .",
        "Its leaves are easy to know : {plant.leaves} .",
        "The {plant} has {plant.leaves} , which turn <leaf_color> in autumn .",
    ],
    "leaf_color": alts("yellow | red | brown | gold | orange | pale"),
    "p_flowers": [
        "It flowers in <season> , and later it makes {plant.fruit} .",
        "Its flowers are <flower_color> and open in <season> .",
        "After the flowers fade , it makes {plant.fruit} .",
        "Bees and <pollinator> visit it in <season> .",
    ],
    "flower_color": alts("white | pink | yellow | blue | purple | pale green | deep red"),
    "pollinator": alts("butterflies | moths | beetles | hoverflies | wasps"),
    "p_where": [
        "It is often found near <near_thing> .",
        "In <region> , it grows along <near_thing> .",
        "Farmers sometimes find it near <near_thing> .",
    ],
    "near_thing": alts(
        "rivers | old walls | roads | farms | the sea | ponds | the edges of fields | "
        "railway lines | old houses"
    ),
    "p_use": [
        "People use it to make <plant_product> .",
        "In the past , people used the {plant} to make <plant_product> .",
        "Its {plant.fruit} are eaten by <eaters> .",
        "Some people grow it for its <grow_for> .",
    ],
    "plant_product": alts(
        "tea | rope | medicine | paper | baskets | dye | soap | furniture | perfume | fences"
    ),
    "eaters": alts("birds | mice | squirrels | deer | insects | many animals"),
    "grow_for": alts("smell | beauty | shade | flowers | leaves | wood"),
    "p_extra": [
        "It can grow up to <number> <length_unit> tall .",
        "It grows slowly but can live for many years .",
        "It needs <needs> to grow well .",
        "Gardeners say it is <garden_note> .",
    ],
    "needs": alts("lots of sun | a little shade | plenty of water | poor dry soil | space"),
    "garden_note": alts(
        "easy to grow | hard to grow | good for bees | best planted in autumn | "
        "best planted in spring"
    ),
    # --- towns --------------------------------------------------------------------------
    "a_town_size": alts(
        "a small | a large | a quiet | a busy | an old | a pretty | a market | a fishing"
    ),
    "town_where": alts(
        "on the <water> | in the <direction> of the country | near the <direction> border | "
        "at the foot of the <hill> | by a wide bay"
    ),
    "water": alts("coast | river | shore of a lake | banks of a slow river | edge of the sea"),
    "direction": alts("north | south | east | west | northeast | southwest"),
    "hill": alts("mountains | hills | high cliffs | green downs"),
    "town": ["<t_people> <t_known> <t_land> <t_center> <t_history> <t_event>"],
    "t_center": [
        "In the center of town , there is a <center_thing> with <center_detail> .",
        "Today , the town has <small_number> schools , a library and a small museum .",
        "The <center_thing> is the heart of the town .",
        "Children in {town} go to school in the old <building> .",
    ],
    "center_thing": alts("market square | small park | fountain | stone church | town hall"),
    "center_detail": alts(
        "old trees | a statue of a <founder> | benches and flowers | a clock | many pigeons"
    ),
    "founder": alts("farmer | fisherman | monk | trader | miner | poet"),
    "t_people": [
        "About <number> thousand people live there .",
        "It has about <digit> hundred people .",
        "Around <number> thousand people live in {town} .",
        "Most of the <number> thousand people who live there work in <industry> .",
    ],
    "industry": alts(
        "farming | fishing | shops | schools and hospitals | factories | the harbor | tourism"
    ),
    "t_known": [
        "The town is known for its <town_product> and its <town_feature> .",
        "{town} is famous for <town_product> .",
        "Visitors come to see its <town_feature> .",
        "Its main street has many <street_things> .",
    ],
    "town_product": alts(
        "cheese | wool | pottery | apples | boats | clocks | glass | bread | lace | cider | salt"
    ),
    "town_feature": alts(
        "old stone bridge | tall church tower | busy harbor | green park | narrow streets | "
        "castle ruins | town hall | clock tower | sandy beach"
    ),
    "street_things": alts("shops | cafes | old houses | trees | flower boxes | stalls"),
    "t_land": [
        "Around the town there are <landscape> .",
        "Summers there are <summer_adj> , and winters are <winter_adj> .",
        "The land near {town} is <land_adj> and good for <land_use> .",
    ],
    "landscape": alts(
        "green fields | thick woods | low hills | marshes | orchards | sheep farms | "
        "vineyards | moors"
    ),
    "summer_adj": alts("warm | mild | short | dry | hot"),
    "winter_adj": alts("cold | wet | long | snowy | windy | mild"),
    "land_adj": alts("flat | hilly | rich | rocky | sandy"),
    "land_use": alts("sheep | wheat | fruit trees | potatoes | grapes | cattle"),
    "t_history": [
        "The oldest building is the <building> , which was built about <digit> hundred years ago .",
        "The town was founded <history_time> by <founders> .",
        "Long ago , {town} was a small <old_kind> .",
        "In the past , the town was known as a center of <old_trade> .",
    ],
    "building": alts("church | mill | castle | market hall | school | inn | bridge"),
    "history_time": alts(
        "long ago | about <digit> hundred years ago | in the middle ages | many centuries ago"
    ),
    "founders": alts("farmers | fishermen | monks | traders | miners | settlers"),
    "old_kind": alts("village | farm | fishing port | trading post | mining camp"),
    "old_trade": alts("weaving | mining | shipbuilding | trade | farming | learning"),
    "t_event": [
        "Every <every_season> , the town holds a <festival> .",
        "Each year , people gather there for the <festival> .",
        "A train connects it to <town_link> .",
        "The nearest large city is about <number> miles away .",
    ],
    "festival": alts(
        "music festival | harvest fair | boat race | flower show | lantern parade | "
        "cheese market | horse fair"
    ),
    "town_link": alts("the capital | the coast | nearby towns | the city"),
    # --- dishes -------------------------------------------------------------------------
    "dish_kind": alts(
        "simple dish | warm dish | sweet dish | traditional dish | country dish | "
        "festival dish | hearty meal | popular snack"
    ),
    "dish_from": alts("{town} | the <direction> | the mountains | the coast | the islands"),
    "dish": ["<d_made> <d_cook> <d_look> <d_history> <d_eat> <d_where> <d_tip>"],
    "d_look": [
        "When it is ready , it is <dish_color> and <texture> .",
        "It has a <texture> crust and a <dish_color> color .",
        "It looks plain , but it smells of <spice> .",
    ],
    "dish_color": alts("golden | dark brown | pale yellow | deep red | green | creamy white"),
    "texture": alts("soft | crisp | smooth | thick | light | crumbly"),
    "d_where": [
        "In {town} , it is sold at the <sale_place> .",
        "It goes well with <drink> .",
        "Travelers often try it at the <sale_place> .",
    ],
    "sale_place": alts("market | village fair | bakery | harbor stalls | train station"),
    "drink": alts("hot tea | cold milk | apple juice | cider | a glass of water"),
    "d_made": [
        "It is made with {dish.main} , <ingredient> and a little <spice> .",
        "The main part is {dish.main} , mixed with <ingredient> .",
        "To make it , cooks use {dish.main} and <ingredient> .",
    ],
    "ingredient": alts(
        "butter | eggs | milk | cream | sugar | flour | honey | stock | herbs | "
        "breadcrumbs | vinegar"
    ),
    "spice": alts("pepper | nutmeg | cinnamon | salt | garlic | dill | parsley"),
    "d_cook": [
        "It is <cook_verb> for about <number> minutes .",
        "Cooks <cook_verb_now> it slowly until it is <done> .",
        "It takes about <number> minutes to cook .",
    ],
    "cook_verb": alts("baked | boiled | fried | cooked | stewed | roasted"),
    "cook_verb_now": alts("bake | boil | fry | cook | stew | roast"),
    "done": alts("soft | golden | thick | brown | crisp | tender"),
    "d_history": [
        "It was first made by <dish_makers> <history_time> .",
        "The recipe is <digit> hundred years old .",
        "Families pass the recipe from parents to children .",
        "Every town has its own way of making it .",
    ],
    "dish_makers": alts("farmers | fishermen | monks | bakers | poor families | soldiers"),
    "d_eat": [
        "People often eat {dish.lower} <eat_when> .",
        "It is usually served <served> .",
        "Many families make it <eat_when> .",
        "Children like it because it is <taste> .",
    ],
    "eat_when": alts(
        "in winter | on holidays | for breakfast | for supper | at weddings | "
        "on cold days | after a long day"
    ),
    "served": alts("hot | cold | with bread | with a spoon of cream | with tea"),
    "taste": alts("sweet | soft | warm | filling | salty | crunchy"),
    "d_tip": [
        "Some cooks add <extra_ing> for more taste .",
        "It keeps well for <keep_time> in a cool place .",
        "It tastes best <best_when> .",
    ],
    "extra_ing": alts("a pinch of salt | lemon | cheese | raisins | fresh herbs | cream"),
    "keep_time": alts("a day | two days | a few days | a week"),
    "best_when": alts("fresh | the next day | with friends | on a cold evening | warm"),
}


@cache
def grammar() -> Grammar:
    """The facts grammar (built and checked once)."""
    return Grammar(_RULES, _VARIABLES, start="entry")
