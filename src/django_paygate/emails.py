"""Notification emails: rendered from overridable templates, sent through Django's mail API.

The outbox (:mod:`django_paygate.notifications`) calls
:func:`send_notification_email` once per notification, after commit. Which
notification sends which email, and to whom:

======================  =========================  ==========================
notification kind       email (template name)      recipients
======================  =========================  ==========================
``payment_succeeded``   ``payment_success``        the customer
``payment_failed``      ``payment_failed``         the customer
``refund_succeeded``    ``refund_confirmation``    the customer
``dispute_opened``      ``dispute_notification``   the site's admins
``dispute_closed``      ``dispute_notification``   the site's admins
``payment_needs_review`` ``payment_needs_review``  the site's admins
======================  =========================  ==========================

Other kinds (authorized, canceled, refund failed) send only their signal. The
customer is ``payment.email``, else the email of ``payment.user``; a payment
with neither gets no email, which is not an error.

A customer's email is written in the language recorded on the payment
(``payment.language``: the active language when it was created), the admins' in
``settings.LANGUAGE_CODE``; amounts are formatted for that language
(:func:`~django_paygate.money.format_money` with its locale).

Each email is three templates, ``paygate/emails/<name>.subject.txt``,
``<name>.txt`` and ``<name>.html``; a project overrides any of them with a
template of the same name earlier in its template path. Text templates are
rendered without HTML escaping.

Messages are :class:`~django.core.mail.EmailMultiAlternatives` carrying anymail's
``tags`` and ``metadata`` attributes, which anymail's ESP backends send along
and other backends ignore. Settings live in ``PAYGATE["EMAILS"]`` (see
docs/emails.md).

Django 6.1 names mailers (``settings.MAILERS`` and ``send(using=alias)``);
earlier versions take a connection from ``get_connection()``. The one place
that knows the difference is :func:`send_message`.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import django
from django.apps import apps
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template import Context
from django.template import Template as DjangoTemplate
from django.template.loader import get_template
from django.urls import NoReverseMatch, reverse
from django.utils import translation
from django.utils.module_loading import import_string

from django_paygate.exceptions import ConfigurationError
from django_paygate.money import format_money as _format_money

if TYPE_CHECKING:
    from django_paygate.models import Notification

logger = logging.getLogger("django_paygate")

#: Django 6.1 replaced ``EMAIL_BACKEND`` and ``connection=`` with ``MAILERS`` and ``using=``.
MAILERS_SUPPORTED: bool = django.VERSION >= (6, 1)

CUSTOMER = "customer"
ADMINS = "admins"


@dataclass(frozen=True)
class EmailKind:
    """The email a notification kind sends: its template name and its audience."""

    name: str
    audience: str  # CUSTOMER or ADMINS


#: Notification kind -> the email it sends. Kinds not listed send no email.
EMAIL_FOR_KIND: Mapping[str, EmailKind] = MappingProxyType(
    {
        "payment_succeeded": EmailKind("payment_success", CUSTOMER),
        "payment_failed": EmailKind("payment_failed", CUSTOMER),
        "refund_succeeded": EmailKind("refund_confirmation", CUSTOMER),
        "dispute_opened": EmailKind("dispute_notification", ADMINS),
        "dispute_closed": EmailKind("dispute_notification", ADMINS),
        "payment_needs_review": EmailKind("payment_needs_review", ADMINS),
    }
)

#: Every email name; the keys of ``PAYGATE["EMAILS"]["KINDS"]``.
EMAIL_NAMES: frozenset[str] = frozenset(kind.name for kind in EMAIL_FOR_KIND.values())

#: The keys ``PAYGATE["EMAILS"]`` accepts.
SETTINGS_KEYS: frozenset[str] = frozenset(
    {"ENABLED", "FROM_EMAIL", "ADMINS", "KINDS", "MAILER", "CONTEXT_HOOK", "SITE_NAME", "SITE_URL"}
)

ContextHook = Callable[["Notification", dict[str, Any]], "dict[str, Any] | None"]


@dataclass(frozen=True)
class EmailSettings:
    """``PAYGATE["EMAILS"]`` with its defaults applied."""

    enabled: bool
    from_email: str
    admins: tuple[str, ...]
    kinds: Mapping[str, bool]
    mailer: str | None
    context_hook: ContextHook | None
    site_name: str
    #: ``https://shop.example.com``: makes the admin links of staff emails absolute.
    site_url: str = ""


def _raw_settings() -> Mapping[str, Any]:
    from django_paygate.conf import paygate_settings

    raw = paygate_settings.EMAILS
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigurationError("PAYGATE['EMAILS'] must be a dict.")
    return raw


def validate_settings() -> list[str]:
    """Every problem with ``PAYGATE["EMAILS"]``, as messages (empty when fine)."""
    from django_paygate.conf import _unknown_key_message

    try:
        raw = _raw_settings()
    except ConfigurationError as exc:
        return [str(exc)]
    where = "PAYGATE['EMAILS']"
    problems = [
        _unknown_key_message(str(key), SETTINGS_KEYS, where)
        for key in raw
        if key not in SETTINGS_KEYS
    ]
    if "ENABLED" in raw and not isinstance(raw["ENABLED"], bool):
        problems.append(f"{where}['ENABLED'] must be True or False.")
    for key in ("FROM_EMAIL", "SITE_NAME", "SITE_URL"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            problems.append(f"{where}[{key!r}] must be a string.")
    admins = raw.get("ADMINS")
    if admins is not None and (
        isinstance(admins, str)
        or not isinstance(admins, (list, tuple))
        or not all(isinstance(address, str) for address in admins)
    ):
        problems.append(f"{where}['ADMINS'] must be a list of email addresses.")
    kinds = raw.get("KINDS")
    if kinds is not None:
        if not isinstance(kinds, Mapping):
            problems.append(f"{where}['KINDS'] must be a dict of email name -> True/False.")
        else:
            problems += [
                _unknown_key_message(str(key), EMAIL_NAMES, f"{where}['KINDS']")
                for key in kinds
                if key not in EMAIL_NAMES
            ]
            problems += [
                f"{where}['KINDS'][{key!r}] must be True or False."
                for key, value in kinds.items()
                if key in EMAIL_NAMES and not isinstance(value, bool)
            ]
    problems += _mailer_problems(raw.get("MAILER"), where)
    hook = raw.get("CONTEXT_HOOK")
    if hook is not None:
        try:
            _load_hook(hook)
        except ConfigurationError as exc:
            problems.append(str(exc))
    return problems


def _mailer_problems(mailer: object, where: str) -> list[str]:
    if mailer is None:
        return []
    if not isinstance(mailer, str) or not mailer:
        return [f"{where}['MAILER'] must be a string."]
    if MAILERS_SUPPORTED:
        mailers = getattr(settings, "MAILERS", None)
        if mailers is not None and mailer not in mailers:
            return [f"{where}['MAILER'] is {mailer!r}, which is not a key of settings.MAILERS."]
        if mailers is None and mailer != "default":
            return [f"{where}['MAILER'] is {mailer!r} but settings.MAILERS is not defined."]
        return []
    if "." not in mailer:
        return [
            f"{where}['MAILER'] is {mailer!r}: mailer aliases need Django 6.1; on this "
            "version give the dotted path of an email backend, or leave it unset."
        ]
    return []


def _load_hook(hook: object) -> ContextHook:
    if callable(hook):
        return hook
    if not isinstance(hook, str):
        raise ConfigurationError("PAYGATE['EMAILS']['CONTEXT_HOOK'] must be a dotted path.")
    try:
        loaded = import_string(hook)
    except ImportError as exc:
        raise ConfigurationError(
            f"PAYGATE['EMAILS']['CONTEXT_HOOK'] {hook!r} cannot be imported."
        ) from exc
    if not callable(loaded):
        raise ConfigurationError(f"PAYGATE['EMAILS']['CONTEXT_HOOK'] {hook!r} is not callable.")
    return loaded


def _address(entry: object) -> str:
    """An address from ``settings.ADMINS``: a string (Django 6.0+) or a (name, email) pair."""
    if isinstance(entry, (list, tuple)) and len(entry) == 2:
        return str(entry[1])
    return str(entry)


def _default_site_name() -> str:
    if apps.is_installed("django.contrib.sites"):
        from django.contrib.sites.models import Site

        try:
            return str(Site.objects.get_current().name)
        except Exception:  # no SITE_ID, no row: the emails simply carry no site name
            return ""
    return ""


def get_email_settings() -> EmailSettings:
    """``PAYGATE["EMAILS"]`` with defaults; :class:`ConfigurationError` if it is wrong."""
    problems = validate_settings()
    if problems:
        raise ConfigurationError(" ".join(problems))
    raw = _raw_settings()
    admins = raw.get("ADMINS")
    if admins is None:
        admins = [_address(entry) for entry in getattr(settings, "ADMINS", [])]
    site_name = raw.get("SITE_NAME")
    hook = raw.get("CONTEXT_HOOK")
    return EmailSettings(
        enabled=raw.get("ENABLED", True),
        from_email=raw.get("FROM_EMAIL") or settings.DEFAULT_FROM_EMAIL,
        admins=tuple(address for address in admins if address),
        kinds=MappingProxyType({name: True for name in EMAIL_NAMES} | dict(raw.get("KINDS", {}))),
        mailer=raw.get("MAILER"),
        context_hook=_load_hook(hook) if hook is not None else None,
        site_name=site_name if site_name is not None else _default_site_name(),
        site_url=(raw.get("SITE_URL") or "").rstrip("/"),
    )


def customer_email(notification: Notification) -> str:
    """The payment's email, else its user's email, else ``""``."""
    payment = notification.payment
    if payment.email:
        return payment.email
    user = payment.user if payment.user_id else None
    return str(getattr(user, "email", "") or "")


def recipients(notification: Notification, conf: EmailSettings | None = None) -> list[str]:
    """Who the notification's email goes to (empty: nobody, or no email for this kind)."""
    kind = EMAIL_FOR_KIND.get(notification.kind)
    if kind is None:
        return []
    if kind.audience == ADMINS:
        return list((conf or get_email_settings()).admins)
    address = customer_email(notification)
    return [address] if address else []


