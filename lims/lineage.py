"""What a sample was made from: its parent (aliquot, derivative) and a pool's parents."""

from __future__ import annotations

from sqlmodel import Session, col, select

from lims.models import PoolParent, Sample


def parents_of(session: Session, samples: list[Sample]) -> dict[int, list[Sample]]:
    """Return the direct parents of each sample by id: the one it was split or derived from,
    or every parent of a pool (oldest first)."""
    out: dict[int, list[Sample]] = {s.id: [] for s in samples}
    single = {s.parent_id for s in samples if s.parent_id is not None}
    links = list(
        session.exec(
            select(PoolParent)
            .where(col(PoolParent.pool_id).in_(list(out)))
            .order_by(col(PoolParent.pool_id), col(PoolParent.parent_id))
        ).all()
    )
    wanted = single | {link.parent_id for link in links}
    if not wanted:
        return out
    by_id = {p.id: p for p in session.exec(select(Sample).where(col(Sample.id).in_(wanted)))}
    for s in samples:
        if s.parent_id is not None:
            out[s.id].append(by_id[s.parent_id])
    for link in links:
        out[link.pool_id].append(by_id[link.parent_id])
    return out


def ancestors(session: Session, sample: Sample) -> tuple[list[Sample], dict[int, list[Sample]]]:
    """Return every sample sample was made from, root first, and the parents of each of them
    and of sample itself by id (one generation a round, however many parents a pool has)."""
    seen = {sample.id}
    order: list[Sample] = []
    parents: dict[int, list[Sample]] = {}
    frontier = [sample]
    while frontier:
        found = parents_of(session, frontier)
        parents.update(found)
        frontier = []
        for kin in found.values():
            for p in kin:
                if p.id not in seen:
                    seen.add(p.id)
                    order.append(p)
                    frontier.append(p)
    order.reverse()
    return order, parents
