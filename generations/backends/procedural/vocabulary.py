"""Reading a prompt: which colours, things, scenes, counts and arrangement its words ask for.

The reading is deliberately literal: a colour word colours the next thing named ("three red
circles", "a purple sky"), a number or count word counts it, "no"/"without" removes it (in
edits), and words we do not know are skipped.
"""

import re
from dataclasses import dataclass, field, replace

COLOURS = {
    "red": "#e03131",
    "scarlet": "#f03e3e",
    "crimson": "#c2255c",
    "ruby": "#b2163f",
    "maroon": "#862e2e",
    "burgundy": "#7a1c33",
    "pink": "#f783ac",
    "rose": "#e64980",
    "magenta": "#d6336c",
    "fuchsia": "#cc2fa8",
    "coral": "#ff6b6b",
    "salmon": "#fa8072",
    "peach": "#ffb38a",
    "orange": "#fd7e14",
    "amber": "#ffb300",
    "yellow": "#fcc419",
    "gold": "#f2b705",
    "golden": "#f2b705",
    "lemon": "#ffe066",
    "lime": "#82c91e",
    "green": "#2f9e44",
    "emerald": "#0ca678",
    "jade": "#12b886",
    "olive": "#6b8e23",
    "mint": "#63e6be",
    "teal": "#0c8599",
    "turquoise": "#22b8cf",
    "cyan": "#15aabf",
    "aqua": "#3bc9db",
    "blue": "#1c7ed6",
    "azure": "#339af0",
    "sapphire": "#1946b9",
    "cobalt": "#1f4fd1",
    "navy": "#1b2a6b",
    "indigo": "#4c3fbf",
    "violet": "#7950f2",
    "purple": "#862e9c",
    "lavender": "#b197fc",
    "lilac": "#c8a2c8",
    "plum": "#8e4585",
    "brown": "#8b5a2b",
    "chocolate": "#6f4518",
    "copper": "#b87333",
    "bronze": "#a97142",
    "tan": "#d2b48c",
    "beige": "#e9d8a6",
    "cream": "#fff4d6",
    "ivory": "#fffbea",
    "white": "#f8f9fa",
    "silver": "#adb5bd",
    "grey": "#868e96",
    "gray": "#868e96",
    "charcoal": "#343a40",
    "black": "#15171c",
}
RAINBOW = ["#e03131", "#fd7e14", "#fcc419", "#2f9e44", "#1c7ed6", "#4c3fbf", "#862e9c"]
SHADE_WORDS = {
    "dark": -0.38,
    "deep": -0.3,
    "light": 0.4,
    "pale": 0.5,
    "pastel": 0.45,
    "bright": 0.12,
    "neon": 0.1,
}

#: Things that can be drawn, by the words that name them (singular, plural).
OBJECT_WORDS = {
    "circle": [
        "circle",
        "circles",
        "dot",
        "dots",
        "ball",
        "balls",
        "bubble",
        "bubbles",
        "orb",
        "orbs",
        "disc",
        "discs",
        "disk",
        "disks",
        "sphere",
        "spheres",
    ],
    "square": ["square", "squares", "box", "boxes", "block", "blocks", "cube", "cubes"],
    "rectangle": ["rectangle", "rectangles", "bar", "bars"],
    "triangle": ["triangle", "triangles", "pyramid", "pyramids"],
    "star": ["star", "stars"],
    "heart": ["heart", "hearts"],
    "hexagon": ["hexagon", "hexagons", "honeycomb"],
    "diamond": ["diamond", "diamonds", "rhombus", "gem", "gems", "crystal", "crystals"],
    "flower": [
        "flower",
        "flowers",
        "blossom",
        "blossoms",
        "tulip",
        "tulips",
        "daisy",
        "daisies",
        "poppy",
        "poppies",
    ],
    "tree": ["tree", "trees", "pine", "pines", "oak", "oaks"],
    "house": [
        "house",
        "houses",
        "home",
        "homes",
        "cabin",
        "cabins",
        "cottage",
        "cottages",
        "hut",
        "huts",
    ],
    "cloud": ["cloud", "clouds"],
    "bird": ["bird", "birds", "seagull", "seagulls", "gull", "gulls", "crow", "crows"],
    "fish": ["fish", "fishes", "goldfish"],
    "boat": ["boat", "boats", "ship", "ships", "sailboat", "sailboats", "yacht", "yachts"],
    "balloon": ["balloon", "balloons"],
    "sun": ["sun", "suns"],
    "moon": ["moon", "moons"],
    "planet": ["planet", "planets"],
}
#: Words naming several of a thing ("fish" alone reads as several).
PLURALS = {word for words in OBJECT_WORDS.values() for word in words if word.endswith("s")} | {
    "fish"
}
WORD_TO_OBJECT = {word: kind for kind, words in OBJECT_WORDS.items() for word in words}

