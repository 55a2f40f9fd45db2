"""Replay analytics over the archive: values that a fresh attestation should never repeat.

* the same mnonce in different reports (the verifier's challenge was answered twice, or re-wrapped);
* the same user data in different reports (often a nonce or key hash; a constant value binds nothing);
* the same report bytes seen under several paths;
* one chip id under more than ``vm_threshold`` distinct VM ids.

De-duplication is not proof of freshness: a replay into an archive that never saw the original goes
unnoticed. ``scope`` restricts the groups to those touching a set of report sha256 (a table name).
"""

VM_THRESHOLD = 16
EXAMPLES = 5

_GROUPS = {
    "mnonce": ("reports", "mnonce", "COUNT(*)", "mnonce IS NOT NULL"),
    "user_data": ("reports", "user_data", "COUNT(*)", "user_data IS NOT NULL"),
    "paths": ("report_paths", "report_sha256", "COUNT(*)", "1"),
    "chip_vms": ("reports", "chip_id", "COUNT(DISTINCT vm_id)", "chip_id IS NOT NULL"),
}
LABELS = {
    "mnonce": "mnonce reused across different reports",
    "user_data": "user data reused across different reports",
    "paths": "same report under several paths",
    "chip_vms": "chip under many VM ids",
}


def _group_sql(kind: str, scope: str | None, threshold: int, ordered: bool = True) -> tuple[str, list]:
    table, column, measure, present = _GROUPS[kind]
    where = present
    if scope:
        if table == "reports":
            where += f" AND {column} IN (SELECT {column} FROM reports WHERE sha256 IN (SELECT sha256 FROM {scope}))"
        else:
            where += f" AND {column} IN (SELECT sha256 FROM {scope})"
    limit = threshold if kind == "chip_vms" else 1
    order = f" ORDER BY n DESC, {column}" if ordered else ""
    return f"SELECT {column}, {measure} AS n FROM {table} WHERE {where} GROUP BY {column} HAVING n > ?{order}", [limit]


def replay_counts(conn, scope: str | None = None, threshold: int = VM_THRESHOLD) -> dict:
    """How many groups of each kind exist (restricted to ``scope`` when given)."""
    if scope and _covers_every_report(conn, scope):
        scope = None  # every group touches the scope: the plain scan gives the same counts, much faster
    counts = {}
    for kind in _GROUPS:
        sql, args = _group_sql(kind, scope, threshold, ordered=False)
        counts[kind] = conn.execute(f"SELECT COUNT(*) FROM ({sql})", args).fetchone()[0]
    counts["vm_threshold"] = threshold
    return counts


def _covers_every_report(conn, scope: str) -> bool:
    in_scope = conn.execute(f"SELECT COUNT(*) FROM reports WHERE sha256 IN (SELECT sha256 FROM {scope})").fetchone()[0]
    return in_scope == conn.execute("SELECT COUNT(*) FROM reports").fetchone()[0]


def _examples(conn, kind: str, value) -> list[dict]:
    if kind == "chip_vms":
        rows = conn.execute("SELECT vm_id, COUNT(*) FROM reports WHERE chip_id = ? GROUP BY vm_id "
                            "ORDER BY 2 DESC, vm_id LIMIT ?", (value, EXAMPLES)).fetchall()
        return [{"vm_id": vm_id, "reports": n} for vm_id, n in rows]
    if kind == "paths":
        rows = conn.execute("SELECT p.report_sha256, r.chip_id, p.path, p.first_seen FROM report_paths p "
                            "LEFT JOIN reports r ON r.sha256 = p.report_sha256 WHERE p.report_sha256 = ? "
                            "ORDER BY p.first_seen LIMIT ?", (value, EXAMPLES)).fetchall()
    else:
        column = _GROUPS[kind][1]
        rows = conn.execute(
            "SELECT r.sha256, r.chip_id, (SELECT path FROM report_paths p WHERE p.report_sha256 = r.sha256 "
            f"ORDER BY first_seen LIMIT 1), r.first_seen FROM reports r WHERE r.{column} = ? "
            "ORDER BY r.first_seen LIMIT ?", (value, EXAMPLES)).fetchall()
    return [{"sha256": sha, "chip_id": chip, "path": path, "first_seen": seen} for sha, chip, path, seen in rows]


def duplicates(conn, threshold: int = VM_THRESHOLD, limit: int | None = 50, scope: str | None = None) -> dict:
    """Every group of each kind, largest first (``limit`` groups per kind), with a few example reports."""
    out = {"vm_threshold": threshold}
    for kind in _GROUPS:
        counting, args = _group_sql(kind, scope, threshold, ordered=False)
        total = conn.execute(f"SELECT COUNT(*) FROM ({counting})", args).fetchone()[0]
        sql, args = _group_sql(kind, scope, threshold)
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        groups = [{"value": value, "count": n, "examples": _examples(conn, kind, value)}
                  for value, n in conn.execute(sql, args).fetchall()]
        out[kind] = {"label": LABELS[kind], "groups": total, "shown": groups}
    return out
