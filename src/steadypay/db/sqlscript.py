"""Split a SQL script into statements (for migrations run over asyncpg's extended protocol).

asyncpg prepares every statement, so a migration cannot send several at once. This splitter
knows the only SQL syntax our own migrations use that can hide a ';': dollar-quoted bodies
(``$$ ... $$``), single-quoted literals and ``--`` comments.
"""

from __future__ import annotations


def split_statements(script: str) -> list[str]:
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(script)
    while i < n:
        ch = script[i]
        if script.startswith("$$", i):
            end = script.find("$$", i + 2)
            end = n if end < 0 else end + 2
            current.append(script[i:end])
            i = end
        elif ch == "'":
            end = i + 1
            while end < n:
                if script[end] == "'" and script.startswith("''", end):
                    end += 2
                elif script[end] == "'":
                    break
                else:
                    end += 1
            current.append(script[i : end + 1])
            i = end + 1
        elif script.startswith("--", i):
            end = script.find("\n", i)
            end = n if end < 0 else end
            i = end
        elif ch == ";":
            _flush(current, statements)
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    _flush(current, statements)
    return statements


def _flush(parts: list[str], into: list[str]) -> None:
    statement = "".join(parts).strip()
    if statement:
        into.append(statement)
