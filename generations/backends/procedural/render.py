"""Drawing a Spec as an SVG picture: sky, scenery, then the things the prompt named.

Every layer draws its random choices from its own stream seeded by (seed, layer name), so a
picture is the same for the same prompt and seed, and an edit that changes one thing leaves
the rest of the picture where it was. ``detail`` (0 to 3) adds texture for enhancements.
"""

import hashlib
import math
import random
import re
from xml.sax.saxutils import escape

from .vocabulary import GROUND_SETTINGS, Spec, shade

W, H = 1024, 768

SKIES = {
    "night": ["#070b1f", "#131a3f", "#2a3468"],
    "sunset": ["#2d1b4e", "#8e3b6b", "#e8684a", "#f9b872"],
    "sunrise": ["#6d8fc9", "#c9a3c7", "#f6c1a0", "#ffe4b0"],
    "day": ["#3b8fd9", "#7fbff0", "#d2ecfb"],
    "space": ["#03040b", "#0d1030", "#1b1446"],
}
SOFT_BACKGROUNDS = [
    ["#fdf6ec", "#e6eefb"],
    ["#fdf2f8", "#e0f2fe"],
    ["#ecfdf5", "#eef2ff"],
    ["#fff7ed", "#fce7f3"],
]
PALETTES = {
    "night": ["#ffd43b", "#91a7ff", "#e599f7", "#fff3bf"],
    "sunset": ["#ff922b", "#f06595", "#ffd43b", "#845ef7"],
    "sunrise": ["#ffa8a8", "#ffd8a8", "#74c0fc", "#b197fc"],
    "ocean": ["#ffd43b", "#ff8787", "#ffffff", "#15aabf"],
    "forest": ["#f59f00", "#e8590c", "#fff3bf", "#94d82d"],
}
FREE_PALETTES = [
    ["#ff6b6b", "#feca57", "#48dbfb", "#1dd1a1", "#5f27cd"],
    ["#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51"],
    ["#ef476f", "#ffd166", "#06d6a0", "#118ab2", "#073b4c"],
    ["#8338ec", "#3a86ff", "#ff006e", "#fb5607", "#ffbe0b"],
]
KIND_COLOURS = {
    "tree": ["#2f9e44", "#37b24d", "#2b8a3e"],
    "house": ["#f4e3c1", "#ffe8cc", "#e9ecef"],
    "cloud": ["#ffffff"],
    "bird": ["#2b2d42"],
    "fish": ["#ff922b", "#fcc419", "#ff6b6b"],
    "boat": ["#8b5a2b", "#c92a2a", "#1864ab"],
    "sun": ["#ffc933"],
    "moon": ["#f4f1de"],
    "flower": ["#f06595", "#ffd43b", "#ff8787", "#cc5de8", "#ffffff"],
    "planet": ["#ff922b", "#74c0fc", "#b197fc", "#63e6be"],
}
SKY_KINDS = {"cloud", "bird", "balloon", "sun", "moon", "planet"}
GROUND_KINDS = {"tree", "house", "flower"}
WATER_KINDS = {"boat", "fish"}
BASE_SIZE = {
    "circle": 120,
    "square": 110,
    "rectangle": 100,
    "triangle": 120,
    "star": 120,
    "heart": 120,
    "hexagon": 120,
    "diamond": 110,
    "cloud": 150,
    "bird": 56,
    "balloon": 70,
    "sun": 120,
    "moon": 100,
    "planet": 110,
    "tree": 170,
    "house": 160,
    "flower": 60,
    "fish": 70,
    "boat": 120,
}
DEFAULT_COUNT = {
    "cloud": 3,
    "bird": 5,
    "balloon": 5,
    "tree": 7,
    "house": 3,
    "flower": 9,
    "fish": 5,
    "boat": 3,
    "sun": 1,
    "moon": 1,
    "planet": 2,
}
LAYOUT_COUNT = {
    "grid": 12,
    "row": 5,
    "stack": 4,
    "ring": 8,
    "spiral": 21,
    "scatter": 7,
    "center": 1,
}
SIZE_FACTOR = {"large": 1.6, "small": 0.55, None: 1.0}


