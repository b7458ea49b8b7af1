"""The quality loop's tests: a second QA person (four eyes need two), lots ready for QC."""

from __future__ import annotations

import pytest
from helpers import PASSWORD

from lims.accounts import users
from lims.db import new_session


@pytest.fixture
def qa2(app, auth) -> dict[str, str]:  # noqa: ANN001
    """Return the bearer headers of a second QA person, qa2."""
    with new_session(app.extensions["lims"]["engine"]) as db:
        users.create_user(
            db,
            username="qa2",
            full_name="Quentin Quality",
            role="qa",
            org="centre",
            password=PASSWORD,
            actor=users.system_actor(db),
        )
        db.commit()
    return auth("qa2")