def email_language(notification: Notification) -> str:
    """The language a notification's email is written in.

    A customer's email: the language recorded on the payment when it was created (the
    request's, with ``LocaleMiddleware``). The site's admins: ``settings.LANGUAGE_CODE``.
    """
    kind = EMAIL_FOR_KIND.get(notification.kind)
    if kind is not None and kind.audience == CUSTOMER and notification.payment.language:
        return notification.payment.language
    return str(settings.LANGUAGE_CODE)


def admin_url(payment: Any, conf: EmailSettings) -> str:
    """The payment's page in the admin (absolute with ``SITE_URL``), or "" without the admin."""
    opts = payment._meta
    try:
        path = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[payment.pk])
    except NoReverseMatch:
        return ""
    return f"{conf.site_url}{path}"


def build_context(notification: Notification, conf: EmailSettings) -> dict[str, Any]:
    """The template context of a notification's email (before the context hook).

    Amounts are formatted for the active language (:func:`render_email` activates the
    email's language first).
    """
    payment = notification.payment
    refund = notification.refund if notification.refund_id else None
    dispute = notification.dispute if notification.dispute_id else None
    kind = EMAIL_FOR_KIND.get(notification.kind)
    format_money = functools.partial(_format_money, locale=translation.get_language())
    return {
        "notification": notification,
        "kind": notification.kind,
        "email_name": kind.name if kind else "",
        "payment": payment,
        "refund": refund,
        "dispute": dispute,
        "reference": str(payment.pk),
        "amount": format_money(payment.amount, payment.currency),
        # What the customer paid: less than ``amount`` after a partial capture.
        "paid": format_money(payment.amount_captured or payment.amount, payment.currency),
        "refund_amount": format_money(refund.amount, refund.currency) if refund else "",
        "dispute_amount": format_money(dispute.amount, dispute.currency) if dispute else "",
        "fully_refunded": bool(
            payment.amount_captured and payment.amount_refunded >= payment.amount_captured
        ),
        "customer_email": customer_email(notification),
        "site_name": conf.site_name,
        "admin_url": admin_url(payment, conf),
        "from_email": conf.from_email,
        "recipients": recipients(notification, conf),
    }


