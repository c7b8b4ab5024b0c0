"""The offline picture backend: the picture follows the prompt and is the same for a seed."""

import re
import xml.etree.ElementTree as ET

import pytest

from generations.backends import BackendRequest, PermanentBackendError
from generations.backends.procedural import ProceduralSvgBackend
from generations.backends.procedural.vocabulary import COLOURS

SVG = "{http://www.w3.org/2000/svg}"


def draw(prompt, *, seed=7, chain=None, operation="image", tier=""):
    request = BackendRequest(
        job_id=1,
        operation=operation,
        model="procedural-svg",
        tier=tier,
        prompt=prompt,
        parameters={"seed": seed, "chain": chain or [prompt]},
    )
    output = ProceduralSvgBackend().run(request)
    assert output.extension == "svg"
    return output.content.decode(), output.usage


def things(svg: str, kind: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [
        g for g in root.iter(f"{SVG}g") if g.get("class") == "obj" and g.get("data-kind") == kind
    ]


def layers(svg: str) -> set[str]:
    return {g.get("data-layer") for g in ET.fromstring(svg).iter(f"{SVG}g") if g.get("data-layer")}


def test_same_prompt_and_seed_draw_the_same_picture_and_another_seed_does_not():
    a, _ = draw("five balloons over the sea at sunset", seed=11)
    b, _ = draw("five balloons over the sea at sunset", seed=11)
    c, _ = draw("five balloons over the sea at sunset", seed=12)
    assert a == b
    assert a != c


def test_named_counts_colours_and_shapes_are_drawn():
    svg, usage = draw("three red circles and two blue squares")
    circles, squares = things(svg, "circle"), things(svg, "square")
    assert len(circles) == 3 and len(squares) == 2
    assert {c.get("data-colour") for c in circles} == {COLOURS["red"]}
    assert {s.get("data-colour") for s in squares} == {COLOURS["blue"]}
    assert usage["reading"] == "3 red circles, 2 blue squares"


def test_scene_words_set_the_scene():
    night, _ = draw("a quiet night in the forest")
    assert {"forest", "celestial"} <= layers(night)
    assert 'stop-color="#070b1f"' in night  # the night sky
    assert night.count("<circle") > 50  # stars
    ocean, _ = draw("boats on the ocean at sunset")
    assert "ocean" in layers(ocean) and things(ocean, "boat")
    assert 'stop-color="#e8684a"' in ocean  # the sunset sky
    city, _ = draw("a city skyline in the snow")
    assert {"city", "snowfall"} <= layers(city)


def test_a_grid_lays_things_out_in_rows_and_columns():
    svg, _ = draw("a grid of 12 hexagons")
    centres = []
    for hexagon in things(svg, "hexagon"):
        points = [
            tuple(map(float, p.split(",")))
            for p in hexagon.find(f"{SVG}polygon").get("points").split()
        ]
        centres.append((round(sum(x for x, _ in points) / 6), round(sum(y for _, y in points) / 6)))
    assert len(centres) == 12
    assert len({x for x, _ in centres}) == 4 and len({y for _, y in centres}) == 3


def test_an_edit_keeps_the_picture_and_changes_what_it_names():
    base, _ = draw("three red circles at night", seed=5)
    edited, usage = draw(
        "make the circles green and add a boat",
        seed=5,
        chain=["three red circles at night", "make the circles green and add a boat"],
    )
    assert {c.get("data-colour") for c in things(edited, "circle")} == {COLOURS["green"]}
    assert len(things(edited, "circle")) == 3 and len(things(edited, "boat")) == 1
    assert "night" in usage["reading"]
    removed, _ = draw("no circles", seed=5, chain=["three red circles at night", "no circles"])
    assert not things(removed, "circle")


@pytest.mark.parametrize("tier,width,detail", [("1K", 1024, 1), ("2K", 2048, 2), ("4K", 4096, 3)])
def test_an_enhancement_redraws_larger_with_more_detail(tier, width, detail):
    plain, _ = draw("a starry night over the mountains", seed=3)
    enhanced, usage = draw(
        "Enhance",
        seed=3,
        chain=["a starry night over the mountains"],
        operation="enhance",
        tier=tier,
    )
    assert f'width="{width}"' in enhanced and usage["detail"] == detail
    assert "vignette" in layers(enhanced) and "vignette" not in layers(plain)
    assert enhanced.count("<circle") > plain.count("<circle")  # more stars


def test_the_prompt_is_text_in_the_picture_never_markup():
    svg, _ = draw('<script>alert(1)</script> a red heart "quoted" & more')
    assert "<script" not in svg
    root = ET.fromstring(svg)  # well-formed
    assert root.find(f"{SVG}title").text.startswith("<script>")
    assert not re.search(r"\son\w+=", svg)  # no event handlers


def test_a_prompt_without_known_words_still_gets_a_composition_in_its_colours():
    svg, usage = draw("purple")
    assert "abstract" in layers(svg)
    assert usage["reading"] == "tinted purple"


def test_unknown_operations_and_tiers_are_permanent_errors():
    with pytest.raises(PermanentBackendError):
        draw("x", operation="text")
    with pytest.raises(PermanentBackendError):
        draw("x", operation="enhance", tier="8K")


def test_an_edit_can_resize_what_is_there():
    def radii(svg):
        return [float(c.find(f"{SVG}circle").get("r")) for c in things(svg, "circle")]

    base, _ = draw("three red circles in a row", seed=2)
    bigger, _ = draw(
        "make them bigger", seed=2, chain=["three red circles in a row", "make them bigger"]
    )
    smaller, _ = draw(
        "make the circles smaller",
        seed=2,
        chain=["three red circles in a row", "make the circles smaller"],
    )
    assert len(radii(bigger)) == 3
    assert min(radii(bigger)) > max(radii(base)) > max(radii(smaller))
