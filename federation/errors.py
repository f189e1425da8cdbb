"""Federation's errors, rooted at the node's one `NodeError`."""

from node.errors import BadRequest, Forbidden, NodeError


class BadActivity(BadRequest):
    type_slug = "bad-activity"
    title = "Malformed or inconsistent activity"


class Refused(Forbidden):
    type_slug = "federation-refused"
    title = "Refused by instance policy"


class FetchFailed(NodeError):
    status = 502
    type_slug = "fetch-failed"
    title = "Could not fetch from the remote node"
