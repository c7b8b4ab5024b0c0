"""One person, one address: the canonical form of an email address, for "once per address" rules.

Two spellings that reach the same mailbox give the same canonical form:

- the whole address is case-folded;
- a plus-tag is dropped from the local part (``ann+promo@x.com`` is ``ann@x.com``);
- for providers that ignore dots in the local part (Gmail: ``gmail.com`` and
  ``googlemail.com``, one provider), the dots are dropped and the domain is the provider's
  (``A.n.n+1@GoogleMail.com`` is ``ann@gmail.com``).

The canonical form is for comparing, never for sending: mail still goes to the address as
typed.
"""

#: Domains whose mailboxes ignore dots in the local part, mapped to one provider name.
DOTLESS_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def canonical_email(address: str) -> str:
    """The canonical form of ``address`` (see the module docstring)."""
    address = (address or "").strip().casefold()
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    domain = domain.rstrip(".")
    local = local.split("+", 1)[0]
    if domain in DOTLESS_DOMAINS:
        local = local.replace(".", "")
        domain = DOTLESS_DOMAINS[domain]
    return f"{local}@{domain}"
