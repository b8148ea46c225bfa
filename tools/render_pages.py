#!/usr/bin/env python3
"""Render synthetic document pages at the four orientations doc_ori knows.

Writes <out>/<name>_<angle>.png for angle in 0, 90, 180, 270, where the image
is the upright page rotated by `angle` degrees clockwise -- the convention of
PaddleX's PP-LCNet_x1_0_doc_ori labels (label "90" = the page is turned 90
degrees clockwise). Deterministic: same arguments, same pixels.

Requires Pillow and the DejaVu fonts (Debian: fonts-dejavu-core).

    python tools/render_pages.py --out examples/pages            # the README sample
    python tools/render_pages.py --out /tmp/pages --pages 12      # more, varied
"""
import argparse
import os
import random
import textwrap

from PIL import Image, ImageDraw, ImageFont

FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf",
]
WORDS = (
    "the network lightweight convolutional processor inference latency accuracy model layer depthwise "
    "separable kernel activation channel width stage block image document page orientation scanner text "
    "recognition detection pipeline result table figure section report analysis method data value sample "
    "performance measure system design feature output input parameter training evaluation benchmark"
).split()


def paragraph(rng, n):
    words = [rng.choice(WORDS) for _ in range(n)]
    words[0] = words[0].capitalize()
    return " ".join(words) + "."


def render(seed, width=850, height=1100):
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font_path = FONTS[seed % len(FONTS)]
    size = rng.choice([18, 20, 22, 24])
    font = ImageFont.truetype(font_path, size)
    title = ImageFont.truetype(font_path, size + 12)
    margin = rng.choice([60, 80, 100])
    y = margin
    draw.text((margin, y), paragraph(rng, rng.randint(3, 6)).rstrip("."), font=title, fill=(0, 0, 0))
    y += int((size + 12) * 2.2)
    chars = int((width - 2 * margin) / (size * 0.55))
    while y < height - margin - size * 2:
        for line in textwrap.wrap(paragraph(rng, rng.randint(25, 70)), chars):
            if y > height - margin - size:
                break
            draw.text((margin, y), line, font=font, fill=(20, 20, 20))
            y += int(size * 1.45)
        y += size
    return img


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pages", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for i in range(args.pages):
        page = render(args.seed + i)
        name = "page" if args.pages == 1 else f"page{i:02d}"
        for angle in (0, 90, 180, 270):
            # PIL rotates counter-clockwise; -angle turns the page clockwise.
            page.rotate(-angle, expand=True).save(os.path.join(args.out, f"{name}_{angle}.png"), optimize=True)


if __name__ == "__main__":
    main()
