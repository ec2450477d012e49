"""Content templates: user-supplied, sandboxed Jinja2 blocks with deterministic variants.

Blocks render plain text, not markup: every field is escaped where it is served (the HTML
templates autoescape, the API encodes JSON), so escaping here would store `&amp;` in titles.
"""

from __future__ import annotations

import signal
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any, cast

import jinja2
from jinja2 import nodes
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

SEPARATOR = "\x1e"
MAX_TEMPLATE_CHARS = 4000
MAX_RANGE = 1000
MAX_VARIANTS = 20
MAX_BLOCK_OUTPUT = 20_000
TOP_LEVEL = ("title", "meta_description", "h1", "intro")
LIST_BLOCKS = {"sections": ("heading", "body"), "faq": ("question", "answer")}
OPTION_KEYS = ("generate", "quality")  # tables the site file keeps beside the templates
LOOP_ATTRIBUTES = frozenset(
    ("index", "index0", "revindex", "revindex0", "first", "last", "length", "depth", "depth0")
)


class ContentError(Exception):
    """A content template is invalid, unsafe, too slow or failed to render."""


class RenderTimeout(ContentError):
    """One page took longer than the time limit to render."""


@dataclass(frozen=True)
class PageText:
    title: str
    meta_description: str
    h1: str
    intro: str
    sections: list[tuple[str, str]]
    faq: list[tuple[str, str]]


def _limited_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise ContentError(f"range() of {len(numbers)} items exceeds the limit of {MAX_RANGE}")
    return numbers


class _ContentSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with a fast path for the plain dicts that hold page data.

    `service.name` on a dict first tries a Python attribute in Jinja, which the sandbox
    checks at some cost; the keys of our own data dicts cannot reach Python internals, so
    they are looked up directly. Everything else goes through the sandbox's checks.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        if type(obj) is LoopContext and attribute in LOOP_ATTRIBUTES:
            return getattr(obj, attribute)
        return super().getattr(obj, attribute)


def _environment() -> ImmutableSandboxedEnvironment:
    environment = _ContentSandbox(
        autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=False
    )
    environment.globals["range"] = _limited_range
    return environment


def _variants(value: Any, where: str) -> list[str]:
    variants = [value] if isinstance(value, str) else value
    if not isinstance(variants, list) or not variants or len(variants) > MAX_VARIANTS:
        raise ContentError(f"{where} must be a template or a list of 1-{MAX_VARIANTS} templates")
    for number, variant in enumerate(variants, 1):
        if not isinstance(variant, str) or not variant.strip():
            raise ContentError(f"{where} variant {number} must be a non-empty string")
        if len(variant) > MAX_TEMPLATE_CHARS or SEPARATOR in variant or "\x00" in variant:
            raise ContentError(
                f"{where} variant {number} is longer than {MAX_TEMPLATE_CHARS} characters "
                "or contains control characters"
            )
    return variants