def _render(name: str, context: dict[str, Any], *, text: bool) -> str:
    """Render a template; text templates (Django engine) without HTML escaping."""
    template = get_template(name)
    inner = getattr(template, "template", None)
    if text and isinstance(inner, DjangoTemplate):
        return inner.render(Context(context, autoescape=False))
    return str(template.render(context))


def render_email(
    notification: Notification, conf: EmailSettings | None = None
) -> EmailMultiAlternatives | None:
    """The message a notification owes, or ``None`` (no email for its kind, switched off,
    or nobody to send it to). Nothing is sent; useful for previews and tests."""
    conf = conf or get_email_settings()
    kind = EMAIL_FOR_KIND.get(notification.kind)
    if not conf.enabled or kind is None or not conf.kinds.get(kind.name, True):
        return None
    with translation.override(email_language(notification)):
        return _render_message(notification, conf, kind)


def _render_message(
    notification: Notification, conf: EmailSettings, kind: EmailKind
) -> EmailMultiAlternatives | None:
    context = build_context(notification, conf)
    if conf.context_hook is not None:
        changed = conf.context_hook(notification, context)
        if changed is not None:
            context = dict(changed)
    to = [address for address in context.get("recipients") or [] if address]
    if not to:
        return None
    base = f"paygate/emails/{kind.name}"
    # Folded onto one line; a no-break space (inside a formatted amount) is kept.
    subject = re.sub(r"[ \t\r\n\f\v]+", " ", _render(f"{base}.subject.txt", context, text=True))
    subject = subject.strip(" ")
    message = EmailMultiAlternatives(
        subject=subject,
        body=_render(f"{base}.txt", context, text=True).strip() + "\n",
        from_email=context.get("from_email") or conf.from_email,
        to=to,
    )
    message.attach_alternative(_render(f"{base}.html", context, text=False), "text/html")
    metadata = {
        "payment_id": str(notification.payment_id),
        "kind": notification.kind,
        "notification_id": str(notification.pk),
    }
    if notification.refund_id:
        metadata["refund_id"] = str(notification.refund_id)
    if notification.dispute_id:
        metadata["dispute_id"] = str(notification.dispute_id)
    # anymail's message attributes; other backends ignore them.
    message.tags = ["paygate", notification.kind]  # type: ignore[attr-defined]
    message.metadata = metadata  # type: ignore[attr-defined]
    return message


