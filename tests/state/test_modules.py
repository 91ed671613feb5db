"""Module subscriptions on both state backends: default on, admin choices kept and cached."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from norrvakt.modules import TenantModules, UnknownModule
from tests.state.conftest import engine  # noqa: F401 - the two-backend fixture


def test_default_on_choices_persist_and_unknown_modules_are_refused(engine: sa.Engine) -> None:  # noqa: F811
    modules = TenantModules(engine)
    assert modules.enabled("boden", "detection") and modules.enabled("boden", "collection")
    assert modules.set("boden", {"detection": False, "followup": False}, "admin") == {
        "detection": False,
        "soc_notification": True,
        "followup": False,
        "response": False,  # opt-in: off until switched on
    }
    assert not modules("boden", "detection") and modules("lulea", "detection")
    assert modules.enabled("boden", "collection")  # the base is not a choice
    modules.set("boden", {"followup": True}, "admin")
    again = TenantModules(engine)  # a restart reads the choices back
    assert again.table(["boden"]) == {
        "boden": {"detection": False, "soc_notification": True, "followup": True, "response": False}
    }
    with pytest.raises(UnknownModule, match="teleport"):
        modules.set("boden", {"teleport": True}, "admin")
