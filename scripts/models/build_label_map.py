"""Builds the local detector's label map (labels.json): Rekognition-style names, parents and
categories for EfficientNet-Lite0's 1,000 ImageNet classes and NanoDet's 80 COCO classes.

Inputs (all from registries, see convert.sh):
- ImageNet class names, in model output order: npm @tensorflow-models/mobilenet@2.1.1,
  dist/imagenet_classes.js
- ImageNet synset ids: the first 1,000 lines of Debian darknet's imagenet.labels.list, sorted
  (the models' class order is synset-sorted; the names are checked against mobilenet's)
- WordNet 3.0 (Debian wordnet-base, /usr/share/wordnet/data.noun): ImageNet synset ids are
  WordNet noun offsets, so each class's hypernyms give its parents
- COCO names: Debian darknet's coco.names (VOC spellings such as `motorbike`)

usage: build_label_map.py IMAGENET_CLASSES_JS DARKNET_DATA_DIR WORDNET_DIR OUT.json
"""
import json
import re
import sys

MAP_VERSION = "map-2"

# WordNet synsets (by their first lemma) that become Rekognition-style parents.
PARENTS = {
    "animal": "Animal", "mammal": "Mammal", "bird": "Bird", "fish": "Fish", "reptile": "Reptile",
    "amphibian": "Amphibian", "insect": "Insect", "arachnid": "Arachnid", "crustacean": "Crustacean",
    "mollusk": "Mollusk", "dog": "Dog", "cat": "Cat", "big_cat": "Big Cat", "bear": "Bear",
    "primate": "Primate", "monkey": "Monkey", "ape": "Ape", "rodent": "Rodent", "equine": "Horse",
    "bovid": "Bovine", "snake": "Snake", "lizard": "Lizard", "turtle": "Turtle", "shark": "Shark",
    "butterfly": "Butterfly", "bee": "Bee", "spider": "Spider", "wolf": "Wolf", "fox": "Fox",
    "vehicle": "Vehicle", "motor_vehicle": "Motor Vehicle", "car": "Car", "truck": "Truck",
    "bus": "Bus", "bicycle": "Bicycle", "motorcycle": "Motorcycle", "aircraft": "Aircraft",
    "airplane": "Airplane", "boat": "Boat", "ship": "Ship", "train": "Train",
    "locomotive": "Train", "food": "Food", "beverage": "Beverage", "coffee": "Coffee",
    "alcohol": "Alcohol", "edible_fruit": "Fruit", "vegetable": "Vegetable", "dish": "Dish",
    "dessert": "Dessert", "bread": "Bread", "cup": "Cup", "furniture": "Furniture",
    "seat": "Seat", "table": "Table", "clothing": "Clothing", "footwear": "Footwear",
    "headdress": "Hat", "musical_instrument": "Musical Instrument", "computer": "Computer",
    "electronic_equipment": "Electronics", "tool": "Tool", "weapon": "Weapon", "gun": "Gun",
    "ball": "Ball", "sports_equipment": "Sports Equipment", "building": "Building",
    "structure": "Architecture", "flower": "Flower", "vascular_plant": "Plant",
    "fungus": "Fungus", "toy": "Toy", "person": "Person",
    "geological_formation": "Nature", "home_appliance": "Appliance", "kitchen_utensil": "Kitchenware",
}
PETS = {"dog", "domestic_cat"}
# Parents set by hand where WordNet's are wrong for the pictures. ImageNet's two missile classes
# hold photos of rockets of every kind, launch vehicles on their pads and in flight as much as
# weapons, and the model cannot tell a space launch from a military one: their shared parent is
# Rocket (a vehicle), and only "missile" (a rocket with a warhead) keeps Weapon. Before this
# (map-1) the two summed to "Weapon (63%)" for a SpaceX launch pad.
CLASS_PARENTS = {
    "n03773504": ["Rocket", "Weapon", "Vehicle"],  # missile
    "n04008634": ["Rocket", "Vehicle"],  # projectile, missile
}
EXTRA_PARENTS_OF = {"Rocket": ["Vehicle"]}
# Rekognition's categories, from the most specific parent that has one.
CATEGORIES = [
    ({"Animal"}, "Animals and Pets"),
    ({"Person"}, "Person Description"),
    ({"Vehicle", "Aircraft", "Boat", "Train"}, "Vehicles and Automotive"),
    ({"Food", "Beverage", "Fruit", "Vegetable"}, "Food and Beverage"),
    ({"Computer", "Electronics", "Appliance"}, "Technology and Computing"),
    ({"Furniture", "Kitchenware"}, "Home and Indoors"),
    ({"Clothing", "Footwear", "Hat"}, "Apparel and Accessories"),
    ({"Musical Instrument", "Toy", "Ball", "Sports Equipment"}, "Hobbies and Interests"),
    ({"Building", "Architecture"}, "Buildings and Architecture"),
    ({"Flower", "Plant", "Fungus", "Nature"}, "Nature and Outdoors"),
    ({"Tool", "Weapon", "Gun"}, "Tools and Machinery"),
]
# COCO (darknet, VOC spellings) → Rekognition-style name and parents.
COCO = {
    "person": ("Person", []), "bicycle": ("Bicycle", ["Vehicle"]),
    "car": ("Car", ["Vehicle", "Motor Vehicle"]), "motorbike": ("Motorcycle", ["Vehicle", "Motor Vehicle"]),
    "aeroplane": ("Airplane", ["Aircraft", "Vehicle"]), "bus": ("Bus", ["Vehicle", "Motor Vehicle"]),
    "train": ("Train", ["Vehicle"]), "truck": ("Truck", ["Vehicle", "Motor Vehicle"]),
    "boat": ("Boat", ["Vehicle"]), "traffic light": ("Traffic Light", []),
    "fire hydrant": ("Fire Hydrant", []), "stop sign": ("Stop Sign", ["Sign"]),
    "parking meter": ("Parking Meter", []), "bench": ("Bench", ["Furniture", "Seat"]),
    "bird": ("Bird", ["Animal"]), "cat": ("Cat", ["Animal", "Mammal", "Pet"]),
    "dog": ("Dog", ["Animal", "Mammal", "Pet"]), "horse": ("Horse", ["Animal", "Mammal"]),
    "sheep": ("Sheep", ["Animal", "Mammal"]), "cow": ("Cow", ["Animal", "Mammal"]),
    "elephant": ("Elephant", ["Animal", "Mammal"]), "bear": ("Bear", ["Animal", "Mammal"]),
    "zebra": ("Zebra", ["Animal", "Mammal"]), "giraffe": ("Giraffe", ["Animal", "Mammal"]),
    "backpack": ("Backpack", ["Bag"]), "umbrella": ("Umbrella", []), "handbag": ("Handbag", ["Bag"]),
    "tie": ("Tie", ["Clothing"]), "suitcase": ("Suitcase", ["Bag"]), "frisbee": ("Frisbee", ["Toy"]),
    "skis": ("Skis", ["Sports Equipment"]), "snowboard": ("Snowboard", ["Sports Equipment"]),
    "sports ball": ("Ball", ["Sports Equipment"]), "kite": ("Kite", ["Toy"]),
    "baseball bat": ("Baseball Bat", ["Sports Equipment"]),
    "baseball glove": ("Baseball Glove", ["Sports Equipment"]),
    "skateboard": ("Skateboard", ["Sports Equipment"]), "surfboard": ("Surfboard", ["Sports Equipment"]),
    "tennis racket": ("Tennis Racket", ["Sports Equipment"]), "bottle": ("Bottle", ["Container"]),
    "wine glass": ("Wine Glass", ["Glass"]), "cup": ("Cup", []), "fork": ("Fork", ["Cutlery"]),
    "knife": ("Knife", ["Cutlery"]), "spoon": ("Spoon", ["Cutlery"]), "bowl": ("Bowl", ["Dish"]),
    "banana": ("Banana", ["Food", "Fruit"]), "apple": ("Apple", ["Food", "Fruit"]),
    "sandwich": ("Sandwich", ["Food"]), "orange": ("Orange", ["Food", "Fruit"]),
    "broccoli": ("Broccoli", ["Food", "Vegetable"]), "carrot": ("Carrot", ["Food", "Vegetable"]),
    "hot dog": ("Hot Dog", ["Food"]), "pizza": ("Pizza", ["Food"]), "donut": ("Donut", ["Food", "Dessert"]),
    "cake": ("Cake", ["Food", "Dessert"]), "chair": ("Chair", ["Furniture", "Seat"]),
    "sofa": ("Couch", ["Furniture", "Seat"]), "pottedplant": ("Potted Plant", ["Plant"]),
    "bed": ("Bed", ["Furniture"]), "diningtable": ("Dining Table", ["Furniture", "Table"]),
    "toilet": ("Toilet", []), "tvmonitor": ("TV", ["Electronics"]), "laptop": ("Laptop", ["Computer", "Electronics"]),
    "mouse": ("Mouse", ["Computer", "Electronics"]), "remote": ("Remote Control", ["Electronics"]),
    "keyboard": ("Keyboard", ["Computer", "Electronics"]), "cell phone": ("Mobile Phone", ["Electronics"]),
    "microwave": ("Microwave", ["Appliance"]), "oven": ("Oven", ["Appliance"]),
    "toaster": ("Toaster", ["Appliance"]), "sink": ("Sink", []), "refrigerator": ("Refrigerator", ["Appliance"]),
    "book": ("Book", []), "clock": ("Clock", []), "vase": ("Vase", ["Container"]),
    "scissors": ("Scissors", ["Tool"]), "teddy bear": ("Teddy Bear", ["Toy"]),
    "hair drier": ("Hair Dryer", ["Appliance"]), "toothbrush": ("Toothbrush", []),
}