TIMES = {
    "night": ["night", "nighttime", "midnight", "starry", "moonlit", "nocturnal"],
    "sunset": ["sunset", "sundown", "dusk", "evening", "twilight"],
    "sunrise": ["sunrise", "dawn", "morning", "daybreak"],
    "day": ["day", "daytime", "noon", "midday", "sunny", "daylight", "summer"],
}
WORD_TO_TIME = {word: time for time, words in TIMES.items() for word in words}

SETTINGS = {
    "ocean": [
        "ocean",
        "oceans",
        "sea",
        "seas",
        "beach",
        "waves",
        "wave",
        "water",
        "lake",
        "coast",
        "shore",
        "seaside",
        "harbor",
        "harbour",
        "bay",
    ],
    "forest": ["forest", "forests", "woods", "woodland", "jungle"],
    "mountains": ["mountain", "mountains", "hills", "hill", "peaks", "peak", "alps", "volcano"],
    "desert": ["desert", "dunes", "dune", "sand", "sahara"],
    "city": [
        "city",
        "skyline",
        "buildings",
        "building",
        "town",
        "downtown",
        "skyscrapers",
        "skyscraper",
        "urban",
        "metropolis",
    ],
    "snow": ["snow", "snowy", "winter", "snowfall", "snowflakes", "blizzard", "frozen"],
    "rain": ["rain", "rainy", "storm", "stormy", "raining", "drizzle"],
    "space": ["space", "galaxy", "cosmos", "cosmic", "universe", "nebula", "outer"],
    "meadow": ["meadow", "field", "fields", "grass", "grassy", "garden", "prairie", "park", "lawn"],
}
WORD_TO_SETTING = {word: name for name, words in SETTINGS.items() for word in words}
#: Settings drawn on the ground below a horizon.
GROUND_SETTINGS = ("mountains", "city", "desert", "forest", "meadow", "snow", "ocean")

LAYOUTS = {
    "grid": ["grid", "checkerboard", "tiled", "tiles", "pattern", "matrix", "rows"],
    "row": ["row", "line", "lined", "queue", "parade", "horizontal"],
    "stack": ["stack", "stacked", "tower", "column", "vertical"],
    "ring": ["ring", "around", "orbit", "orbiting", "wreath", "circular"],
    "spiral": ["spiral", "swirl", "swirling", "vortex", "whirl"],
    "scatter": ["scattered", "random", "confetti", "everywhere", "floating", "falling"],
    "center": ["centered", "center", "centre", "middle", "single", "alone", "lonely"],
}
WORD_TO_LAYOUT = {word: layout for layout, words in LAYOUTS.items() for word in words}

SIZES = {
    "large": ["big", "bigger", "large", "larger", "huge", "giant", "enormous", "massive", "bold"],
    "small": ["small", "smaller", "tiny", "little", "mini", "miniature", "petite"],
}
WORD_TO_SIZE = {word: size for size, words in SIZES.items() for word in words}

