"""A feed's SQL expressions (a content table's text and condition, a like table's weight), read as PostgreSQL's
lexer would before anything parses them.

pgfeed writes them into statements it runs with its own rights, between parentheses: ``SELECT (expression)``.
An expression that closed that parenthesis, or ended the statement with a semicolon, would add SQL of its own
(``body) FROM t; ALTER ROLE app SUPERUSER; SELECT (body``). So an expression must keep its parentheses balanced
outside its quotes and hold no semicolon. The reading is conservative: it refuses what would make the quotes
hard to follow, none of which such an expression needs:

- a backslash, anywhere: it is the one character whose meaning depends on the lexer's mode (an escape string
  ``E'\\''``, or ``standard_conforming_strings`` off in some session), so that without it every string ends
  where this reading ends it, whatever the mode;
- escape strings ``E'...'`` and Unicode escapes ``U&'...'``, dollar quotes and parameters ``$``, comments."""

from __future__ import annotations


def _starts_token(expression: str, position: int) -> bool:
    """Whether the character at ``position`` begins a word (an E before a quote is then an escape string; after a
    quoted identifier, "text"E'...', it does)."""
    return position == 0 or not (expression[position - 1].isalnum() or expression[position - 1] in "_$")


def _quoted_end(expression: str, start: int) -> int | None:
    """The position after the quoted string or identifier opening at ``start`` (a doubled quote is one quote),
    or None when it never closes."""
    quote, position = expression[start], start + 1
    while (found := expression.find(quote, position)) != -1:
        if expression[found + 1:found + 2] != quote:
            return found + 1
        position = found + 2
    return None


def problem(expression: str) -> str | None:
    """What keeps ``expression`` from being one self-contained SQL expression, or None."""
    if "\\" in expression:
        return "a backslash: write chr(92) for one"
    depth, position = 0, 0
    while position < len(expression):
        character, pair = expression[position], expression[position:position + 2]
        if character in "'\"":
            before = expression[position - 1] if position else ""
            if before == "&" or (character == "'" and before in ("e", "E") and _starts_token(expression, position - 1)):
                return "an escape string (E'...' or U&'...'): write the character itself in a plain string"
            end = _quoted_end(expression, position)
            if end is None:
                return f"a {'string' if character == chr(39) else 'quoted identifier'} that does not end"
            position = end
            continue
        if character == ";":
            return "a semicolon: it is one expression, not statements"
        if character == "$":
            return "a dollar sign (dollar quoting or a parameter): quote strings with single quotes"
        if pair in ("--", "/*"):
            return "a comment"
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth < 0:
            return "a closing parenthesis that it did not open"
        position += 1
    return "a parenthesis that it does not close" if depth else None