def title(name):
    return " ".join(w[:1].upper() + w[1:] for w in name.replace("_", " ").split())


def imagenet_names(js_path):
    text = open(js_path, encoding="utf-8").read()
    found = re.findall(r"(\d+):\s*(?:'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\")", text)
    names = [None] * len(found)
    for index, single, double in found:
        names[int(index)] = (single or double).replace("\\'", "'")
    assert len(names) == 1000 and None not in names
    return names


def wordnet(wordnet_dir):
    synsets = {}
    for line in open(f"{wordnet_dir}/data.noun", encoding="latin-1"):
        if line.startswith("  "):
            continue
        fields = line.split(" | ")[0].split()
        offset, count = fields[0], int(fields[3], 16)
        words = [fields[4 + 2 * i].lower() for i in range(count)]
        rest = fields[4 + 2 * count:]
        pointers = int(rest[0])
        hypernyms = [rest[1 + 4 * i + 1] for i in range(pointers) if rest[1 + 4 * i] in ("@", "@i")]
        synsets[offset] = (words, hypernyms)
    return synsets


def ancestors(synsets, offset):
    seen, todo = [], [offset]
    while todo:
        current = todo.pop(0)
        for parent in synsets[current][1]:
            if parent not in seen:
                seen.append(parent)
                todo.append(parent)
    return seen


