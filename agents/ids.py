"""Prefixed string ids (`proj_…`, `ver_…`) and API key material (`cdt_…`, `cdt_acc_…`)."""
import hashlib
import secrets
import string

BASE62 = string.digits + string.ascii_letters
PROJECT_KEY_PREFIX = "cdt_"
DEVELOPER_TOKEN_PREFIX = "cdt_acc_"
KEY_SECRET_LENGTH = 40
LOOKUP_PREFIX_LENGTH = 8


def random_base62(length: int) -> str:
    """`length` uniformly random base62 characters from the OS's CSPRNG: one random integer written in base 62
    (ids are made on every turn; a `secrets.choice` per character cost a third of a millisecond a turn)."""
    number = secrets.randbelow(62**length)
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        chars.append(BASE62[digit])
    return "".join(chars)


def new_id(prefix: str, length: int = 20) -> str:
    return f"{prefix}_{random_base62(length)}"


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
