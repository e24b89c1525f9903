"""Pre-training text: documents as lists of sentences.

Two inputs, as Google BERT's ``create_pretraining_data.py`` reads them (the defaults:
``recipes/README.md``, "Data"):

- a text file with one sentence per line and a blank line between documents (the BERT format);
- a directory of documents, one per file (e.g. the Python documentation's reStructuredText
  sources, ``/usr/share/doc/python3.11/html/_sources``, Debian package ``python3.11-doc``):
  markup, code blocks and directives are dropped, paragraphs are split into sentences.

The default corpus is the second: real English prose that installs offline.
"""

import glob
import os
import random
import re

#: Where Debian's ``python3.11-doc`` puts the documentation sources.
DEFAULT_CORPUS = "/usr/share/doc/python3.11/html/_sources"
INSTALL_HINT = (
    "Install the default corpus with `apt-get install -y python3.11-doc` (Debian/Ubuntu), or "
    "pass --input_files=FILE,... (one sentence per line, a blank line between documents) or "
    "--input_dir=DIR (one document per .txt file)."
)

# A sentence ends at . ! or ? (optionally closed by a quote or bracket) followed by white
# space and a capital, digit, quote or bracket. Abbreviations like "e.g." then "Foo" split
# wrongly now and then; for pre-training pairs that is harmless.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[A-Z0-9\"'(\[])")
_ROLE = re.compile(r":[\w:+-]+:`!?~?([^`<]*?)(?:\s*<[^>]*>)?`")  # :keyword:`!if` -> if
_LITERAL = re.compile(r"``([^`]*)``")
_LINK = re.compile(r"`([^`<]*?)\s*(?:<[^>]*>)?`_{1,2}")
_EMPHASIS = re.compile(r"\*{1,2}([^*\s][^*]*?)\*{1,2}")
_HEADING_RULE = re.compile(r"^([=\-~^\"'`#*+:.<>_])\1{2,}\s*$")


def read_sentence_files(paths):
    """Documents from files in BERT's format: a sentence per line, blank lines between documents.

    Args:
        paths: list of file paths.

    Returns:
        A list of documents, each a non-empty list of sentences (str).

    Raises:
        FileNotFoundError: a path does not exist (the message names it).
        ValueError: the files hold no sentence at all.
    """
    documents, current = [], []
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--input_files: no such file: {path}")
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line:
                    current.append(line)
                elif current:
                    documents.append(current)
                    current = []
        if current:  # a file's end also ends a document
            documents.append(current)
            current = []
    if not documents:
        raise ValueError(f"--input_files: no sentences in {', '.join(paths)}")
    return documents


def read_document_dir(directory, pattern="**/*.txt", min_sentences=2):
    """Documents from a directory, one per file matching ``pattern``, reStructuredText cleaned.

    Args:
        directory: a directory path.
        pattern: glob pattern below ``directory`` (recursive ``**`` allowed).
        min_sentences: documents with fewer sentences are dropped (a next-sentence pair needs
            two).

    Returns:
        A list of documents (lists of sentences), in sorted file order.

    Raises:
        FileNotFoundError: ``directory`` does not exist (the message says how to get the
            default corpus).
        ValueError: no file matches, or no file yields ``min_sentences`` sentences.
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"--input_dir: no such directory: {directory}. {INSTALL_HINT}")
    paths = sorted(glob.glob(os.path.join(directory, pattern), recursive=True))
    if not paths:
        raise ValueError(f"--input_dir: no file matches {pattern} in {directory}")
    documents = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            sentences = split_sentences(rst_to_paragraphs(f.read()))
        if len(sentences) >= min_sentences:
            documents.append(sentences)
    if not documents:
        raise ValueError(
            f"--input_dir: no document in {directory} has {min_sentences} or more sentences"
        )
    return documents


def rst_to_paragraphs(text):
    """The prose paragraphs of a reStructuredText document, markup removed.

    Drops directives and comments (``.. x::`` with their indented bodies), literal blocks
    (the indented block after a paragraph ending in ``::``), tables, headings and their
    rules, and list markers; unwraps inline roles, literals, links and emphasis.

    Returns:
        A list of paragraphs, each one line of text.
    """
    paragraphs, current = [], []
    skip_indent = None  # skipping an indented block deeper than this indent
    literal_next = False

    def flush():
        if current:
            paragraph = _clean_inline(" ".join(current))
            if paragraph.rstrip().endswith("::"):
                paragraph = paragraph.rstrip()[:-1]  # "example::" reads as "example:"
            paragraphs.append(paragraph)
            current.clear()

    for line in text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not stripped or indent > skip_indent:
                continue
            skip_indent = None
        if not stripped:
            if current and current[-1].endswith("::"):
                literal_next = True
            flush()
            continue
        if literal_next:
            literal_next = False
            if indent > 0:
                skip_indent = indent - 1
                continue
        if stripped.startswith(".."):
            flush()
            skip_indent = indent
            continue
        if _HEADING_RULE.match(stripped) or stripped.startswith(("|", "+-", "+=", ">>>", "...")):
            current.clear()  # the heading text above a rule is not prose
            continue
        if stripped.endswith("::") and not current and indent == 0 and len(stripped) < 4:
            continue
        current.append(re.sub(r"^([-*+]|\d+\.|#\.)\s+", "", stripped))
    flush()
    return [p for p in paragraphs if p]


def _clean_inline(line):
    line = _ROLE.sub(r"\1", line)
    line = _LITERAL.sub(r"\1", line)
    line = _LINK.sub(r"\1", line)
    line = _EMPHASIS.sub(r"\1", line)
    return line.replace("\\", "")


def split_sentences(paragraphs, min_words=3):
    """Sentences of ``paragraphs``, split at sentence-ending punctuation.

    Args:
        paragraphs: list of str.
        min_words: fragments with fewer words (stray labels, "See also") are dropped.

    Returns:
        A list of sentences (str), in order.
    """
    sentences = []
    for paragraph in paragraphs:
        for sentence in _SENTENCE_END.split(" ".join(paragraph.split())):
            if len(sentence.split()) >= min_words:
                sentences.append(sentence)
    return sentences


def split_documents(documents, heldout_fraction, seed):
    """``(train, heldout)``: whole documents, ``heldout_fraction`` of them (at least 2 when the
    fraction is positive) chosen at random with ``seed``.

    Raises:
        ValueError: ``heldout_fraction`` outside [0, 0.5], or too few documents to split.
    """
    if not 0.0 <= heldout_fraction <= 0.5:
        raise ValueError(
            f"--heldout_fraction must be in [0, 0.5]. Received: heldout_fraction={heldout_fraction}"
        )
    if heldout_fraction == 0:
        return documents, []
    count = max(2, round(len(documents) * heldout_fraction))
    if len(documents) - count < 2:
        raise ValueError(
            f"{len(documents)} documents are too few to hold out {count} and train on the rest."
        )
    order = list(range(len(documents)))
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    return (
        [d for i, d in enumerate(documents) if i not in held],
        [d for i, d in enumerate(documents) if i in held],
    )