def send_message(message: EmailMultiAlternatives, mailer: str | None = None) -> int:
    """Send ``message`` through ``mailer``, the one place that knows Django's mail API version.

    Django 6.1+: ``mailer`` is an alias of ``settings.MAILERS`` (``None``: the default
    mailer). Earlier: the dotted path of an email backend (``None``: ``EMAIL_BACKEND``).
    Errors propagate: the outbox keeps the notification and retries it.
    """
    if MAILERS_SUPPORTED:
        return int(message.send(using=mailer) if mailer else message.send())
    return int(open_connection(mailer).send_messages([message]) or 0)


def open_connection(mailer: str | None = None) -> Any:
    """A new instance of ``mailer``'s email backend (see :func:`send_message`), not yet open."""
    if MAILERS_SUPPORTED:
        from django.core.mail import mailers

        return mailers[mailer] if mailer else mailers.default
    from django.core.mail import get_connection  # Django < 6.1

    return get_connection(mailer)


class EmailBatch:
    """Sends the emails of several notifications with one read of ``PAYGATE["EMAILS"]`` and
    one connection to the email backend: for SMTP one login for the batch instead of one per
    email, for an anymail ESP one HTTP session.

    The settings are read at the first email, the connection opened then, and closed when
    the ``with`` block ends. After a failed send it is closed at once, and the next email
    opens a new one: a connection the server dropped fails one email, not the batch.
    """

    def __init__(self) -> None:
        self._conf: EmailSettings | None = None
        self._connection: Any = None

    def __enter__(self) -> EmailBatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def conf(self) -> EmailSettings:
        """``PAYGATE["EMAILS"]`` with its defaults, read once for the batch."""
        if self._conf is None:
            self._conf = get_email_settings()
        return self._conf

    def send(self, message: EmailMultiAlternatives) -> int:
        """Send ``message`` through the batch's connection; errors propagate, as
        :func:`send_message`'s do."""
        if not message.recipients():
            return 0
        try:
            if self._connection is None:
                connection = open_connection(self.conf().mailer)
                connection.open()
                self._connection = connection
            return int(self._connection.send_messages([message]) or 0)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # the messages are sent; a failing QUIT changes nothing
                logger.warning("Closing the email connection failed.", exc_info=True)


def esp_message_id(message: EmailMultiAlternatives) -> str:
    """The id an anymail ESP gave a sent message ("" without anymail, or when its
    recipients got different ids: tracking then cannot tell them apart)."""
    status = getattr(message, "anymail_status", None)
    message_id = getattr(status, "message_id", None)
    return str(message_id)[:255] if message_id is not None else ""


def send_notification_email(notification: Notification, *, mailer: EmailBatch | None = None) -> int:
    """Send the email ``notification`` owes, if any; the number of messages sent (0 or 1).

    No email for the kind, emails switched off, or nobody to send to: returns 0.
    When an anymail ESP sent it, ``notification.esp_message_id`` is set to the ESP's
    message id (the outbox stores it with the row, for delivery tracking).
    Anything else that goes wrong (a template error, the email backend) raises,
    and the outbox retries later. ``mailer``: the :class:`EmailBatch` of several
    notifications, whose settings and connection it uses.
    """
    if notification.kind not in EMAIL_FOR_KIND:
        return 0  # signal-only kinds need no email settings at all
    conf = mailer.conf() if mailer is not None else get_email_settings()
    message = render_email(notification, conf)
    if message is None:
        return 0
    sent = mailer.send(message) if mailer is not None else send_message(message, conf.mailer)
    notification.esp_message_id = esp_message_id(message)
    logger.info(
        "Sent %s email for payment %s (notification %s).",
        notification.kind,
        notification.payment_id,
        notification.pk,
    )
    return sent