COUNT_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "single": 1,
    "lone": 1,
    "two": 2,
    "pair": 2,
    "couple": 2,
    "both": 2,
    "three": 3,
    "few": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "dozen": 12,
    "fifteen": 15,
    "twenty": 20,
    "several": 5,
    "many": 14,
    "lots": 16,
    "dozens": 24,
    "hundreds": 40,
    "countless": 40,
    "numerous": 14,
    "lot": 16,
}
ARTICLES = {"a", "an"}
RAINBOW_WORDS = {"rainbow", "colorful", "colourful", "multicolored", "multicoloured"}
#: Words that may stand between a colour and the thing it colours ("red and blue squares").
_BRIDGE = {"and", "or"}
NEGATIONS = {"no", "without", "remove", "not", "minus"}
MAX_COUNT = 60
_TOKEN = re.compile(r"[a-z]+|\d+")


@dataclass(frozen=True)
class ObjectSpec:
    kind: str
    #: None: the prompt named the thing in the plural without saying how many.
    count: int | None
    colours: tuple[str, ...] = ()
    size: str | None = None
    #: The prompt said how many (a number or a count word, not just "a" or a singular).
    counted: bool = False


@dataclass(frozen=True)
class Spec:
    """Everything the picture should show, as read from a prompt."""

    objects: tuple[ObjectSpec, ...] = ()
    time: str | None = None
    settings: tuple[str, ...] = ()
    layout: str | None = None
    #: Colours named without a thing to colour: they tint the picture.
    palette: tuple[str, ...] = ()
    sky_colours: tuple[str, ...] = ()
    setting_colours: tuple[tuple[str, tuple[str, ...]], ...] = ()
    removed: frozenset = field(default_factory=frozenset)
    #: A size named for no thing in particular ("make them bigger"): an edit applies it to all.
    resize: str | None = None

    def setting_colour(self, setting: str) -> tuple[str, ...]:
        return dict(self.setting_colours).get(setting, ())

    def describe(self) -> str:
        """A short account of what was read, for the job page."""
        parts = []
        for obj in self.objects:
            count = "some" if obj.count is None else str(obj.count)
            names = "/".join(colour_name(c) for c in obj.colours)
            label = obj.kind if obj.count == 1 else _plural(obj.kind)
            parts.append(" ".join(p for p in (count, obj.size or "", names, label) if p))
        if self.sky_colours:
            parts.append("/".join(colour_name(c) for c in self.sky_colours) + " sky")
        if self.time:
            parts.append(self.time)
        for setting in self.settings:
            tint = "/".join(colour_name(c) for c in self.setting_colour(setting))
            parts.append(f"{tint} {setting}" if tint else setting)
        if self.layout:
            parts.append(f"{self.layout} layout")
        if self.palette:
            parts.append("tinted " + "/".join(colour_name(c) for c in self.palette))
        return ", ".join(parts) or "an abstract composition"


def _plural(kind: str) -> str:
    return {"fish": "fish", "balloon": "balloons"}.get(
        kind, kind + ("es" if kind.endswith(("sh", "x")) else "s")
    )


_NAME_OF = {}
for _name, _hex in COLOURS.items():
    _NAME_OF.setdefault(_hex, _name)


def colour_name(hex_colour: str) -> str:
    return _NAME_OF.get(hex_colour, hex_colour)


def shade(hex_colour: str, amount: float) -> str:
    """Lighten (amount > 0) or darken (amount < 0) a #rrggbb colour towards white or black."""
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    if amount >= 0:
        r, g, b = (round(c + (255 - c) * amount) for c in (r, g, b))
    else:
        r, g, b = (round(c * (1 + amount)) for c in (r, g, b))
    return f"#{r:02x}{g:02x}{b:02x}"


def parse(prompt: str) -> Spec:
    """Read ``prompt`` into a Spec."""
    reading = _Reading(_TOKEN.findall(prompt.lower()))
    for index, token in enumerate(reading.tokens):
        reading.read(index, token)
    return reading.spec()


