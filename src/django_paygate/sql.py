"""The few statements of the hot path, built once per model and reused.

The ORM compiles an ``INSERT`` or an ``UPDATE`` anew on every call, which
costs about half a millisecond of CPU each; the webhook path writes four rows
per event. Here a statement's text is built once per model and column list,
and the values are prepared by the model's own fields (``pre_save`` for
``auto_now`` columns, ``get_db_prep_save`` for the database's types), exactly
as :meth:`Model.save` would prepare them.

:func:`execute` runs several writes in one round trip on PostgreSQL (each one
a data-modifying ``WITH`` clause) and one after another elsewhere. The writes
of one call share a snapshot there, so none may depend on another's row.

:func:`select_sql` and :func:`from_row` read a row back (the payment, locked)
with the converters the ORM would apply, into the same instance it would build.

Every SQL text the app runs outside the ORM is here, named: the payment lookup
of a webhook event (:func:`payment_lookup`), the inbox claim
(:func:`inbox_claim`, :func:`inbox_claim_locking`), the outbox delivery's
statements (:func:`outbox`) and the health check's :func:`ping`.
:func:`database` is the one place that names the database alias.

These writes call no ``save()`` and send no ``pre_save``/``post_save`` (nor,
for inserts, ``pre_init``/``post_init``: no instance is built): the
library's own signals (:mod:`django_paygate.signals`) are the contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, ForeignKey, Model

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class Write:
    """One ``INSERT`` or ``UPDATE`` of one row of ``model``."""

    model: type[Model]
    sql: str
    params: tuple[Any, ...]
    #: The row's primary key when known before the statement runs (an update, a UUID).
    pk: Any = None
    is_update: bool = False


def insert(model: type[Model], /, **values: Any) -> Write:
    """``INSERT`` one row of ``model`` from field values (defaults filled as ``save()`` would).

    ``values`` are keyed by field name (a related object) or attname (its key).
    """
    db = database()
    row: Any = _NewRow(model, values)  # read by attname, as fields read an instance
    params = tuple(f.get_db_prep_save(f.pre_save(row, True), db) for f in _insert_fields(model))
    return Write(model, _insert_sql(model), params, pk=row.pk)


class _NewRow:
    """The attribute values of a row about to be inserted, as ``model(**values)`` would hold them.

    Cheaper than an instance: no descriptors, no signals. Fields' ``pre_save``
    reads (and for ``auto_now`` columns sets) attributes by attname on it.
    """

    def __init__(self, model: type[Model], values: dict[str, Any]) -> None:
        names = _field_names(model)
        unknown = values.keys() - names.keys()
        if unknown:
            raise TypeError(f"{model.__name__} has no field named {', '.join(sorted(unknown))}.")
        for field in model._meta.concrete_fields:
            if field.attname in values:
                value = values[field.attname]
            elif field.name in values:
                value = values[field.name]
                if field.is_relation and value is not None:
                    value = getattr(value, field.target_field.attname)  # type: ignore[attr-defined]
            else:
                value = field.get_default()
            setattr(self, field.attname, value)
        self.pk = getattr(self, _pk_field(model).attname)


def update(instance: Model, fields: Iterable[str]) -> Write:
    """``UPDATE`` the named fields of ``instance``'s row (``auto_now`` ones get the time)."""
    db = database()
    model = type(instance)
    chosen = tuple(sorted(set(fields)))
    params = [
        f.get_db_prep_save(f.pre_save(instance, False), db)
        for f in (_concrete_field(model, name) for name in chosen)
    ]
    params.append(_pk_field(model).get_db_prep_value(instance.pk, db))
    return Write(model, _update_sql(model, chosen), tuple(params), instance.pk, is_update=True)


def execute(*writes: Write) -> list[Any]:
    """Run ``writes`` in order; the primary key of each row written.

    One round trip on PostgreSQL whatever their number. Raises
    :class:`~django.db.DatabaseError` when an update finds no row.
    """
    if len(writes) > 1 and database().vendor == "postgresql":
        keys = _execute_together(writes)
    else:
        keys = [_execute_one(write) for write in writes]
    for write, key in zip(writes, keys, strict=True):
        if write.is_update and key is None:
            raise DatabaseError(f"The {write.model.__name__} row to update was not found.")
    return keys


