"""Royalties' errors, rooted at the node's one `NodeError` (one problem type each)."""

from node.errors import BadRequest, Conflict, NodeError, NotFound


class RoyaltiesError(NodeError):
    status = 500
    type_slug = "royalties"
    title = "Royalties error"


class Unbalanced(RoyaltiesError):
    """A ledger transaction whose debits and credits differ in some currency."""

    status = 500
    type_slug = "ledger-unbalanced"
    title = "Ledger transaction is not balanced"


class LedgerConflict(Conflict):
    """The same ref was posted before with different lines."""

    type_slug = "ledger-conflict"
    title = "Ledger reference already used for other lines"


class BadPeriod(BadRequest):
    type_slug = "bad-period"
    title = "Not a period that can be used here"


class PeriodClosed(Conflict):
    type_slug = "period-closed"
    title = "That period is closed and never changes"


class UnknownPayment(NotFound):
    type_slug = "unknown-payment"
    title = "No such payment"


class BadMoney(BadRequest):
    type_slug = "bad-money"
    title = "Not a valid amount of money"