@dataclass
class _Reading:
    """A prompt read word by word: what the words so far name, and the describing words
    (colours, a count, a size, a shade, "no") still waiting for the thing they describe."""

    tokens: list[str]
    objects: list[ObjectSpec] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)
    setting_colours: dict[str, tuple[str, ...]] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    time: str | None = None
    layout: str | None = None
    sky: tuple[str, ...] = ()
    resize: str | None = None
    #: The last thing named, ("object", kind), ("setting", name) or ("sky", ""): colours and
    #: sizes that come after it are about it ("make the circles green").
    last_named: tuple[str, str] | None = None
    # the waiting words
    count: int | None = None
    counted: bool = False
    size: str | None = None
    shade_by: float | None = None
    colours: list[str] = field(default_factory=list)
    negate: bool = False

    def read(self, index: int, token: str) -> None:
        if token in COLOURS or token in RAINBOW_WORDS:
            self._colour(index, token)
        elif token in NEGATIONS:
            self.negate = True
        elif token.isdigit():
            self.count, self.counted = max(1, min(MAX_COUNT, int(token))), True
        elif token in SHADE_WORDS:
            self.shade_by = SHADE_WORDS[token]
        elif token in WORD_TO_OBJECT:
            self._object(token)
        elif token in WORD_TO_TIME:
            self._time(token)
        elif token in WORD_TO_SETTING:
            self._setting(token)
        elif token == "sky" or token == "background":
            if self.colours:
                self.sky = tuple(self.colours)
            self.last_named = ("sky", "")
            self._reset()
        elif token in WORD_TO_LAYOUT:
            self._layout(token)
        elif token in WORD_TO_SIZE:
            self._size(index, token)
        elif token in ARTICLES:
            if not self.counted:
                self.count = 1
        elif token in COUNT_WORDS:
            self.count, self.counted = COUNT_WORDS[token], True

    def spec(self) -> Spec:
        return Spec(
            objects=tuple(self.objects),
            time=self.time,
            settings=tuple(self.settings),
            layout=self.layout,
            palette=tuple(dict.fromkeys(self.colours)),  # colours that described nothing
            sky_colours=self.sky,
            setting_colours=tuple(sorted(self.setting_colours.items())),
            removed=frozenset(self.removed),
            resize=self.resize,
        )

    def _reset(self) -> None:
        self.count = self.size = self.shade_by = None
        self.counted = False
        self.colours = []
        self.negate = False

    def _colour(self, index: int, token: str) -> None:
        if token in COLOURS:
            new = [shade(COLOURS[token], self.shade_by) if self.shade_by else COLOURS[token]]
        else:
            new = list(RAINBOW)
        self.shade_by = None
        if _leads_to_thing(self.tokens, index + 1) or not self._colour_back(new):
            self.colours.extend(new)

    def _colour_back(self, new: list[str]) -> bool:
        """Give colours that follow a thing to that thing ("make the circles green")."""
        if self.last_named is None:
            return False
        what, name = self.last_named
        if what == "object":
            for i, o in enumerate(self.objects):
                if o.kind == name:
                    self.objects[i] = replace(
                        o, colours=tuple(dict.fromkeys(o.colours + tuple(new)))
                    )
        elif what == "setting":
            self.setting_colours[name] = tuple(
                dict.fromkeys(self.setting_colours.get(name, ()) + tuple(new))
            )
        else:
            self.sky = tuple(dict.fromkeys(self.sky + tuple(new)))
        return True

    def _object(self, token: str) -> None:
        kind = WORD_TO_OBJECT[token]
        if self.negate:
            self.removed.add(kind)
            self.objects = [o for o in self.objects if o.kind != kind]
        else:
            plural = token in PLURALS
            n = self.count if self.count is not None else (None if plural else 1)
            existing = next((i for i, o in enumerate(self.objects) if o.kind == kind), None)
            spec = ObjectSpec(
                kind=kind,
                count=n,
                colours=tuple(self.colours),
                size=self.size,
                counted=self.counted,
            )
            if existing is None:
                self.objects.append(spec)
            else:  # "red circles ... more circles": one entry, the later words refine it
                old = self.objects[existing]
                self.objects[existing] = replace(
                    old,
                    count=n if self.counted else old.count,
                    colours=spec.colours or old.colours,
                    size=self.size or old.size,
                    counted=old.counted or self.counted,
                )
            self.last_named = ("object", kind)
        self._reset()

    def _time(self, token: str) -> None:
        if self.negate:
            self.removed.add(WORD_TO_TIME[token])
        else:
            self.time = WORD_TO_TIME[token]
            if self.colours:
                self.sky = tuple(self.colours)
            self.last_named = ("sky", "")
        self._reset()

    def _setting(self, token: str) -> None:
        name = WORD_TO_SETTING[token]
        if self.negate:
            self.removed.add(name)
            self.settings = [s for s in self.settings if s != name]
        else:
            if name not in self.settings:
                self.settings.append(name)
            if self.colours:
                self.setting_colours[name] = tuple(self.colours)
            self.last_named = ("setting", name)
        self._reset()

    def _layout(self, token: str) -> None:
        self.layout = WORD_TO_LAYOUT[token]
        if token == "single":
            self.count, self.counted = 1, True
        elif not self.counted:  # "a grid of circles": the article was not a count
            self.count = None

    def _size(self, index: int, token: str) -> None:
        if _leads_to_thing(self.tokens, index + 1):
            self.size = WORD_TO_SIZE[token]
        elif self.last_named and self.last_named[0] == "object":
            # "make the balloons bigger": the size follows the thing it is about
            self.objects = [
                replace(o, size=WORD_TO_SIZE[token]) if o.kind == self.last_named[1] else o
                for o in self.objects
            ]
        else:
            self.resize = WORD_TO_SIZE[token]