def _execute_together(writes: Sequence[Write]) -> list[Any]:
    """Each write a data-modifying ``WITH`` clause of one statement."""
    statement = _together_sql(tuple((w.model, w.sql) for w in writes))
    with database().cursor() as cursor:
        cursor.execute(statement, [p for w in writes for p in w.params])
        return list(cursor.fetchone())


@cache
def _together_sql(parts: tuple[tuple[type[Model], str], ...]) -> str:
    clauses = ", ".join(f"w{i} AS ({sql}{_returning(m)})" for i, (m, sql) in enumerate(parts))
    results = ", ".join(f"(SELECT * FROM w{i})" for i in range(len(parts)))
    return f"WITH {clauses} SELECT {results}"


def _execute_one(write: Write) -> Any:
    db = database()
    with db.cursor() as cursor:
        if write.is_update:
            cursor.execute(write.sql, write.params)
            return write.pk if cursor.rowcount else None
        if write.pk is not None:
            cursor.execute(write.sql, write.params)
            return write.pk
        if db.features.can_return_columns_from_insert:
            cursor.execute(write.sql + _returning(write.model), write.params)
            return cursor.fetchone()[0]
        cursor.execute(write.sql, write.params)
        meta = write.model._meta
        return db.ops.last_insert_id(cursor, meta.db_table, _column(_pk_field(write.model)))


def fetch_for_update(model: type[M], pk: Any) -> M:
    """The row of ``model`` with primary key ``pk``, locked until the transaction ends.

    Raises ``model.DoesNotExist`` when there is none.
    """
    db = database()
    with db.cursor() as cursor:
        cursor.execute(
            select_sql(model, f"{_qn(_column(_pk_field(model)))} = %s", lock=True),
            [_pk_field(model).get_db_prep_value(pk, db)],
        )
        row = cursor.fetchone()
    if row is None:
        raise model.DoesNotExist(f"No {model.__name__} with primary key {pk}.")  # type: ignore[attr-defined]
    return from_row(model, row)


@cache
def select_sql(model: type[Model], where: str, *, lock: bool = False) -> str:
    """``SELECT`` one row's columns in :func:`from_row`'s order; ``FOR UPDATE`` with ``lock``."""
    columns = ", ".join(_qn(_column(column.field)) for column in _select_columns(model))
    locking = " FOR UPDATE" if lock and database().features.has_select_for_update else ""
    return f"SELECT {columns} FROM {_qn(model._meta.db_table)} WHERE {where} LIMIT 1{locking}"


def columns(model: type[Model], alias: str) -> str:
    """The columns :func:`from_row` reads, in its order, qualified with the table ``alias``."""
    return ", ".join(f"{alias}.{_qn(_column(column.field))}" for column in _select_columns(model))


def width(model: type[Model]) -> int:
    """How many values :func:`from_row` takes for ``model``."""
    return len(_select_columns(model))


def prep(model: type[Model], name: str, value: Any) -> Any:
    """``value`` as a parameter written to ``model``'s column ``name`` (the field's own
    ``get_db_prep_save``)."""
    return _concrete_field(model, name).get_db_prep_save(value, database())


def from_row(model: type[M], row: Sequence[Any]) -> M:
    """An instance of ``model`` from the values :func:`select_sql` selects, as the ORM builds it."""
    db = database()
    columns = _select_columns(model)
    values = [column.convert(value, db) for column, value in zip(columns, row, strict=True)]
    return model.from_db(db.alias, [column.attname for column in columns], values)


# ---------------------------------------------------------------------------
# Statement texts and columns, built once per model
# ---------------------------------------------------------------------------


def unstorable_text(text: str) -> str:
    """Why no database text column takes ``text`` ("" when they all do).

    A NUL character (PostgreSQL refuses it), or a lone surrogate such as the
    JSON escape ``"\\ud800"``, which is not UTF-8 at all.
    """
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode"
    return ""


def database() -> BaseDatabaseWrapper:
    """The default database's connection object (one lookup, not one per attribute)."""
    return connections[DEFAULT_DB_ALIAS]


def _qn(name: str) -> str:
    return database().ops.quote_name(name)


def _pk_field(model: type[Model]) -> Field[Any, Any]:
    pk = model._meta.pk
    assert pk is not None
    return pk


def _column(field: Field[Any, Any]) -> str:
    assert field.column is not None
    return field.column