def categories(parents):
    return [category for group, category in CATEGORIES if group & set(parents)][:1]


def main(js_path, darknet_dir, wordnet_dir, out_path):
    names = imagenet_names(js_path)
    wnids = sorted(l.strip() for l in open(f"{darknet_dir}/imagenet.labels.list").readlines()[:1000])
    shortnames = dict(zip(
        (l.strip() for l in open(f"{darknet_dir}/imagenet.labels.list").readlines()[:1000]),
        (l.strip() for l in open(f"{darknet_dir}/imagenet.shortnames.list").readlines()[:1000])))
    synsets = wordnet(wordnet_dir)
    # COCO names with their categories: an ImageNet class of the same name and category is the
    # same concept (zebra) and merges; another category is another thing (kite the bird).
    coco_categories = {v[0].lower(): categories(v[1] + [v[0]]) for v in COCO.values()}
    first_names = [n.split(",")[0].strip() for n in names]
    imagenet = []
    for index, (wnid, full, first) in enumerate(zip(wnids, names, first_names)):
        if shortnames[wnid].lower().replace(" ", "") not in full.lower().replace(" ", ""):
            raise SystemExit(f"class {index}: {wnid} {shortnames[wnid]!r} does not match {full!r}")
        offset = wnid[1:]
        chain = ancestors(synsets, offset)
        own = synsets[offset][0]
        parents = []
        for synset in [offset] + chain:
            lemma = synsets[synset][0][0]
            if synset != offset and lemma in PARENTS and PARENTS[lemma] not in parents:
                parents.append(PARENTS[lemma])
            if lemma in PETS and "Pet" not in parents:
                parents.append("Pet")
        parents = CLASS_PARENTS.get(wnid, parents)
        name = title(first)
        # A name another class (or a COCO class) also uses gets its nearest parent to tell them
        # apart: ImageNet's "kite" is a bird of prey, COCO's a toy.
        same_as_coco = coco_categories.get(name.lower()) == categories(parents)
        duplicate = first_names.count(first) > 1 or (name.lower() in coco_categories and not same_as_coco)
        if duplicate and parents and PARENTS.get(own[0]) is None:
            name = f"{name} ({parents[0]})"
        imagenet.append({"name": name, "synset": wnid, "parents": [p for p in parents if p != name],
                         "categories": categories(parents)})
    # Each parent's own parents, from its synset's hypernyms (so "Cat" → Mammal, Animal).
    parents_of = {}
    for offset, (words, _) in synsets.items():
        lemma = words[0]
        if lemma not in PARENTS or PARENTS[lemma] in parents_of:
            continue
        used = any(PARENTS[lemma] in c["parents"] for c in imagenet)
        if not used:
            continue
        above = []
        for synset in ancestors(synsets, offset):
            upper = synsets[synset][0][0]
            if upper in PARENTS and PARENTS[upper] not in above and PARENTS[upper] != PARENTS[lemma]:
                above.append(PARENTS[upper])
        if lemma in PETS:
            above.insert(0, "Pet")
        parents_of[PARENTS[lemma]] = above
    parents_of.setdefault("Pet", ["Animal"])
    for parent, above in EXTRA_PARENTS_OF.items():
        parents_of.setdefault(parent, above)
    coco = []
    for line in open(f"{darknet_dir}/coco.names"):
        raw = line.strip()
        if not raw:
            continue
        name, parents = COCO[raw]
        coco.append({"name": name, "coco": raw, "parents": parents,
                     "categories": categories(parents + [name])})
    assert len(coco) == 80
    json.dump({"version": MAP_VERSION, "imagenet": imagenet, "coco": coco, "parents_of": parents_of}, open(out_path, "w"),
              indent=1, ensure_ascii=False)
    print(f"wrote {out_path}: {len(imagenet)} ImageNet and {len(coco)} COCO classes")


if __name__ == "__main__":
    main(*sys.argv[1:5])
