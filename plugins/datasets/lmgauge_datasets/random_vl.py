"""``--dataset random_vl``: vision-language chat requests, a text prompt of exact token length
and N images, for /v1/chat/completions (or /v1/responses).

Each request is one user message whose content parts are the text (L tokens, L drawn in
``[--min-prompt-length, --max-prompt-length]`` as the random dataset draws it) followed by
``--image-num N`` images as base64 ``data:`` URLs (``image_url`` parts). The images are PNGs of
``--image-width`` x ``--image-height`` pixels made offline, distinct per request and the same
for a seed (images.py), or, with ``--image-folder DIR``, the folder's images in file-name order,
cycled. Each request's image sizes travel in ``GenerationRequest.images``: perf records the
image count and sizes of every request and shows them in the summary. The prompt length counts
the text only: the server adds its own tokens per image.
"""
from __future__ import annotations

import random
from typing import Any, Iterator

import click

from lmgauge.plugin import GenerationRequest, PerfDataset, hookimpl

from .base import need_tokenizer
from .images import Image, ImageFolder, made_image
from .random_embedding import prompt_lengths, require_api
from .random_prompts import PROMPT_LENGTH_OPTIONS, exact_text, word_tokens

MAX_SIDE = 16384


class RandomVL(PerfDataset):
    name = "random_vl"
    description = ("vision-language chat: a prompt of exact token length and --image-num images per request "
                   "(made offline, --image-width x --image-height, or from --image-folder)")
    options = [
        click.Option(["--image-num", "image_num"], type=click.IntRange(min=1), default=1,
                     help="random_vl: images per request (default 1)."),
        click.Option(["--image-width", "image_width"], type=click.IntRange(min=1, max=MAX_SIDE), default=224,
                     help="random_vl: width of the made images in pixels (default 224)."),
        click.Option(["--image-height", "image_height"], type=click.IntRange(min=1, max=MAX_SIDE), default=224,
                     help="random_vl: height of the made images in pixels (default 224)."),
        click.Option(["--image-folder", "image_folder"], default=None, metavar="DIR",
                     help="random_vl: send this folder's images (PNG, JPEG, GIF, WebP; file-name order, cycled) "
                          "instead of made ones."),
        *PROMPT_LENGTH_OPTIONS,
    ]
    needs_tokenizer = True

    def check(self) -> None:
        require_api(self.name, self.settings.api, ("chat", "responses"),
                    "use a /v1/chat/completions URL (images travel in chat content parts)")
        super().check()

    def requests(self, count: int) -> Iterator[GenerationRequest]:
        tok = need_tokenizer(self)
        o = self.options
        lo, hi = prompt_lengths(o, self.name)
        per_request = int(o.get("image_num") or 1)
        folder = ImageFolder(o["image_folder"]) if o.get("image_folder") else None
        rng = random.Random(self.settings.seed)
        words = word_tokens(tok)
        prefix_len = int(o.get("prefix_length") or 0)
        prefix = exact_text(tok, rng, words, prefix_len) if prefix_len else ""
        for i in range(count):
            text = exact_text(tok, rng, words, rng.randint(lo, hi), prefix)
            if folder is not None:
                images = [folder.image(i * per_request + k) for k in range(per_request)]
            else:
                images = [self._made(i, k) for k in range(per_request)]
            yield vl_request(text, images, self.settings.params(), i)

    def _made(self, i: int, k: int) -> Image:
        o = self.options
        rng = random.Random(f"{self.settings.seed}/{i}/{k}")  # its own stream: any request can be rebuilt alone
        return made_image(int(o.get("image_width") or 224), int(o.get("image_height") or 224), rng)


def vl_request(text: str, images: list[Image], params: Any, index: int) -> GenerationRequest:
    """One user message: the text part, then one ``image_url`` part per image."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": im.url}} for im in images]
    return GenerationRequest(messages=[{"role": "user", "content": parts}], params=params, id=str(index),
                             images=[(im.width, im.height) for im in images])


@hookimpl
def register_perf_datasets(register):
    register(RandomVL)
