"""Every inbound (activity, object type) pair we support routes to exactly one
handler, and whatever we do not support is ignored, never failed.

The table is the federation profile (DESIGN.md 5) as code: adding a handler
means adding its pair here, so nobody adds one by accident, and a supported
pair can never fall through to a catch-all that merely ignores it.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from federation import inbound
from federation.handlers import HANDLERS, HandlerTable
from federation.models import InboxItem
from media.live import federation as live_federation
from royalties import clearing, reconcile

# Subsystems add their pairs when they load; load them all so the table under
# test is the one a running node has, whatever order the tests import in.
live_federation.register_inbound()

ACTOR_TYPES = ("Person", "Group", "Organization", "Service", "Application")

# The profile: each pair and the one handler that does the work.
SUPPORTED: dict[tuple[str, str], str] = {
    ("Follow", "*"): "on_follow",
    ("Accept", "Follow"): "on_accept_follow",
    ("Reject", "Follow"): "on_reject_follow",
    ("Accept", "*"): "on_answer_by_reference",
    ("Reject", "*"): "on_answer_by_reference",
    ("Undo", "Follow"): "on_undo_follow",
    ("Undo", "Like"): "on_undo_like",
    ("Undo", "Announce"): "on_undo_announce",
    ("Create", "Album"): "on_album",
    ("Update", "Album"): "on_album",
    ("Create", "Audio"): "on_audio",
    ("Update", "Audio"): "on_audio",
    ("Create", "Event"): "on_event",
    ("Update", "Event"): "on_event",
    ("Create", "Note"): "on_note",
    ("Update", "Note"): "on_note",
    **{("Update", kind): "on_actor_update" for kind in ACTOR_TYPES},
    ("Delete", "*"): "on_delete",
    ("Like", "*"): "on_like",
    ("Announce", "*"): "on_announce",
    ("Flag", "*"): "on_flag",
    ("Listen", "*"): "on_listen",
}

# Pairs that subsystems add: the clearing protocol (DESIGN.md 7) and live
# sessions (DESIGN.md 9), each with the module whose handler does the work.
SUBSYSTEMS: dict[tuple[str, str], tuple[object, str]] = {
    ("Create", "Statement"): (reconcile, "on_statement"),
    ("Accept", "Statement"): (reconcile, "on_statement_answer"),
    ("Reject", "Statement"): (reconcile, "on_statement_answer"),
    ("Create", "Settlement"): (clearing, "on_settlement"),
    ("Accept", "Settlement"): (clearing, "on_settlement_answer"),
    ("Reject", "Settlement"): (clearing, "on_settlement_answer"),
    ("Update", "Settlement"): (clearing, "on_settlement_update"),
    ("Create", "Transfer"): (clearing, "on_transfer_paid"),
    ("Accept", "Transfer"): (clearing, "on_transfer_confirmed"),
    ("Create", "Video"): (live_federation, "on_live_video"),
    ("Update", "Video"): (live_federation, "on_live_video"),
}

# Catch-alls that only say why an activity was ignored.
IGNORING: dict[tuple[str, str], str] = {
    ("Undo", "*"): "on_undo_other",
    ("Create", "*"): "on_other_object",
    ("Update", "*"): "on_other_object",
}

# What real servers send, with the object type as it arrives (None: a bare id).
ARRIVING: dict[tuple[str, str | None], str] = {
    ("Follow", None): "on_follow",  # Mastodon: the object is our actor's id
    ("Follow", "Person"): "on_follow",
    ("Accept", "Follow"): "on_accept_follow",  # Mastodon embeds our Follow
    ("Accept", None): "on_answer_by_reference",  # some only reference it
    ("Reject", "Follow"): "on_reject_follow",
    ("Reject", None): "on_answer_by_reference",
    ("Undo", "Follow"): "on_undo_follow",
    ("Undo", "Like"): "on_undo_like",
    ("Undo", "Announce"): "on_undo_announce",
    ("Create", "Album"): "on_album",
    ("Create", "Audio"): "on_audio",  # Funkwhale uploads and ours
    ("Update", "Audio"): "on_audio",
    ("Create", "Event"): "on_event",
    ("Update", "Event"): "on_event",
    ("Create", "Note"): "on_note",  # comments, and our release posts
    ("Update", "Person"): "on_actor_update",  # Mastodon profile edits
    ("Update", "Group"): "on_actor_update",
    ("Delete", None): "on_delete",  # Mastodon's Delete(actor)
    ("Delete", "Tombstone"): "on_delete",  # ours and Mastodon's status deletes
    ("Delete", "Audio"): "on_delete",  # Funkwhale's
    ("Like", None): "on_like",
    ("Like", "Audio"): "on_like",
    ("Announce", None): "on_announce",
    ("Flag", None): "on_flag",
    ("Listen", None): "on_listen",  # ours: the track's id
    ("Listen", "Audio"): "on_listen",  # Funkwhale embeds the object
    ("Listen", "Track"): "on_listen",
}


def test_the_table_is_exactly_the_profile():
    table = {pair: fn.__name__ for pair, fn in HANDLERS.table.items()}
    subsystems = {pair: name for pair, (_, name) in SUBSYSTEMS.items()}
    assert table == SUPPORTED | IGNORING | subsystems
    for name in set((SUPPORTED | IGNORING).values()):
        assert getattr(inbound, name) in HANDLERS.table.values()
    for pair, (module, name) in SUBSYSTEMS.items():
        assert HANDLERS.table[pair] is getattr(module, name)


@pytest.mark.parametrize(("pair", "name"), ARRIVING.items(), ids=lambda v: str(v))
def test_each_supported_pair_reaches_its_own_handler(pair, name):
    handler = HANDLERS.find(*pair)
    assert handler is not None and handler.__name__ == name
    assert handler.__name__ not in IGNORING.values()


def test_a_pair_cannot_have_two_handlers():
    table = HandlerTable()

    @table.on("Create", "Audio")
    async def first(inb):
        return None

    with pytest.raises(ValueError, match="two handlers"):

        @table.on("Create", "Audio")
        async def second(inb):
            return None

    assert table.find("Create", "Audio") is first


def test_unknown_pairs_find_a_catch_all_or_nothing():
    assert HANDLERS.find("Create", "Question").__name__ == "on_other_object"
    assert HANDLERS.find("Undo", "Block").__name__ == "on_undo_other"
    for kind in ("Move", "Block", "Add", "Remove", "EmojiReact", "Question"):
        assert HANDLERS.find(kind, None) is None


async def test_unknown_activities_are_stored_and_ignored_not_failed(
    network, remote, eventually, api
):
    (node,) = await network(1)
    await node.user("jay", "artist")
    fake = await remote("mastodon")
    alice = fake.add_actor("alice")
    jay = node.ctx.urls.actor("jay")

    def activity(kind: str, obj) -> dict:
        return {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{fake.base}/activities/{uuid.uuid4()}",
            "type": kind,
            "actor": alice.uri,
            "object": obj,
        }

    sent = [
        activity("Move", alice.uri) | {"target": f"{fake.base}/users/alice2"},
        activity("Block", jay),
        activity("EmojiReact", f"{node.base_url}/tracks/{uuid.uuid4()}") | {"content": "🔥"},
        activity("Add", {"type": "Note", "id": f"{fake.base}/notes/1"}),
        activity(
            "Create",
            {"type": "Question", "id": f"{fake.base}/q/1", "attributedTo": alice.uri},
        ),
        activity("Undo", {"type": "Block", "id": f"{fake.base}/b/1", "actor": alice.uri}),
        # Supported types about things we do not know are ignored too.
        activity("Like", f"{node.base_url}/tracks/{uuid.uuid4()}"),
        activity("Accept", f"{node.base_url}/follows/{uuid.uuid4()}"),
        activity("Undo", {"type": "Follow", "id": f"{fake.base}/f/1", "actor": alice.uri}),
    ]
    for a in sent:
        status, answer = await fake.post(node.base_url + "/inbox", a)
        assert status == 202, answer

    async def settled():
        async with node.ctx.db.read_session() as s:
            items = (await s.scalars(select(InboxItem))).all()
        if len(items) == len(sent) and all(i.state != "received" for i in items):
            return items
        return None

    items = await eventually(settled)
    assert {(i.type, i.state) for i in items} == {(a["type"], "ignored") for a in sent}
    assert all(i.error for i in items)  # each says why
