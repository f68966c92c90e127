"""A researcher's Prolific API token, stored encrypted at rest.

Encryption: Fernet (AES-128-CBC with HMAC-SHA256, from the `cryptography` package) under a
key derived with HKDF-SHA256 from the setting EXPLAINSTUDY_SECRETS_KEY, which falls back to
SECRET_KEY when unset. Only the token's last four characters are kept in clear
(`token_hint`), so the page can say which token is stored without showing it. The token is
read back only to send it to Prolific in the Authorization header; it goes into no export,
admin page, audit entry or log line.
"""

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from study.models import ProlificCredential

HKDF_INFO = b"explainstudy prolific api token v1"


class ProlificTokenError(ValueError):
    """No token stored, or one this server's key cannot read."""


def _fernet() -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(
        settings.EXPLAINSTUDY_SECRETS_KEY.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def prolific_token_store(*, user: AbstractBaseUser, token: str) -> ProlificCredential:
    """Keep `token` for `user`, encrypted, replacing the one stored before."""
    credential, _ = ProlificCredential.objects.update_or_create(
        user=user,
        defaults={
            "token_encrypted": _fernet().encrypt(token.encode()).decode(),
            "token_hint": token[-4:],
        },
    )
    return credential


def prolific_token_delete(*, user: AbstractBaseUser) -> bool:
    deleted, _ = ProlificCredential.objects.filter(user=user).delete()
    return bool(deleted)


def prolific_token_hint(*, user: AbstractBaseUser) -> ProlificCredential | None:
    """The stored credential (for its hint and date), or None; never the token."""
    return ProlificCredential.objects.filter(user=user).only("token_hint", "updated_at").first()


def prolific_token_read(*, user: AbstractBaseUser) -> str:
    credential = ProlificCredential.objects.filter(user=user).first()
    if credential is None:
        raise ProlificTokenError("no Prolific API token is stored for you: enter it first")
    try:
        return _fernet().decrypt(credential.token_encrypted.encode()).decode()
    except InvalidToken as error:
        raise ProlificTokenError(
            "your stored Prolific API token cannot be read with this server's key "
            "(EXPLAINSTUDY_SECRETS_KEY changed?): enter it again"
        ) from error