def n(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def mix(a: str, b: str, t: float) -> str:
    ca = [int(a[i : i + 2], 16) for i in (1, 3, 5)]
    cb = [int(b[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(ca, cb))


class Picture:
    """An SVG under construction: definitions, layers, and random streams per layer."""

    def __init__(self, spec: Spec, seed: int, detail: int):
        self.spec, self.seed, self.detail = spec, seed, detail
        self.defs: list[str] = []
        self.body: list[str] = []
        self._ids = 0
        # Ids unique to this picture, so several pictures can share one page.
        self.prefix = "p" + hashlib.sha256(f"{seed}|{detail}|{spec!r}".encode()).hexdigest()[:8]
        self.time = spec.time or ("night" if "space" in spec.settings else None)
        settings = [s for s in spec.settings]
        kinds = {o.kind for o in spec.objects}
        if kinds & WATER_KINDS and "ocean" not in settings:
            settings.append("ocean")
        if kinds & GROUND_KINDS and not any(
            s in GROUND_SETTINGS and s != "ocean" for s in settings
        ):
            settings.append("meadow")
        self.settings = settings
        self.land = [s for s in GROUND_SETTINGS if s in settings and s != "ocean"]
        self.has_ocean = "ocean" in settings
        self.horizon = H * 0.58 if (self.land or self.has_ocean) else None
        if self.horizon and not self.time:
            self.time = "day"
        if self.land and self.has_ocean:
            self.shore = self.horizon + H * 0.07
        else:
            self.shore = H if self.land else self.horizon
        self.celestial: tuple[float, float, str] | None = None  # x, y, colour (for reflections)

    def rng(self, layer: str) -> random.Random:
        return random.Random(f"{self.seed}:{layer}")

    def new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{self.prefix}{prefix}{self._ids}"

    def linear(self, colours: list[str], *, x2: float = 0, y2: float = 1) -> str:
        gid = self.new_id("g")
        stops = "".join(
            f'<stop offset="{n(i / max(1, len(colours) - 1) * 100)}%" stop-color="{c}"/>'
            for i, c in enumerate(colours)
        )
        self.defs.append(
            f'<linearGradient id="{gid}" x1="0" y1="0" x2="{x2}" y2="{y2}">{stops}</linearGradient>'
        )
        return f"url(#{gid})"

    def radial(self, inner: str, outer: str, *, inner_opacity=1.0, outer_opacity=0.0) -> str:
        gid = self.new_id("r")
        self.defs.append(
            f'<radialGradient id="{gid}"><stop offset="0%" stop-color="{inner}" stop-opacity="{inner_opacity}"/>'
            f'<stop offset="100%" stop-color="{outer}" stop-opacity="{outer_opacity}"/></radialGradient>'
        )
        return f"url(#{gid})"

    def tint(self, colour: str) -> str:
        """A scenery colour under the picture's light."""
        return {
            "night": lambda c: mix(c, "#0b1030", 0.55),
            "sunset": lambda c: mix(c, "#6b2d5c", 0.28),
            "sunrise": lambda c: mix(c, "#f6b89a", 0.15),
        }.get(self.time, lambda c: c)(colour)

    def layer(self, name: str, content: list[str], extra: str = "") -> None:
        if content:
            self.body.append(f'<g data-layer="{name}"{extra}>{"".join(content)}</g>')


# --- sky ------------------------------------------------------------------------------------


def draw_sky(p: Picture) -> None:
    spec = p.spec
    if "space" in p.settings:
        colours = SKIES["space"]
    elif p.time:
        colours = SKIES[p.time]
    elif spec.palette:
        base = spec.palette[0]
        colours = [shade(base, 0.82), shade(base, 0.6)]
    else:
        colours = p.rng("background").choice(SOFT_BACKGROUNDS)
    if spec.sky_colours:
        sky = spec.sky_colours[0]
        if not p.time and "space" not in p.settings:
            colours = [shade(sky, -0.2), sky, shade(sky, 0.45)]
        else:
            colours = [mix(c, sky, 0.55) for c in colours]
    if "rain" in p.settings:
        colours = [mix(c, "#6c7a89", 0.45) for c in colours]
    p.layer("sky", [f'<rect width="{W}" height="{H}" fill="{p.linear(colours)}"/>'])


def draw_celestial(p: Picture) -> None:
    kinds = {o.kind for o in p.spec.objects}
    rng = p.rng("celestial")
    out: list[str] = []
    if p.time in ("night",) or "space" in p.settings:
        count = (160 if "space" in p.settings else 90) + 70 * p.detail
        top = p.horizon or H
        for _ in range(count):
            x, y = rng.uniform(0, W), rng.uniform(0, top * 0.95)
            out.append(
                f'<circle cx="{n(x)}" cy="{n(y)}" r="{n(rng.uniform(0.6, 1.9))}" fill="#ffffff" '
                f'opacity="{n(rng.uniform(0.35, 0.95))}"/>'
            )
        if "space" in p.settings:
            for i in range(3):
                colours = p.spec.palette or ("#7048e8", "#d6336c", "#1c7ed6")
                colour = colours[i % len(colours)]
                ex, ey = rng.uniform(150, 870), rng.uniform(120, 600)
                out.append(
                    f'<ellipse cx="{n(ex)}" cy="{n(ey)}" '
                    f'rx="{n(rng.uniform(160, 300))}" ry="{n(rng.uniform(70, 150))}" '
                    f'fill="{p.radial(colour, colour, inner_opacity=0.45)}" '
                    f'transform="rotate({n(rng.uniform(-30, 30))} {n(ex)} {n(ey)})"/>'
                )
        if (
            p.time == "night"
            and "moon" not in kinds
            and "moon" not in p.spec.removed
            and "space" not in p.settings
        ):
            x, y = W * 0.8, H * 0.18
            out.append(moon_shape(p, x, y, 92, "#f4f1de"))
            p.celestial = (x, y, "#f4f1de")
    elif (
        p.time in ("sunset", "sunrise", "day")
        and "sun" not in kinds
        and "sun" not in p.spec.removed
        and "rain" not in p.settings
    ):
        if p.time == "day":
            x, y, size, colour = W * 0.82, H * 0.17, 100, "#ffd43b"
        else:
            x = W * rng.uniform(0.35, 0.65)
            y = (p.horizon or H * 0.75) - 18
            size, colour = 150, "#ffb347" if p.time == "sunset" else "#ffd58a"
        out.append(sun_shape(p, x, y, size, colour, rays=p.time == "day"))
        p.celestial = (x, y, colour)
    p.layer("celestial", out)


# --- scenery --------------------------------------------------------------------------------


def draw_scenery(p: Picture) -> None:
    if p.horizon is None:
        return
    if "mountains" in p.settings:
        draw_mountains(p)
    if p.land:
        draw_ground(p)
    if "city" in p.settings:
        draw_city(p)
    if "desert" in p.settings:
        draw_dunes(p)
    if "forest" in p.settings:
        draw_forest(p)
    if "meadow" in p.settings:
        draw_grass(p)
    if p.has_ocean:
        draw_ocean(p)


def draw_mountains(p: Picture) -> None:
    rng = p.rng("mountains")
    base_colour = (p.spec.setting_colour("mountains") or ("#5f7fa8",))[0]
    out = []
    for depth, (lift, colour) in enumerate([(0.36, shade(base_colour, 0.3)), (0.24, base_colour)]):
        points = [(0, p.horizon)]
        x = -40
        while x < W + 80:
            peak = p.horizon - H * rng.uniform(lift * 0.55, lift)
            points.append((x + rng.uniform(40, 90), peak))
            x += rng.uniform(110, 200)
            points.append((x, p.horizon - H * rng.uniform(0.02, lift * 0.4)))
        points.append((W, p.horizon))
        poly = " ".join(f"{n(a)},{n(b)}" for a, b in points)
        out.append(f'<polygon points="{poly}" fill="{p.tint(colour)}"/>')
        if "snow" in p.settings or depth == 0:
            for (a, b), (c, d) in zip(points, points[1:]):
                if d < b - 40:  # an upward slope ending in a peak: cap it
                    cap = 0.22
                    out.append(
                        f'<polygon points="{n(c)},{n(d)} {n(c - (c - a) * cap)},{n(d + (b - d) * cap)} '
                        f'{n(c + 24)},{n(d + (b - d) * cap * 0.9)}" fill="{p.tint("#f8f9fa")}" opacity=".9"/>'
                    )
    p.layer("mountains", out)


def draw_ground(p: Picture) -> None:
    for name, colours in (
        ("snow", ["#f1f5fb", "#d6e2f0"]),
        ("desert", ["#f0c987", "#d9a05b"]),
        ("meadow", ["#74b84f", "#3f8f3a"]),
        ("forest", ["#3d7d3f", "#24572a"]),
        ("city", ["#5b6070", "#3b3f4a"]),
        ("mountains", ["#6f8f76", "#4d6b55"]),
    ):
        if name in p.land:
            override = p.spec.setting_colour(name)
            if override:
                colours = [shade(override[0], 0.15), shade(override[0], -0.25)]
            break
    fill = p.linear([p.tint(c) for c in colours])
    p.layer(
        "ground",
        [
            f'<rect x="0" y="{n(p.horizon)}" width="{W}" height="{n(p.shore - p.horizon)}" fill="{fill}"/>'
        ],
    )


def draw_city(p: Picture) -> None:
    rng = p.rng("city")
    override = p.spec.setting_colour("city")
    body = (
        override[0]
        if override
        else {"night": "#1a1f36", "sunset": "#3d2e4f"}.get(p.time, "#5c677d")
    )
    lit_share = {"night": 0.55, "sunset": 0.3}.get(p.time, 0.0)
    out = []
    x = -10
    while x < W:
        width = rng.uniform(44, 96)
        height = H * rng.uniform(0.12, 0.4)
        top = p.horizon - height + 8
        out.append(
            f'<rect x="{n(x)}" y="{n(top)}" width="{n(width)}" height="{n(height)}" '
            f'fill="{shade(body, rng.uniform(-0.15, 0.15))}"/>'
        )
        for wy in range(int(top + 10), int(p.horizon - 12), 16):
            for wx in range(int(x + 7), int(x + width - 10), 13):
                lit = rng.random() < lit_share
                colour = "#ffd866" if lit else ("#a9c7e8" if lit_share == 0 else "#2b3050")
                out.append(
                    f'<rect x="{wx}" y="{wy}" width="6" height="8" fill="{colour}" '
                    f'opacity="{".95" if lit else ".55"}"/>'
                )
        x += width + rng.uniform(2, 14)
    p.layer("city", out)


def draw_dunes(p: Picture) -> None:
    rng = p.rng("desert")
    out = []
    span = p.shore - p.horizon
    for i in range(3 + p.detail):
        y = p.horizon + span * (0.15 + i * 0.22)
        c1 = rng.uniform(0.2, 0.45) * W
        path = (
            f"M0,{n(y)} Q{n(c1)},{n(y - span * 0.2)} {n(W * 0.55)},{n(y)} "
            f"T{n(W)},{n(y - span * 0.05)} L{W},{n(p.shore)} L0,{n(p.shore)} Z"
        )
        out.append(
            f'<path d="{path}" fill="{p.tint(shade("#e0b06c", 0.12 - i * 0.1))}" opacity=".85"/>'
        )
    p.layer("desert", out)


def draw_forest(p: Picture) -> None:
    rng = p.rng("forest")
    override = p.spec.setting_colour("forest")
    green = override[0] if override else "#2f7d3a"
    out = []
    strip = p.shore - p.horizon
    rows = 3 if not p.has_ocean else 2
    for row in range(rows):
        base = (
            p.horizon + strip * (0.1 + row * (0.8 / rows))
            if not p.has_ocean
            else p.horizon + strip * (0.4 + row * 0.3)
        )
        scale = (0.5 + row * 0.35) * (0.45 if p.has_ocean else 1.0)
        x = rng.uniform(-30, 0)
        while x < W + 30:
            size = rng.uniform(90, 150) * scale
            colour = p.tint(shade(green, rng.uniform(-0.25, 0.1) - 0.12 * (rows - row - 1)))
            out.append(pine(x, base, size, colour))
            x += size * rng.uniform(0.32, 0.55)
    p.layer("forest", out)


def draw_grass(p: Picture) -> None:
    rng = p.rng("meadow")
    out = []
    for _ in range(50 + 60 * p.detail):
        x = rng.uniform(0, W)
        y = rng.uniform(p.horizon + 8, p.shore)
        h = 6 + (y - p.horizon) / max(1, p.shore - p.horizon) * 14
        out.append(
            f'<path d="M{n(x)},{n(y)} l{n(-h * 0.3)},{n(-h)} M{n(x)},{n(y)} l{n(h * 0.25)},{n(-h * 0.9)}" '
            f'stroke="{p.tint("#2b7a2b")}" stroke-width="1.6" fill="none" opacity=".7"/>'
        )
    p.layer("meadow", out)


def draw_ocean(p: Picture) -> None:
    rng = p.rng("ocean")
    top = p.shore if p.land else p.horizon
    override = p.spec.setting_colour("ocean")
    if override:
        colours = [p.tint(shade(override[0], 0.25)), p.tint(shade(override[0], -0.3))]
    else:
        colours = {
            "night": ["#23356e", "#0a1230"],
            "sunset": ["#b35a72", "#2e2a5c"],
            "sunrise": ["#9fb6df", "#3d6ea8"],
        }.get(p.time, ["#4aa3df", "#16528c"])
    out = [
        f'<rect x="0" y="{n(top)}" width="{W}" height="{n(H - top)}" fill="{p.linear(colours)}"/>'
    ]
    if p.celestial:
        cx, _, colour = p.celestial
        y = top + 6
        while y < H:
            width = 70 * (1 - (y - top) / (H - top) * 0.6) * rng.uniform(0.5, 1.2)
            out.append(
                f'<rect x="{n(cx - width / 2)}" y="{n(y)}" width="{n(width)}" height="3" rx="1.5" '
                f'fill="{colour}" opacity=".5"/>'
            )
            y += rng.uniform(9, 16)
    rows = 9 + 5 * p.detail
    crest = shade(colours[0], 0.45)
    for i in range(rows):
        t = (i + 1) / (rows + 1)
        y = top + (H - top) * t**1.4
        amp, length = 3 + 9 * t, 40 + 90 * t
        x = -rng.uniform(0, length)
        segments = []
        while x < W + length:
            segments.append(f"q{n(length / 4)},{n(-amp)} {n(length / 2)},0 t{n(length / 2)},0")
            x += length
        out.append(
            f'<path d="M{n(-rng.uniform(0, length))},{n(y)} {" ".join(segments)}" stroke="{crest}" '
            f'stroke-width="{n(1 + 2 * t)}" fill="none" opacity="{n(0.25 + 0.3 * t)}"/>'
        )
    p.layer("ocean", out)


def draw_abstract(p: Picture) -> None:
    """A prompt that names no thing and no scene still gets a composition in its colours."""
    spec = p.spec
    if spec.objects or p.settings or p.time:
        return
    rng = p.rng("abstract")
    colours = list(spec.palette or rng.choice(FREE_PALETTES))
    if len(colours) == 1:
        colours = [
            shade(colours[0], -0.35),
            colours[0],
            shade(colours[0], 0.35),
            shade(colours[0], 0.6),
        ]
    out = []
    for i in range(9 + 3 * p.detail):
        colour = colours[i % len(colours)]
        out.append(
            f'<circle cx="{n(rng.uniform(80, W - 80))}" cy="{n(rng.uniform(80, H - 80))}" '
            f'r="{n(rng.uniform(50, 230))}" fill="{colour}" opacity="{n(rng.uniform(0.45, 0.85))}"/>'
        )
    for i in range(3):
        y = rng.uniform(H * 0.2, H * 0.8)
        out.append(
            f'<path d="M-20,{n(y)} C{n(W * 0.3)},{n(y - rng.uniform(-220, 220))} '
            f'{n(W * 0.7)},{n(y + rng.uniform(-220, 220))} {W + 20},{n(y)}" fill="none" '
            f'stroke="{shade(colours[i % len(colours)], -0.3)}" stroke-width="{n(rng.uniform(4, 12))}" '
            f'stroke-linecap="round" opacity=".7"/>'
        )
    p.layer("abstract", out)


def draw_weather(p: Picture) -> None:
    if "snow" in p.settings:
        rng = p.rng("snowfall")
        flakes = [
            f'<circle cx="{n(rng.uniform(0, W))}" cy="{n(rng.uniform(0, H))}" r="{n(rng.uniform(1.5, 4.2))}" '
            f'fill="#ffffff" opacity="{n(rng.uniform(0.6, 0.95))}"/>'
            for _ in range(80 + 60 * p.detail)
        ]
        p.layer("snowfall", flakes)
    if "rain" in p.settings:
        rng = p.rng("rain")
        drops = []
        for _ in range(140 + 80 * p.detail):
            x, y, length = rng.uniform(-40, W), rng.uniform(-20, H), rng.uniform(14, 30)
            drops.append(
                f'<path d="M{n(x)},{n(y)} l{n(length * 0.3)},{n(length)}" stroke="#c5d3ea" '
                f'stroke-width="1.4" opacity=".6"/>'
            )
        p.layer("rain", drops)
        if not any(o.kind == "cloud" for o in p.spec.objects):
            rng = p.rng("rain-clouds")
            p.layer(
                "rain-clouds",
                [
                    cloud_shape(
                        W * (i + 0.5) / 3 + rng.uniform(-60, 60),
                        rng.uniform(60, 150),
                        rng.uniform(200, 280),
                        "#aab4c3",
                    )
                    for i in range(3)
                ],
            )


# --- things ---------------------------------------------------------------------------------


def draw_objects(p: Picture) -> None:
    spec = p.spec
    rng_count = p.rng("counts")
    instances: list[tuple[str, str, str | None]] = []  # (kind, colour, size)
    for obj in spec.objects:
        if obj.count is not None:
            count = obj.count
        elif obj.kind in DEFAULT_COUNT:
            count = max(2, DEFAULT_COUNT[obj.kind] + rng_count.randint(-1, 1))
        else:
            count = LAYOUT_COUNT.get(spec.layout or "scatter", 7)
        colours = list(obj.colours or spec.palette or default_colours(p, obj.kind))
        if obj.count is None and len(obj.colours) > 1:
            count = max(count, len(obj.colours))  # "rainbow balloons": one of each colour at least
        for i in range(count):
            instances.append((obj.kind, colours[i % len(colours)], obj.size))

    night_sky = p.time == "night" or "space" in p.settings
    free, sky, ground, water = [], [], [], []
    for item in instances:
        kind = item[0]
        if kind in GROUND_KINDS:
            ground.append(item)
        elif kind in WATER_KINDS:
            water.append(item)
        elif spec.layout:
            free.append(item)
        elif kind in SKY_KINDS or (kind == "star" and (night_sky or p.horizon)):
            sky.append(item)
        else:
            free.append(item)

    out: list[str] = []
    out += place_on_ground(p, ground)
    out += place_in_water(p, water)
    out += place_in_sky(p, sky)
    out += place_free(p, free)
    p.layer("objects", out)


def default_colours(p: Picture, kind: str) -> list[str]:
    if kind in KIND_COLOURS:
        colours = KIND_COLOURS[kind]
        if kind == "bird" and p.time == "night":
            return ["#dfe4ff"]
        return colours
    if kind == "star" and (p.time == "night" or "space" in p.settings):
        return ["#ffe066", "#fff3bf"]
    for key in (p.time, *p.settings):
        if key in PALETTES:
            return PALETTES[key]
    return p.rng("palette").choice(FREE_PALETTES)


def layout_points(
    kind: str,
    count: int,
    region: tuple[float, float, float, float],
    rng: random.Random,
    base: float,
) -> list[tuple[float, float, float]]:
    """(x, y, size) for ``count`` things arranged as ``kind`` inside ``region`` (x, y, w, h)."""
    x0, y0, w, h = region
    cx, cy = x0 + w / 2, y0 + h / 2
    if count <= 0:
        return []
    if kind == "center" and count == 1:
        return [(cx, cy, min(w, h) * 0.55)]
    if kind == "grid":
        cols = max(1, round(math.sqrt(count * w / h)))
        rows = math.ceil(count / cols)
        cw, ch = w / cols, h / rows
        size = min(cw, ch) * 0.68
        return [
            (x0 + cw * (i % cols + 0.5), y0 + ch * (i // cols + 0.5), size) for i in range(count)
        ]
    if kind == "row":
        step = w / count
        return [(x0 + step * (i + 0.5), cy, min(step * 0.75, h * 0.5)) for i in range(count)]
    if kind == "stack":
        step = h / count
        return [(cx, y0 + step * (i + 0.5), min(step * 0.8, w * 0.4)) for i in range(count)]
    if kind == "ring":
        radius = min(w, h) * 0.36
        size = min(2 * math.pi * radius / count * 0.7, radius * 0.6)
        return [
            (
                cx + radius * math.cos(2 * math.pi * i / count - math.pi / 2),
                cy + radius * math.sin(2 * math.pi * i / count - math.pi / 2),
                size,
            )
            for i in range(count)
        ]
    if kind == "spiral":
        spacing = min(w, h) * 0.46 / math.sqrt(count)
        golden = math.pi * (3 - math.sqrt(5))
        return [
            (
                cx + spacing * math.sqrt(i + 0.5) * math.cos(i * golden),
                cy + spacing * math.sqrt(i + 0.5) * math.sin(i * golden),
                spacing * (0.8 + 0.5 * (i + 1) / count),
            )
            for i in range(count)
        ]
    # scatter (and "center" with several): spread out, avoiding overlaps where there is room
    if kind == "center":
        x0, y0, w, h = cx - w * 0.25, cy - h * 0.25, w * 0.5, h * 0.5
    size = min(base, math.sqrt(w * h / count) * 0.62)
    points: list[tuple[float, float, float]] = []
    for _ in range(count):
        best = None
        for _attempt in range(40):
            s = size * rng.uniform(0.75, 1.25)
            x = rng.uniform(x0 + s / 2, x0 + w - s / 2)
            y = rng.uniform(y0 + s / 2, y0 + h - s / 2)
            gap = min((math.hypot(x - a, y - b) - (s + c) / 2 for a, b, c in points), default=1e9)
            if best is None or gap > best[0]:
                best = (gap, (x, y, s))
            if gap > 6:
                break
        points.append(best[1])
    return points


def place_free(p: Picture, items) -> list[str]:
    if not items:
        return []
    rng = p.rng("layout")
    layout = p.spec.layout or ("center" if len(items) == 1 else "scatter")
    region = (
        (W * 0.08, H * 0.08, W * 0.84, H * 0.8)
        if p.horizon
        else (W * 0.06, H * 0.07, W * 0.88, H * 0.86)
    )
    base = max(BASE_SIZE.get(k, 110) for k, _, _ in items) * (1.3 if len(items) <= 3 else 1.0)
    points = layout_points(layout, len(items), region, rng, base)
    out = []
    for (kind, colour, size), (x, y, s) in zip(items, points):
        s *= SIZE_FACTOR[size] if layout != "scatter" or size else 1.0
        out.append(shape(p, kind, x, y, s, colour, rng))
    return out


def place_in_sky(p: Picture, items) -> list[str]:
    rng = p.rng("sky-objects")
    bottom = (p.horizon or H) - 40
    out = []
    for kind, colour, size in items:
        s = BASE_SIZE.get(kind, 60) * SIZE_FACTOR[size]
        if kind == "star":
            s = 26 * SIZE_FACTOR[size] * rng.uniform(0.7, 1.3)
        top_band = {"cloud": 0.55, "bird": 0.75, "sun": 0.45, "moon": 0.45}.get(kind, 0.85)
        x = rng.uniform(s * 0.6, W - s * 0.6)
        y = rng.uniform(s * 0.6, max(s, bottom * top_band - s * 0.3))
        if kind == "bird":
            out.extend(
                shape(p, kind, x + dx, y + dy, s * rng.uniform(0.7, 1.1), colour, rng)
                for dx, dy in [(0, 0)]
            )
        else:
            out.append(shape(p, kind, x, y, s, colour, rng))
        if kind in ("sun", "moon") and p.celestial is None:
            p.celestial = (x, y, colour)
    return out


def place_on_ground(p: Picture, items) -> list[str]:
    if not items:
        return []
    rng = p.rng("ground-objects")
    top, bottom = p.horizon, p.shore
    span = max(1.0, bottom - top)
    slots = list(range(len(items)))
    rng.shuffle(slots)
    placed = []
    for (kind, colour, size), slot in zip(items, slots):
        t = rng.uniform(0.15, 0.8) if not p.has_ocean else rng.uniform(0.55, 0.95)
        x = W * (slot + 0.5) / len(items) + rng.uniform(-0.3, 0.3) * W / len(items)
        base_y = top + span * t
        depth = 0.45 + t * 0.75 if not p.has_ocean else 0.35
        s = BASE_SIZE[kind] * depth * SIZE_FACTOR[size]
        placed.append((base_y, kind, x, s, colour))
    placed.sort()
    return [shape(p, kind, x, y, s, colour, rng, grounded=True) for y, kind, x, s, colour in placed]


def place_in_water(p: Picture, items) -> list[str]:
    if not items:
        return []
    rng = p.rng("water-objects")
    top = p.shore if p.land else p.horizon
    out = []
    count = len(items)
    for i, (kind, colour, size) in enumerate(items):
        x = W * (i + 0.5) / count + rng.uniform(-0.25, 0.25) * W / count
        if kind == "boat":
            t = rng.uniform(0.1, 0.45)
            y = top + (H - top) * t
            s = BASE_SIZE[kind] * (0.6 + t) * SIZE_FACTOR[size]
        else:
            t = rng.uniform(0.45, 0.9)
            y = top + (H - top) * t
            s = BASE_SIZE[kind] * (0.6 + t * 0.6) * SIZE_FACTOR[size]
        out.append(shape(p, kind, x, y, s, colour, rng))
    return out


# --- shapes ---------------------------------------------------------------------------------


def shape(
    p: Picture,
    kind: str,
    x: float,
    y: float,
    s: float,
    colour: str,
    rng: random.Random,
    grounded: bool = False,
) -> str:
    rot = (
        rng.uniform(-12, 12)
        if kind in ("square", "rectangle", "triangle", "star", "hexagon", "diamond")
        else 0
    )
    drawing = {
        "circle": lambda: circle_shape(x, y, s, colour),
        "square": lambda: (
            f'<rect x="{n(x - s / 2)}" y="{n(y - s / 2)}" width="{n(s)}" height="{n(s)}" '
            f'rx="{n(s * 0.08)}" fill="{colour}" transform="rotate({n(rot)} {n(x)} {n(y)})"/>'
        ),
        "rectangle": lambda: (
            f'<rect x="{n(x - s * 0.75)}" y="{n(y - s * 0.4)}" width="{n(s * 1.5)}" '
            f'height="{n(s * 0.8)}" rx="{n(s * 0.06)}" fill="{colour}" '
            f'transform="rotate({n(rot)} {n(x)} {n(y)})"/>'
        ),
        "triangle": lambda: polygon(x, y, s * 0.58, 3, colour, rot - 90),
        "star": lambda: star_shape(x, y, s, colour, rot),
        "heart": lambda: heart_shape(x, y, s, colour),
        "hexagon": lambda: polygon(x, y, s * 0.5, 6, colour, rot),
        "diamond": lambda: diamond_shape(x, y, s, colour),
        "flower": lambda: flower_shape(x, y, s, colour, grounded),
        "tree": lambda: (
            pine(x, y, s, colour) if rng.random() < 0.5 else round_tree(x, y, s, colour)
        ),
        "house": lambda: house_shape(p, x, y, s, colour),
        "cloud": lambda: cloud_shape(x, y, s, colour),
        "bird": lambda: bird_shape(x, y, s, colour),
        "fish": lambda: fish_shape(x, y, s, colour),
        "boat": lambda: boat_shape(x, y, s, colour),
        "balloon": lambda: balloon_shape(x, y, s, colour),
        "sun": lambda: sun_shape(p, x, y, s, colour, rays=True),
        "moon": lambda: moon_shape(p, x, y, s, colour),
        "planet": lambda: planet_shape(p, x, y, s, colour),
    }[kind]()
    shadow = (
        f' filter="url(#{p.prefix}soft)"' if kind not in ("bird", "sun", "moon", "cloud") else ""
    )
    outline = ""
    if p.detail >= 2 and kind not in ("bird", "sun", "moon"):
        outline = f' stroke="{shade(colour, -0.45)}" stroke-width="{n(max(1.0, s * 0.012))}" stroke-opacity=".6"'
    return (
        f'<g class="obj" data-kind="{kind}" data-colour="{colour}"{shadow}{outline}>{drawing}</g>'
    )


def circle_shape(x, y, s, colour) -> str:
    r = s / 2
    return (
        f'<circle cx="{n(x)}" cy="{n(y)}" r="{n(r)}" fill="{colour}"/>'
        f'<circle cx="{n(x - r * 0.32)}" cy="{n(y - r * 0.32)}" r="{n(r * 0.3)}" fill="#ffffff" opacity=".22"/>'
    )


def polygon(x, y, radius, sides, colour, rot) -> str:
    points = " ".join(
        f"{n(x + radius * math.cos(math.radians(rot + 360 * i / sides)))},"
        f"{n(y + radius * math.sin(math.radians(rot + 360 * i / sides)))}"
        for i in range(sides)
    )
    return f'<polygon points="{points}" fill="{colour}" stroke-linejoin="round"/>'


def star_shape(x, y, s, colour, rot) -> str:
    points = []
    for i in range(10):
        radius = s / 2 if i % 2 == 0 else s * 0.2
        angle = math.radians(rot - 90 + 36 * i)
        points.append(f"{n(x + radius * math.cos(angle))},{n(y + radius * math.sin(angle))}")
    return f'<polygon points="{" ".join(points)}" fill="{colour}" stroke-linejoin="round"/>'


def heart_shape(x, y, s, colour) -> str:
    d = (
        f"M{n(x)},{n(y + s * 0.38)} C{n(x - s * 0.62)},{n(y - s * 0.02)} {n(x - s * 0.38)},{n(y - s * 0.56)} "
        f"{n(x)},{n(y - s * 0.2)} C{n(x + s * 0.38)},{n(y - s * 0.56)} {n(x + s * 0.62)},{n(y - s * 0.02)} "
        f"{n(x)},{n(y + s * 0.38)} Z"
    )
    return f'<path d="{d}" fill="{colour}"/>'


def diamond_shape(x, y, s, colour) -> str:
    return (
        f'<polygon points="{n(x)},{n(y - s * 0.55)} {n(x + s * 0.4)},{n(y)} {n(x)},{n(y + s * 0.55)} '
        f'{n(x - s * 0.4)},{n(y)}" fill="{colour}"/>'
        f'<polygon points="{n(x)},{n(y - s * 0.55)} {n(x + s * 0.4)},{n(y)} {n(x)},{n(y)}" '
        f'fill="#ffffff" opacity=".2"/>'
    )


def flower_shape(x, y, s, colour, grounded) -> str:
    head_y = y - s if grounded else y
    parts = []
    if grounded:
        parts.append(
            f'<path d="M{n(x)},{n(y)} Q{n(x + s * 0.1)},{n(y - s * 0.5)} {n(x)},{n(head_y)}" '
            f'stroke="#2b8a3e" stroke-width="{n(max(1.5, s * 0.06))}" fill="none"/>'
        )
    for i in range(6):
        parts.append(
            f'<ellipse cx="{n(x)}" cy="{n(head_y - s * 0.22)}" rx="{n(s * 0.14)}" ry="{n(s * 0.24)}" '
            f'fill="{colour}" transform="rotate({60 * i} {n(x)} {n(head_y)})"/>'
        )
    parts.append(f'<circle cx="{n(x)}" cy="{n(head_y)}" r="{n(s * 0.12)}" fill="#f59f00"/>')
    return "".join(parts)


def pine(x, base, s, colour) -> str:
    trunk_w, trunk_h = s * 0.09, s * 0.16
    parts = [
        f'<rect x="{n(x - trunk_w / 2)}" y="{n(base - trunk_h)}" width="{n(trunk_w)}" height="{n(trunk_h)}" '
        f'fill="#5c3d22"/>'
    ]
    for i in range(3):
        bottom = base - trunk_h * 0.7 - i * s * 0.24
        half = s * (0.34 - i * 0.07)
        parts.append(
            f'<polygon points="{n(x - half)},{n(bottom)} {n(x + half)},{n(bottom)} '
            f'{n(x)},{n(bottom - s * 0.4)}" fill="{shade(colour, i * 0.06)}"/>'
        )
    return "".join(parts)


def round_tree(x, base, s, colour) -> str:
    trunk_w, trunk_h = s * 0.1, s * 0.42
    return (
        f'<rect x="{n(x - trunk_w / 2)}" y="{n(base - trunk_h)}" width="{n(trunk_w)}" height="{n(trunk_h)}" '
        f'fill="#6b4423"/>'
        f'<circle cx="{n(x)}" cy="{n(base - s * 0.62)}" r="{n(s * 0.3)}" fill="{colour}"/>'
        f'<circle cx="{n(x - s * 0.18)}" cy="{n(base - s * 0.5)}" r="{n(s * 0.2)}" fill="{shade(colour, -0.1)}"/>'
        f'<circle cx="{n(x + s * 0.17)}" cy="{n(base - s * 0.52)}" r="{n(s * 0.21)}" fill="{shade(colour, 0.08)}"/>'
    )


def house_shape(p, x, base, s, colour) -> str:
    w, h = s * 0.8, s * 0.5
    roof = shade(colour, -0.45) if colour not in KIND_COLOURS["house"] else "#c0392b"
    lit = p.time in ("night", "sunset")
    window = "#ffd866" if lit else "#a5d8ff"
    left, top = x - w / 2, base - h
    return (
        f'<rect x="{n(left)}" y="{n(top)}" width="{n(w)}" height="{n(h)}" fill="{colour}"/>'
        f'<polygon points="{n(left - s * 0.06)},{n(top)} {n(left + w + s * 0.06)},{n(top)} '
        f'{n(x)},{n(top - s * 0.32)}" fill="{roof}"/>'
        f'<rect x="{n(x - s * 0.07)}" y="{n(base - s * 0.26)}" width="{n(s * 0.14)}" height="{n(s * 0.26)}" '
        f'fill="#6b4423"/>'
        f'<rect x="{n(left + s * 0.08)}" y="{n(top + s * 0.1)}" width="{n(s * 0.14)}" height="{n(s * 0.12)}" '
        f'fill="{window}"/>'
        f'<rect x="{n(left + w - s * 0.22)}" y="{n(top + s * 0.1)}" width="{n(s * 0.14)}" height="{n(s * 0.12)}" '
        f'fill="{window}"/>'
    )


def cloud_shape(x, y, s, colour) -> str:
    parts = [
        f'<ellipse cx="{n(x)}" cy="{n(y + s * 0.1)}" rx="{n(s * 0.5)}" ry="{n(s * 0.16)}" fill="{colour}"/>'
    ]
    for dx, dy, r in ((-0.25, 0.02, 0.2), (0, -0.1, 0.27), (0.24, 0, 0.2), (0.1, 0.05, 0.18)):
        parts.append(
            f'<circle cx="{n(x + s * dx)}" cy="{n(y + s * dy)}" r="{n(s * r)}" fill="{colour}"/>'
        )
    return f'<g opacity=".95">{"".join(parts)}</g>'


def bird_shape(x, y, s, colour) -> str:
    return (
        f'<path d="M{n(x - s / 2)},{n(y)} Q{n(x - s / 4)},{n(y - s * 0.38)} {n(x)},{n(y)} '
        f'Q{n(x + s / 4)},{n(y - s * 0.38)} {n(x + s / 2)},{n(y)}" stroke="{colour}" '
        f'stroke-width="{n(max(1.5, s * 0.08))}" fill="none" stroke-linecap="round"/>'
    )


def fish_shape(x, y, s, colour) -> str:
    return (
        f'<polygon points="{n(x + s * 0.35)},{n(y)} {n(x + s * 0.65)},{n(y - s * 0.22)} '
        f'{n(x + s * 0.65)},{n(y + s * 0.22)}" fill="{shade(colour, -0.15)}"/>'
        f'<ellipse cx="{n(x)}" cy="{n(y)}" rx="{n(s * 0.45)}" ry="{n(s * 0.25)}" fill="{colour}"/>'
        f'<circle cx="{n(x - s * 0.25)}" cy="{n(y - s * 0.06)}" r="{n(s * 0.05)}" fill="#1b1b1b"/>'
    )


def boat_shape(x, y, s, colour) -> str:
    return (
        f'<line x1="{n(x)}" y1="{n(y)}" x2="{n(x)}" y2="{n(y - s * 0.75)}" stroke="#5c3d22" '
        f'stroke-width="{n(max(1.5, s * 0.03))}"/>'
        f'<polygon points="{n(x + s * 0.03)},{n(y - s * 0.72)} {n(x + s * 0.45)},{n(y - s * 0.08)} '
        f'{n(x + s * 0.03)},{n(y - s * 0.08)}" fill="#f8f9fa"/>'
        f'<polygon points="{n(x - s * 0.03)},{n(y - s * 0.6)} {n(x - s * 0.03)},{n(y - s * 0.08)} '
        f'{n(x - s * 0.32)},{n(y - s * 0.08)}" fill="#e9ecef"/>'
        f'<polygon points="{n(x - s * 0.55)},{n(y)} {n(x + s * 0.55)},{n(y)} {n(x + s * 0.4)},{n(y + s * 0.2)} '
        f'{n(x - s * 0.4)},{n(y + s * 0.2)}" fill="{colour}"/>'
    )


def balloon_shape(x, y, s, colour) -> str:
    return (
        f'<path d="M{n(x)},{n(y + s * 0.5)} q{n(-s * 0.12)},{n(s * 0.35)} {n(s * 0.04)},{n(s * 0.7)}" '
        f'stroke="#868e96" stroke-width="1.5" fill="none"/>'
        f'<ellipse cx="{n(x)}" cy="{n(y)}" rx="{n(s * 0.4)}" ry="{n(s * 0.5)}" fill="{colour}"/>'
        f'<polygon points="{n(x - s * 0.06)},{n(y + s * 0.55)} {n(x + s * 0.06)},{n(y + s * 0.55)} '
        f'{n(x)},{n(y + s * 0.48)}" fill="{colour}"/>'
        f'<ellipse cx="{n(x - s * 0.14)}" cy="{n(y - s * 0.2)}" rx="{n(s * 0.08)}" ry="{n(s * 0.14)}" '
        f'fill="#ffffff" opacity=".35"/>'
    )


def sun_shape(p: Picture, x, y, s, colour, *, rays: bool) -> str:
    parts = [
        f'<circle cx="{n(x)}" cy="{n(y)}" r="{n(s * 1.1)}" fill="{p.radial(colour, colour, inner_opacity=0.55)}"/>'
    ]
    if rays:
        for i in range(12):
            angle = math.radians(30 * i)
            parts.append(
                f'<line x1="{n(x + s * 0.62 * math.cos(angle))}" y1="{n(y + s * 0.62 * math.sin(angle))}" '
                f'x2="{n(x + s * 0.82 * math.cos(angle))}" y2="{n(y + s * 0.82 * math.sin(angle))}" '
                f'stroke="{colour}" stroke-width="{n(s * 0.05)}" stroke-linecap="round"/>'
            )
    parts.append(f'<circle cx="{n(x)}" cy="{n(y)}" r="{n(s / 2)}" fill="{colour}"/>')
    return "".join(parts)


def moon_shape(p: Picture, x, y, s, colour) -> str:
    mask = p.new_id("m")
    r = s / 2
    p.defs.append(
        f'<mask id="{mask}"><rect x="{n(x - s)}" y="{n(y - s)}" width="{n(s * 2)}" height="{n(s * 2)}" '
        f'fill="#fff"/><circle cx="{n(x + r * 0.45)}" cy="{n(y - r * 0.2)}" r="{n(r * 0.85)}" '
        f'fill="#000"/></mask>'
    )
    return (
        f'<circle cx="{n(x)}" cy="{n(y)}" r="{n(s * 1.05)}" fill="{p.radial(colour, colour, inner_opacity=0.3)}"/>'
        f'<circle cx="{n(x)}" cy="{n(y)}" r="{n(r)}" fill="{colour}" mask="url(#{mask})"/>'
    )


def planet_shape(p: Picture, x, y, s, colour) -> str:
    body = p.radial(shade(colour, 0.35), shade(colour, -0.35), outer_opacity=1.0)
    return (
        f'<circle cx="{n(x)}" cy="{n(y)}" r="{n(s / 2)}" fill="{body}"/>'
        f'<ellipse cx="{n(x)}" cy="{n(y)}" rx="{n(s * 0.85)}" ry="{n(s * 0.18)}" fill="none" '
        f'stroke="{shade(colour, 0.5)}" stroke-width="{n(s * 0.05)}" opacity=".8" '
        f'transform="rotate(-18 {n(x)} {n(y)})"/>'
    )


# --- finishing ------------------------------------------------------------------------------


def draw_finish(p: Picture) -> None:
    if p.detail >= 1:
        vignette = p.radial("#000000", "#000000", inner_opacity=0.0, outer_opacity=0.32)
        p.layer("vignette", [f'<rect width="{W}" height="{H}" fill="{vignette}"/>'])
    if p.detail >= 2:
        p.defs.append(
            f'<filter id="{p.prefix}grain" x="0" y="0" width="100%" height="100%"><feTurbulence type="fractalNoise" '
            f'baseFrequency="{n(0.6 + 0.2 * p.detail)}" numOctaves="2" seed="{p.seed % 1000}"/>'
            f'<feColorMatrix type="saturate" values="0"/></filter>'
        )
        p.layer(
            "grain",
            [
                f'<rect width="{W}" height="{H}" filter="url(#{p.prefix}grain)" opacity="{n(0.035 * p.detail)}"/>'
            ],
        )


def render(spec: Spec, *, seed: int, title: str, detail: int = 0, width: int = W) -> str:
    """The SVG document for ``spec``: ``width`` pixels wide, 4:3, ``detail`` 0 to 3."""
    p = Picture(spec, seed, max(0, min(3, detail)))
    p.defs.append(
        f'<filter id="{p.prefix}soft" x="-30%" y="-30%" width="160%" height="160%">'
        '<feDropShadow dx="0" dy="5" stdDeviation="5" flood-color="#000" flood-opacity=".22"/></filter>'
    )
    draw_sky(p)
    draw_celestial(p)
    draw_scenery(p)
    draw_abstract(p)
    draw_objects(p)
    draw_weather(p)
    draw_finish(p)
    height = round(width * H / W)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {W} {H}" '
        f'role="img" aria-labelledby="title desc">'
        f'<title id="title">{_xml_text(title[:300])}</title><desc id="desc">{_xml_text(spec.describe())}</desc>'
        f"<defs>{''.join(p.defs)}</defs>{''.join(p.body)}</svg>"
    )


#: Characters XML 1.0 cannot carry, even escaped: C0 controls but tab and line breaks, and
#: U+FFFE / U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """``text`` escaped for an XML text node, dropping what XML cannot carry."""
    return escape(_NOT_XML.sub("", text))
