"""Recognise the lines of a page that are not the article: boilerplate cleaning.

Scraped and extracted text carries the furniture of the page it came from:
breadcrumbs ("HomeWorldEurope", "Home > World"), photo credits ("Jane Roe/Pool
Photo via AP", "Photo: Getty Images"), bylines and datelines, share and follow
buttons, "Subscribe to our newsletter", "Advertisement", and the comments or
"related stories" block that ends a page. Everything here works on one line (or
sentence) at a time so every reader, and the summariser, applies the same rules.

In: a line of text. Out: a classification (``LineKind``) or a cleaned list of
paragraphs. Nothing here knows about files or formats.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

# A line that ends like a sentence (or a quote of one) is prose, not furniture.
_TERMINAL = re.compile(r"[.!?…][\"'”’)\]]*$|[:;][\"'”’]?$")
_WORD = re.compile(r"\S+")

# Phrases that make a short line page furniture wherever it appears. Only applied to
# short lines: "Share prices rose on Monday after ..." is news, "Share this" is not.
_FURNITURE_PHRASES = re.compile(
    r"""^\W*?(?:
      subscribe\b.* | sign[\s-]?up\b.* | sign\s+in\b.* | log\s*in\b.*
    | (?:get|join|try)\s+(?:our|the)\b.*newsletters?\b.* | newsletters?\b.*
    | .*\b(?:our|daily|weekly|free)\s+newsletters?\W*
    | advertisement(?:\W+(?:scroll|continue|story|article)\b.*)?\W* | advertising\W* | ad
    | sponsored(?:\s+content)?\W* | promoted\W* | (?:story|article|text)\s+continues\b.*
    | share\W* | share\s+(?:this|on|via|the|article|story|to)\b.* | shares?\s*\d+
    | (?:follow|like|find)\s+us\b.* | follow\s+(?:the|our)\s+\S+\s+on\b.*
    | (?:facebook|twitter|x|whatsapp|linkedin|reddit|email|e-mail|print|pinterest|telegram
       |copy\s+link|copied|link\s+copied|messenger|bluesky|threads)\W*
    | (?:read|see|watch|listen)\s+(?:more|also|next|now)\b.* | continue\s+reading\b.*
    | click\s+here\b.* | tap\s+here\b.* | learn\s+more\W*
    | click\s+to\s+(?:share|email|print|open|tweet)\b.*
    | related\s*:.* | (?:also\s+read|see\s+also|read\s+also|also\s+see)\b.* | (?:watch|listen)\s*:.*
    | follow\s+.{1,40}?\s+on\s+(?:twitter|x|facebook|instagram|linkedin|bluesky|threads)\b.*
    | contact\s+(?:the\s+)?(?:author|reporter|writer|newsroom)\b.*
    | listen\s+to\s+(?:this|the)\s+(?:article|story)\b.* | \d+\s+min(?:ute)?s?\s+read\W*
    | (?:reading|read)\s+time\b.* | skip\s+to\b.* | back\s+to\s+top\W* | menu\W* | search\W*
    | close\W* | open\s+in\s+app\W* | download\s+(?:our|the)\s+app\b.*
    | (?:©|\(c\)|copyright\b).* | all\s+rights\s+reserved\W*
    | (?:tags?|topics?|filed\s+under|posted\s+in|categories)\s*:.*
    | reporting\s+by\b.* | editing\s+by\b.* | additional\s+reporting\b.*
    | (?:accept|reject|manage)\s+(?:all\s+)?cookies\b.*
    | cookie\s+(?:settings|policy|preferences)\W*
    | loading\W* | play\s+video\W* | video\W* | gallery\W* | \d+\s+photos?\W*
    | (?:image|photo|picture)\s+\d+\s+of\s+\d+\W*
    | updated\W* | (?:comments?|replies)\s*\(?\d*\)?\W* | \d+\s+(?:comments?|replies)\W*
    )$""",
    re.IGNORECASE | re.VERBOSE,
)

# Cookie notices and feed footers can be full, punctuated sentences; they are never news.
_NOTICE = re.compile(
    r"\b(?:we|this\s+(?:site|website))\s+uses?\s+cookies\b"
    r"|\bby\s+continuing\s+to\s+(?:browse|use)\b"
    r"|\bappeared\s+first\s+on\b|\ball\s+rights\s+reserved\b|\bour\s+standards\s*:"
    r"|\bmay\s+not\s+be\s+(?:published|reproduced|broadcast|rewritten|redistributed)\b"
    r"|\bthis\s+(?:article|story)\s+(?:was\s+)?originally\s+(?:appeared|published)\b",
    re.IGNORECASE,
)
# "Sign up for our free newsletter to get the week's best stories." (a short sentence)
_NEWSLETTER_PITCH = re.compile(
    r"^\W*(?:subscribe|sign\s+up|register|get|join)\b.*\bnewsletters?\b", re.IGNORECASE
)

# Where the article ends and the comments or link lists of the page begin.
_END_OF_ARTICLE = re.compile(
    r"""^\W*(?:
      comments?(?:\s*\(\d+\))? | \d+\s+comments? | view\s+comments | show\s+comments
    | leave\s+a\s+(?:comment|reply) | join\s+the\s+(?:conversation|discussion)
    | related(?:\s+(?:articles?|stories|coverage|content|news|reading))? | see\s+also
    | more\s+(?:from|stories|news|in)\b.* | read\s+next | up\s+next | what\s+to\s+read\s+next
    | you\s+(?:may|might)\s+also\s+(?:like|be\s+interested\s+in)
    | recommended(?:\s+for\s+you)? | most\s+(?:read|popular|viewed|shared)
    | trending(?:\s+now)? | latest\s+(?:news|stories) | top\s+stories | popular\s+now
    | about\s+the\s+author
    )\W*$""",
    re.IGNORECASE | re.VERBOSE,
)

_AGENCIES = (
    r"AP|AFP|Reuters|Getty(?:\s+Images)?|EPA(?:-EFE)?|Bloomberg|Shutterstock|Alamy|iStock"
    r"|Xinhua|ANP|dpa|PA(?:\s+Media)?|Pool|NurPhoto|SIPA|Anadolu|Reuters\s+Pictures"
)
# Credits by their shape: these mark a credit even when the line ends with a full stop.
_CREDIT_SHAPES = (
    # "Jane Roe/Pool Photo via AP", "John Doe / Reuters", "(AP Photo/Evan Vucci)"
    re.compile(rf"\bvia\s+(?:{_AGENCIES})\b", re.IGNORECASE),
    re.compile(rf"/\s*(?:{_AGENCIES})\b", re.IGNORECASE),
    # "Photo: Getty Images", "Image credit: NASA", "Photograph by Mia Berg"
    re.compile(
        r"^\W*(?:photo(?:graph)?s?|image|picture|pic|credit|illustration|video|source|foto)"
        r"(?:\s+(?:credit|courtesy))?\s*(?::|by\b|courtesy\b|/)",
        re.IGNORECASE,
    ),
)
# Credits by the names in them: only for lines that are not sentences, since
# "The minister told the Associated Press." is news.
_CREDIT_NAMES = re.compile(
    r"\b(?:Getty\s+Images|Shutterstock|iStockphoto|Alamy|Associated\s+Press|courtesy\s+of"
    r"|file\s+photo|handout|stock\s+photo|(?:AP|AFP|Reuters|EPA|Pool)\s+Photos?)\b",
    re.IGNORECASE,
)
# "Name Surname/Organisation": a credit line without an agency we know.
_NAME_SLASH_ORG = re.compile(r"^[A-Z][\w.'’-]+(?:\s[A-Z][\w.'’-]+){0,3}\s?/\s?[A-Z][\w .&'’-]+$")

_BYLINE = re.compile(
    r"^(?:written\s+by|words\s+by|story\s+by|by)[:\s]+([A-Z][^\n]{1,80}?)\W*$", re.IGNORECASE
)
_NAME_JOINERS = {
    "and",
    "&",
    "of",
    "the",
    "in",
    "for",
    "de",
    "del",
    "van",
    "von",
    "der",
    "da",
    "la",
    "le",
    "at",
}
_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DATELINE = re.compile(
    rf"""^\W*(?:(?:published|updated|posted|last\s+updated|first\s+published|date)\s*(?:on|at)?\s*:?\s*)?
    (?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+)?
    (?:\d{{1,2}}\s+{_MONTHS}\s+\d{{4}} | {_MONTHS}\s+\d{{1,2}},?\s+\d{{4}} | \d{{4}}-\d{{2}}-\d{{2}}
       | \d{{1,2}}[./]\d{{1,2}}[./]\d{{4}})
    (?:\s*[,|•·-]?\s*(?:at\s+)?\d{{1,2}}[:.]\d{{2}}(?:\s*[ap]\.?m\.?)?(?:\s*[A-Z]{{2,4}})?)?\W*$""",
    re.IGNORECASE | re.VERBOSE,
)
# "Image caption, People queue outside a bank": the picture's caption, not the story.
_CAPTION = re.compile(r"^\W*(?:(?:image|photo|picture|video)\s+caption\b|caption\s*:)", re.I)
_BREADCRUMB_SEPARATORS = re.compile(r"\s+(?:>|›|»|/|\||→|::)\s+")
_BREADCRUMB_ROOTS = re.compile(r"^(?:Home|News|Start|Startseite|Accueil|Inicio)(?=[A-Z])")
_CAMEL_PIECE = re.compile(r"[A-Z]?[a-z]{3,}(?=[A-Z])")

SHORT_LINE_WORDS = 8


class LineKind(Enum):
    """What a line of scraped text is."""

    PROSE = "prose"
    SHORT = "short"  # short and unpunctuated: a label, subhead or button
    FURNITURE = "furniture"  # share/subscribe/advertisement/cookie lines
    CREDIT = "credit"
    BREADCRUMB = "breadcrumb"
    BYLINE = "byline"
    DATELINE = "dateline"
    END = "end"  # the comments or related-links block starts here


def word_count(text: str) -> int:
    """Number of whitespace-separated words in ``text``."""
    return len(_WORD.findall(text))


def normalise_space(text: str) -> str:
    """Collapse every run of whitespace (newlines included) to one space and trim."""
    return " ".join(text.split())


def ends_like_sentence(line: str) -> bool:
    """True when ``line`` ends with sentence punctuation (optionally inside a quote)."""
    return bool(_TERMINAL.search(line.rstrip()))


def is_breadcrumb(line: str) -> bool:
    """True for navigation trails: "HomeWorldEurope", "Home > World > Europe"."""
    if ends_like_sentence(line) or word_count(line) > 12:
        return False
    if _BREADCRUMB_ROOTS.match(line):
        return True
    # Run-together section names: two or more words of 3+ letters glued in one token.
    # One glue point is a name (YouTube, McDonald's, OpenAI); two is a trail.
    if any(len(_CAMEL_PIECE.findall(token)) >= 2 for token in line.split()):
        return True
    parts = _BREADCRUMB_SEPARATORS.split(line)
    if len(parts) >= 3 and all(0 < word_count(part) <= 4 for part in parts):
        return True
    return len(parts) == 2 and parts[0].strip().lower() == "home"


def is_credit(line: str) -> bool:
    """True for photo and agency credits: "Jane Roe/Pool Photo via AP", "Photo: Getty Images"."""
    words = word_count(line)
    sentence = ends_like_sentence(line) and not line.rstrip().endswith(")")
    if words > 20 or (sentence and words > 8):
        return False
    if any(pattern.search(line) for pattern in _CREDIT_SHAPES):
        return True
    if sentence:
        return False
    return bool(_CREDIT_NAMES.search(line)) or (
        words <= 8 and bool(_NAME_SLASH_ORG.match(line.strip("() ")))
    )


def byline_of(line: str) -> str:
    """The name in a byline line ("By Jane Roe, Reuters" -> "Jane Roe, Reuters"), else ""."""
    if word_count(line) > 12 or ends_like_sentence(line):
        return ""
    match = _BYLINE.match(line.strip())
    if not match:
        return ""
    # "By Monday the council ..." is prose: a byline is capitalised names and joiners.
    words = re.findall(r"[^\W\d_][\w'’.-]*", match.group(1))
    if any(word[0].islower() and word.lower() not in _NAME_JOINERS for word in words):
        return ""
    return normalise_space(match.group(1))


def is_dateline(line: str) -> bool:
    """True for a line that is only a date (and time), optionally "Published: ..."."""
    return word_count(line) <= 12 and bool(_DATELINE.match(line.strip()))


def is_furniture(line: str) -> bool:
    """True for share/subscribe/advertisement/cookie lines (short ones, or consent notices)."""
    stripped = line.strip()
    words = word_count(stripped)
    if _NOTICE.search(stripped) and words <= 60:
        return True
    if _NEWSLETTER_PITCH.match(stripped) and words <= 25:
        return True
    # A phrase that starts a longer finished sentence ("Sign-up numbers doubled ...,
    # officials said.") is news; furniture is short or unpunctuated.
    if words > 15 or (words > 8 and ends_like_sentence(stripped)):
        return False
    return bool(_FURNITURE_PHRASES.match(stripped))


def classify(line: str) -> LineKind:
    """Classify one line of scraped text (see ``LineKind``)."""
    stripped = line.strip()
    if word_count(stripped) <= 6 and _END_OF_ARTICLE.match(stripped):
        return LineKind.END
    if is_furniture(stripped):
        return LineKind.FURNITURE
    if is_breadcrumb(stripped):
        return LineKind.BREADCRUMB
    if is_credit(stripped) or (_CAPTION.match(stripped) and word_count(stripped) <= 80):
        return LineKind.CREDIT
    if byline_of(stripped):
        return LineKind.BYLINE
    if is_dateline(stripped):
        return LineKind.DATELINE
    if word_count(stripped) <= SHORT_LINE_WORDS and not ends_like_sentence(stripped):
        return LineKind.SHORT
    return LineKind.PROSE


def is_boilerplate(line: str) -> bool:
    """True when ``line`` (or a sentence) must never reach an article's text or teaser."""
    return classify(line) is not LineKind.PROSE


