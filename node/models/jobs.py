"""The job table: durable work with an explicit state graph (after Takahē).

queued -> running -> done
                  -> queued again (retry, `next_attempt_at` backed off)
                  -> dead (attempts exhausted; visible in the console)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, IdMixin, UTCDateTime, utcnow

JOB_STATES = ("queued", "running", "done", "dead")


class Job(IdMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # The claim query: due queued jobs in priority order.
        Index("ix_jobs_claim", "state", "next_attempt_at", "priority", "id"),
        Index("ix_jobs_kind_state", "kind", "state"),
    )

    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=12)
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=100)
    last_error: Mapped[str | None] = mapped_column(Text)
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