def _concrete_field(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    if not isinstance(field, Field) or not field.concrete:
        raise TypeError(f"{model.__name__}.{name} is not a column.")
    return field


def _returning(model: type[Model]) -> str:
    return f" RETURNING {_qn(_column(_pk_field(model)))}"


@cache
def _field_names(model: type[Model]) -> dict[str, Field[Any, Any]]:
    """Each concrete field by its name and by its attname."""
    fields = model._meta.concrete_fields
    return {**{f.name: f for f in fields}, **{f.attname: f for f in fields}}


@cache
def _insert_fields(model: type[Model]) -> tuple[Field[Any, Any], ...]:
    meta = model._meta
    return tuple(
        f
        for f in meta.concrete_fields
        if f is not meta.auto_field and not getattr(f, "generated", False)
    )


@cache
def _insert_sql(model: type[Model]) -> str:
    fields = _insert_fields(model)
    columns = ", ".join(_qn(_column(f)) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {_qn(model._meta.db_table)} ({columns}) VALUES ({marks})"


@cache
def _update_sql(model: type[Model], field_names: tuple[str, ...]) -> str:
    meta = model._meta
    columns = [_column(_concrete_field(model, name)) for name in field_names]
    assignments = ", ".join(f"{_qn(column)} = %s" for column in columns)
    return (
        f"UPDATE {_qn(meta.db_table)} SET {assignments} WHERE {_qn(_column(_pk_field(model)))} = %s"
    )


@dataclass(frozen=True)
class _Column:
    """A selected column and the converters the ORM would apply to its value."""

    field: Field[Any, Any]
    expression: Any
    converters: tuple[Any, ...]

    @property
    def attname(self) -> str:
        return self.field.attname

    def convert(self, value: Any, db: BaseDatabaseWrapper) -> Any:
        for converter in self.converters:
            value = converter(value, self.expression, db)
        return value


@cache
def _select_columns(model: type[Model]) -> tuple[_Column, ...]:
    table = model._meta.db_table
    columns = []
    for field in model._meta.concrete_fields:
        expression = field.get_col(table)
        db = database()
        converters = [
            *db.ops.get_db_converters(expression),
            *expression.get_db_converters(db),
        ]
        columns.append(_Column(field, expression, tuple(converters)))
    return tuple(columns)


# ---------------------------------------------------------------------------
# Named statements: every SQL text the app runs outside the ORM
# ---------------------------------------------------------------------------


@cache
def payment_lookup(Payment: type[Model], by_provider_id: bool, by_our_id: bool, lock: bool) -> str:
    """The payment of a provider's event: by the provider's id, by ours (when the payment is
    not linked yet), or either (the provider's first); its id, or (``lock``) its row, locked."""
    qn = _qn
    # Column names are AbstractPayment's field names, in every concrete model.
    provider_id = qn("provider_payment_id")
    matches = [f"{provider_id} = %s"] if by_provider_id else []
    if by_our_id:
        unlinked = f" AND {provider_id} IS NULL" if by_provider_id else ""
        matches.append(f"({qn('id')} = %s{unlinked})")
    where = f"{qn('provider')} = %s AND ({' OR '.join(matches)})"
    if by_provider_id and by_our_id:
        where += f" ORDER BY {provider_id} IS NULL"  # the provider's id first
    if lock:
        return select_sql(Payment, where, lock=True)
    return f"SELECT {qn('id')} FROM {qn(Payment._meta.db_table)} WHERE {where} LIMIT 1"


@cache
def inbox_claim(columns: tuple[str, ...], replay: bool, *, payment: str | None) -> str:
    """``INSERT … ON CONFLICT … DO UPDATE … RETURNING id, payment_id`` for the inbox.

    ``payment`` is the SQL of the payment's id (a subquery), or ``None``.
    """
    from django_paygate.models import WebhookEvent

    Status = WebhookEvent.Status
    qn = database().ops.quote_name
    table = qn(WebhookEvent._meta.db_table)
    retake = ", ".join(
        f"{qn(c)} = EXCLUDED.{qn(c)}" for c in ("status", "error", "processed_at", "payment_id")
    )
    retryable = f"{table}.{qn('status')} IN ('{Status.RECEIVED.value}', '{Status.FAILED.value}')"
    marks = ", ".join(["%s"] * len(columns))
    return (
        f"INSERT INTO {table} ({', '.join(map(qn, columns))}, {qn('payment_id')}) "
        f"VALUES ({marks}, {payment or 'NULL'}) "
        f"ON CONFLICT ({qn('provider')}, {qn('event_id')}) DO UPDATE SET "
        f"{qn('attempts')} = {table}.{qn('attempts')} + 1, {retake}"
        f"{'' if replay else f' WHERE {retryable}'} RETURNING {qn('id')}, {qn('payment_id')}"
    )


@cache
def inbox_claim_locking(columns: tuple[str, ...], replay: bool, lookup: str) -> str:
    """:func:`inbox_claim` after ``lookup`` found and locked the payment (``WITH p``), in one
    statement: the inbox row's id, then the payment's whole row (PostgreSQL)."""
    claim = inbox_claim(columns, replay, payment="(SELECT id FROM p)")
    return f"WITH p AS ({lookup}), c AS ({claim}) SELECT c.id, p.* FROM c LEFT JOIN p ON true"


def ping() -> None:
    """One round trip to the database (the health check); raises when it does not answer."""
    with database().cursor() as cursor:
        cursor.execute("SELECT 1")


@dataclass(frozen=True)
class OutboxStatements:
    #: Claim one row: ``UPDATE … WHERE id = … AND <due>``.
    claim: str
    #: PostgreSQL: claim up to N due rows with ids above a key (the rows are picked by
    #: ``FOR UPDATE SKIP LOCKED``) and read them with their related rows, in one
    #: statement; ``None`` elsewhere.
    claim_due: str | None
    #: PostgreSQL: the same for the due rows among a list of ids (``= ANY(%s)``).
    claim_listed: str | None
    #: PostgreSQL: :attr:`claim` and the read of the row with its related rows in one
    #: statement, for one id (cheaper to plan than :attr:`claim_listed`); ``None`` elsewhere.
    claim_one: str | None
    due_ids: str
    #: Read a row with its related rows, only while it is ``sending`` with the given
    #: attempt number.
    load_first_claim: str
    #: The models whose columns the reads select, in order: the notification,
    #: its payment, refund and dispute, the payment's user.
    loaded: tuple[type[Model], ...]
    signal_sent: str
    sent: str
    #: PostgreSQL: :attr:`sent`, whose commit does not wait for the WAL flush
    #: (``synchronous_commit`` off for its own transaction); ``None`` elsewhere.
    sent_async: str | None
    #: Give back a claimed row that was never started: pending again, its attempt uncounted.
    release: str
    # The parts the statements built for a number of rows are made of.
    _table: str
    _id: str
    _due: str
    _set_claim: str
    _selected_from: str

    @staticmethod
    def _marks(count: int) -> str:
        return ", ".join(["%s"] * count)

    def due_ids_locked(self) -> str:
        """:attr:`due_ids` with ``LIMIT %s``, locking the rows it returns and skipping the
        rows other transactions hold (``FOR UPDATE SKIP LOCKED``: MariaDB 10.6+, MySQL 8)."""
        return f"{self.due_ids} LIMIT %s FOR UPDATE SKIP LOCKED"

    def listed_ids_locked(self, count: int) -> str:
        """The due ids among ``count`` ids, locked as :meth:`due_ids_locked` locks them."""
        return (
            f"SELECT {self._id} FROM {self._table} WHERE {self._id} IN ({self._marks(count)}) "
            f"AND {self._due} ORDER BY {self._id} FOR UPDATE SKIP LOCKED"
        )

    def claim_ids(self, count: int) -> str:
        """:attr:`claim` for ``count`` ids in one ``UPDATE`` (each one only if still due)."""
        return f"{self._set_claim} WHERE {self._id} IN ({self._marks(count)}) AND {self._due}"

    def load_ids(self, count: int) -> str:
        """Read ``count`` rows with their related rows, in id order."""
        where = f"n.{self._id} IN ({self._marks(count)})"
        return f"{self._selected_from} WHERE {where} ORDER BY n.{self._id}"


@cache
def outbox() -> OutboxStatements:
    """The outbox delivery's statements, built once (the ORM would compile them per row)."""
    from django_paygate.models import Notification

    qn = database().ops.quote_name
    postgresql = database().vendor == "postgresql"
    table = qn(Notification._meta.db_table)
    status, next_at, attempts, id_ = qn("status"), qn("next_attempt_at"), qn("attempts"), qn("id")
    # Due now: pending and past its backoff, or sending with a lapsed lease.
    due = (
        f"(({status} = %s AND ({next_at} IS NULL OR {next_at} <= %s))"
        f" OR ({status} = %s AND {next_at} <= %s))"
    )
    payment = _foreign_key(Notification, "payment")
    joins: list[tuple[str, str, str, ForeignKey[Any, Any]]] = [
        ("JOIN", "n", "p", payment),
        ("LEFT JOIN", "n", "r", _foreign_key(Notification, "refund")),
        ("LEFT JOIN", "n", "d", _foreign_key(Notification, "dispute")),
        ("LEFT JOIN", "p", "u", _foreign_key(_related(payment), "user")),
    ]
    loaded: tuple[type[Model], ...] = (Notification, *(_related(fk) for *_, fk in joins))
    joined = " ".join(
        f"{kind} {qn(_related(fk)._meta.db_table)} {alias} "
        f"ON {alias}.{qn(str(fk.target_field.column))} = {source}.{qn(str(fk.column))}"
        for kind, source, alias, fk in joins
    )
    selected = ", ".join(
        columns(model, alias) for model, alias in zip(loaded, "nprdu", strict=True)
    )
    set_claim = f"UPDATE {table} SET {status} = %s, {attempts} = {attempts} + 1, {next_at} = %s"
    claim = f"{set_claim} WHERE {id_} = %s AND {due}"

    def claim_and_read(picked: str) -> str:
        # The subquery picks and locks the rows, skipping those other workers hold; each
        # is claimed only if it is still due, as the one-row claim does. MATERIALIZED: it
        # runs once. As a plain ``IN (subquery)`` the planner may run it again for every
        # row it updates, and each run would lock and claim the next rows past the limit.
        return (
            f"WITH picked AS MATERIALIZED ({picked} FOR UPDATE SKIP LOCKED), "
            f"n AS ({set_claim} WHERE {id_} IN (SELECT {id_} FROM picked) AND {due} "
            f"RETURNING *) SELECT {selected} FROM n {joined} ORDER BY n.{id_}"
        )

    due_ids = f"SELECT {id_} FROM {table} WHERE {due} AND {id_} > %s ORDER BY {id_}"
    sent_set = (
        f"UPDATE {table} SET {status} = %s, {qn('signal_sent')} = %s, {qn('sent_at')} = %s, "
        f"{qn('esp_message_id')} = %s, {next_at} = NULL, {qn('last_error')} = ''"
    )
    mine = f"{id_} = %s AND {status} = %s AND {attempts} = %s"
    selected_from = f"SELECT {selected} FROM {table} n {joined}"
    # set_config(..., true) lasts until the end of the statement's own transaction, whose
    # commit it governs: one round trip, as the plain statement.
    no_flush = "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS paygate_async"
    return OutboxStatements(
        claim=claim,
        claim_due=claim_and_read(f"{due_ids} LIMIT %s") if postgresql else None,
        claim_listed=(
            claim_and_read(f"SELECT {id_} FROM {table} WHERE {id_} = ANY(%s) AND {due}")
            if postgresql
            else None
        ),
        claim_one=(
            f"WITH n AS ({claim} RETURNING *) SELECT {selected} FROM n {joined}"
            if postgresql
            else None
        ),
        due_ids=due_ids,
        load_first_claim=(
            f"{selected_from} WHERE n.{id_} = %s AND n.{status} = %s AND n.{attempts} = %s"
        ),
        loaded=loaded,
        signal_sent=f"UPDATE {table} SET {qn('signal_sent')} = %s, {next_at} = %s WHERE {mine}",
        sent=f"{sent_set} WHERE {mine}",
        sent_async=f"{sent_set} {no_flush} WHERE {mine}" if postgresql else None,
        release=(
            f"UPDATE {table} SET {status} = %s, {attempts} = {attempts} - 1, "
            f"{next_at} = NULL WHERE {mine}"
        ),
        _table=table,
        _id=id_,
        _due=due,
        _set_claim=set_claim,
        _selected_from=selected_from,
    )


def _foreign_key(model: type[Model], name: str) -> ForeignKey[Any, Any]:
    field = model._meta.get_field(name)
    assert isinstance(field, ForeignKey)
    return field


def _related(field: ForeignKey[Any, Any]) -> type[Model]:
    return field.related_model