def _blocks(content: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """Flatten the content table into (block name, variants), in page order."""
    unknown = set(content) - {*TOP_LEVEL, *LIST_BLOCKS, *OPTION_KEYS}
    if unknown:
        raise ContentError(f"[content] has unknown block(s): {', '.join(sorted(unknown))}")
    blocks = []
    for name in TOP_LEVEL:
        if name not in content:
            raise ContentError(f"[content] needs a '{name}' template")
        blocks.append((name, _variants(content[name], name)))
    for name, fields in LIST_BLOCKS.items():
        entries = content.get(name, [])
        if not isinstance(entries, list) or len(entries) > 20:
            raise ContentError(f"[[content.{name}]] must be a list of at most 20 tables")
        for index, entry in enumerate(entries, 1):
            if not isinstance(entry, dict) or set(entry) != set(fields):
                raise ContentError(f"{name} {index} must have exactly: {', '.join(fields)}")
            for part in fields:
                where = f"{name} {index} {part}"
                blocks.append((where, _variants(entry[part], where)))
    return blocks


def _switch(index: int, variants: list[str]) -> str:
    if len(variants) == 1:
        return variants[0]
    branches = [
        f"{{% {'if' if number == 0 else 'elif'} v[{index}] == {number} %}}{variant}"
        for number, variant in enumerate(variants)
    ]
    return "".join(branches) + "{% endif %}"


def _clean(text: str) -> str:
    return " ".join(text.split())


def _expire(signum: int, frame: FrameType | None) -> None:
    raise RenderTimeout("a page took longer than the time limit to render")


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise RenderTimeout if the body runs longer than `seconds` (main thread only)."""
    if signal.getsignal(signal.SIGALRM) is not _expire:
        signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


class ContentTemplates:
    """The compiled content blocks of one site."""

    def __init__(self, content: Mapping[str, Any]) -> None:
        self.blocks = _blocks(content)
        environment = _environment()
        self._single: list[list[jinja2.Template]] = []
        for where, variants in self.blocks:
            compiled = []
            for number, variant in enumerate(variants, 1):
                try:
                    compiled.append(environment.from_string(variant))
                except jinja2.TemplateSyntaxError as error:
                    raise ContentError(
                        f"{where} variant {number}: {error.message} (line {error.lineno})"
                    ) from None
            self._single.append(compiled)
        # One template for all blocks: a single render call per page is ~2x faster.
        source = SEPARATOR.join(_switch(i, variants) for i, (_, variants) in enumerate(self.blocks))
        self._combined = environment.from_string(source)
        self._counts = [len(variants) for _, variants in self.blocks]
        self._sections = sum(1 for where, _ in self.blocks if where.startswith("sections"))
        # The words the templates write themselves, whatever the page's data.
        literals = [
            node.data if isinstance(node, nodes.TemplateData) else cast(nodes.Const, node).value
            for _, variants in self.blocks
            for variant in variants
            for node in environment.parse(variant).find_all((nodes.TemplateData, nodes.Const))
        ]
        self.literal_text = " ".join(text for text in literals if isinstance(text, str))

    def choose(self, seed: int) -> list[int]:
        """The variant of each block for a page with this seed (stable across runs)."""
        return [zlib.crc32(bytes((i,)), seed) % n for i, n in enumerate(self._counts)]

    def _explain(self, context: dict[str, Any], chosen: list[int], error: Exception) -> str:
        for index, (where, _) in enumerate(self.blocks):
            try:
                self._single[index][chosen[index]].render(context)
            except Exception as block_error:
                return f"{where} variant {chosen[index] + 1}: {block_error}"
        return str(error)

    def render_block(self, index: int, variant: int, context: dict[str, Any]) -> str:
        return _clean(self._single[index][variant].render(context))

    def render(self, context: dict[str, Any], seed: int) -> tuple[list[str], list[int]]:
        """Render every block for one page; return the texts and the variants chosen."""
        chosen = self.choose(seed)
        try:
            output = self._combined.render({**context, "v": chosen})
        except RenderTimeout:
            raise
        except Exception as error:  # sandbox violations, undefined names, type errors
            raise ContentError(self._explain(context, chosen, error)) from None
        texts = [_clean(text) for text in output.split(SEPARATOR)]
        if any(len(text) > MAX_BLOCK_OUTPUT for text in texts):
            raise ContentError(f"a block rendered more than {MAX_BLOCK_OUTPUT} characters")
        return texts, chosen

    def fit(
        self, index: int, texts: list[str], chosen: list[int], limit: int, context: dict[str, Any]
    ) -> str:
        """Try the other variants of a block whose text is over `limit`; keep the first fit."""
        text = texts[index]
        count = self._counts[index]
        for step in range(1, count):
            variant = (chosen[index] + step) % count
            candidate = self.render_block(index, variant, context)
            if len(candidate) <= limit:
                return candidate
            text = min(text, candidate, key=len)
        return text

    def page_text(self, texts: list[str]) -> PageText:
        """Group rendered block texts into the fields of a page."""
        pairs = texts[len(TOP_LEVEL) :]
        cut = self._sections  # two blocks (heading, body) per section
        sections = [(pairs[i], pairs[i + 1]) for i in range(0, cut, 2)]
        faq = [(pairs[i], pairs[i + 1]) for i in range(cut, len(pairs), 2)]
        return PageText(texts[0], texts[1], texts[2], texts[3], sections, faq)