def _leads_to_thing(tokens: list[str], start: int) -> bool:
    """Whether the words from ``start`` name a thing (after more colours, counts, sizes)."""
    for token in tokens[start:]:
        if token in WORD_TO_OBJECT or token in WORD_TO_SETTING or token in WORD_TO_TIME:
            return True
        if token in ("sky", "background"):
            return True
        if not (
            token in COLOURS
            or token in RAINBOW_WORDS
            or token in SHADE_WORDS
            or token in WORD_TO_SIZE
            or token in COUNT_WORDS
            or token.isdigit()
            or token in _BRIDGE
        ):
            return False
    return False


def apply_edit(base: Spec, edit: Spec) -> Spec:
    """``base`` changed as ``edit`` asks: named things are recoloured, recounted or added,
    "no X" removes X, a new time of day or layout replaces the old, and colours named on
    their own recolour everything."""
    objects = [o for o in base.objects if o.kind not in edit.removed]
    for change in edit.objects:
        index = next((i for i, o in enumerate(objects) if o.kind == change.kind), None)
        if index is None:
            objects.append(change)
            continue
        old = objects[index]
        objects[index] = replace(
            old,
            count=change.count if change.counted else old.count,
            counted=old.counted or change.counted,
            colours=change.colours or old.colours,
            size=change.size or old.size,
        )
    if edit.resize:
        objects = [replace(o, size=edit.resize) for o in objects]
    if edit.palette:
        objects = [
            replace(o, colours=edit.palette)
            if o.kind not in {c.kind for c in edit.objects if c.colours}
            else o
            for o in objects
        ]
    settings = [s for s in base.settings if s not in edit.removed]
    settings += [s for s in edit.settings if s not in settings]
    time = edit.time or (None if base.time in edit.removed else base.time)
    setting_colours = dict(base.setting_colours)
    setting_colours.update(dict(edit.setting_colours))
    return Spec(
        objects=tuple(objects),
        time=time,
        settings=tuple(settings),
        layout=edit.layout or base.layout,
        palette=edit.palette or base.palette,
        sky_colours=edit.sky_colours or base.sky_colours,
        setting_colours=tuple(sorted((k, v) for k, v in setting_colours.items() if k in settings)),
        removed=base.removed | edit.removed,
    )


def read_chain(prompts: list[str]) -> Spec:
    """The spec of a first prompt followed by edits, each applied in turn."""
    spec = parse(prompts[0]) if prompts else Spec()
    for edit in prompts[1:]:
        spec = apply_edit(spec, parse(edit))
    return spec