def same_text(first: str, second: str) -> bool:
    """True when two strings are equal ignoring case, punctuation and spacing."""
    return _letters(first) == _letters(second) and bool(_letters(first))


def _letters(text: str) -> str:
    return re.sub(r"\W+", "", text).casefold()


@dataclass
class CleanedText:
    """Paragraphs of article prose, plus what the furniture told us on the way."""

    paragraphs: list[str] = field(default_factory=list)
    byline: str = ""
    dateline: str = ""


def clean_paragraphs(
    lines: Iterable[str], *, title: str = "", stop_at_end: bool = True
) -> CleanedText:
    """Keep the prose of ``lines``; note the first byline and dateline seen.

    In: candidate paragraphs in page order and the article title (repeats of it are
    dropped). With ``stop_at_end`` everything after a comments/related block marker is
    dropped. Out: ``CleanedText`` with whitespace-normalised paragraphs.
    """
    cleaned = CleanedText()
    for raw in lines:
        line = normalise_space(raw)
        if not line or (title and same_text(line, title)):
            continue
        kind = classify(line)
        if kind is LineKind.END:
            if stop_at_end and cleaned.paragraphs:
                break
            continue
        if kind is LineKind.BYLINE and not cleaned.byline:
            cleaned.byline = byline_of(line)
        elif kind is LineKind.DATELINE and not cleaned.dateline:
            cleaned.dateline = line
        elif kind is LineKind.PROSE:
            cleaned.paragraphs.append(line)
    return cleaned
