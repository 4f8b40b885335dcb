"""``[fleet]``: several daemons sharing one PostgreSQL store (SPEC §11)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class FleetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="share runs and schedules with the other "
                          "daemons on this PostgreSQL database")
    lease_seconds: float = Field(30.0, ge=1, le=3600, description="a run whose holder has "
                                 "not renewed its lease for this long is taken over; a dead "
                                 "daemon's runs resume elsewhere within twice this")
    shared_paths: list[Path] = Field([], description="folders every host of the fleet sees "
                                     "alike (a network share): runs of files elsewhere "
                                     "carry affinity and only this host runs them")
    poll_seconds: float = Field(0.5, gt=0, le=60, description="how often an idle daemon "
                                "looks for runs to claim (besides PostgreSQL notifications)")
