"""The reusable types of the settings: each validates one kind of value and says how to fix it.

Messages are written for people ("give the .pub file's one line"), never pydantic's pattern text;
`explain()` puts the key and the (masked) value in front of them.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import struct
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr
from pydantic_core import PydanticCustomError

from ftpstack import azure_rules as azure

FTP_CONTROL_PORT = 21
SSH_PORT = 22
# Sources that mean "anyone": refused for SSH by the model itself.
ANY_SOURCE = frozenset({"*", "0.0.0.0/0", "internet", "any"})


def _problem(text: str, **context: str) -> PydanticCustomError:
    return PydanticCustomError("ftpstack_value", text, context or None)


def _trimmed(value: str) -> str:
    """A name or address as written, refused when a newline or spaces cling to an end (a value
    pasted with its line end): Azure and proftpd would get them too."""
    if value != value.strip():
        raise _problem("has a newline or spaces at an end; write the value without them")
    return value


# Any value Azure takes as written (a resource id, an image name): no newline or space at an end.
Trimmed = Annotated[str, AfterValidator(_trimmed)]


def _cidr(value: str) -> str:
    _trimmed(value)
    try:
        net = ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        raise _problem(
            "not an IPv4 CIDR; write it like 203.0.113.0/24 (0.0.0.0/0 means any)"
        ) from None
    if str(net) != value and f"{net.network_address}" != value:
        raise _problem("host bits are set; did you mean {net}?", net=str(net))
    return str(net)


Cidr = Annotated[str, AfterValidator(_cidr)]


def _admin_cidr(value: str) -> str:
    if value.strip().lower() in ANY_SOURCE or value.strip() == "0.0.0.0/0":
        raise _problem(
            "opens SSH to the whole Internet, where bots try passwords and exploits all day; "
            "list your administrators' networks, e.g. 203.0.113.7/32"
        )
    net = _cidr(value)
    if ipaddress.IPv4Network(net).prefixlen < 8:
        raise _problem("is nearly the whole Internet; list your administrators' networks")
    return net


AdminCidr = Annotated[str, AfterValidator(_admin_cidr)]


def written_as_list(key: str, example: str) -> BeforeValidator:
    """A list key given one value (`ftpSourceCidrs: 203.0.113.0/24`) is refused with the list to
    write. Not taken as a one-item list: the Pulumi CLI refuses a value that is not a list for a
    key Pulumi.yaml declares an array, so `make plan` must refuse it too."""

    def check(value: Any) -> Any:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            return value
        items = [item for item in re.split(r"[\s,;]+", str(value)) if item]
        if not items:
            raise _problem("is not a list; write a list, e.g. [{example}]", example=example)
        if len(items) > 1:
            raise _problem("is not a list; write a list: [{items}]", items=", ".join(items))
        raise _problem(
            "is one value, not a list; write a list: [{item}] "
            "(pulumi config set --path '{key}[0]' {item})",
            item=items[0],
            key=key,
        )

    return BeforeValidator(check)


def _passive_port(value: int) -> int:
    if not 1024 <= value <= 65535:
        raise _problem(
            "a passive port must be within 1024-65535 (below 1024 are FTP control 21, SSH 22 "
            "and other services); choose a range such as 50000-50099"
        )
    return value


PassivePort = Annotated[int, AfterValidator(_passive_port)]


# What a private key looks like where a public one belongs: any PEM private key block (OpenSSH,
# PKCS#1, PKCS#8, EC), a PuTTY key file, or an OpenSSH key's body without its armour (base64 of
# "openssh-key-v1").
PRIVATE_KEY_MARKS = ("PRIVATE KEY", "PuTTY-User-Key-File", "b3BlbnNzaC1rZXktdjE")
ED25519_KEY_BYTES = 32


def is_private_key(text: str) -> bool:
    """True for text that is, or holds, a private key: a secret by its content."""
    return any(mark in text for mark in PRIVATE_KEY_MARKS)


def _ssh_public_key(value: str, types: tuple[str, ...] = azure.SSH_KEY_TYPES) -> str:
    """One OpenSSH public key line of one of `types` (the admin's: the types Azure accepts)."""
    if is_private_key(value):
        raise _problem(
            "this is a private key, which must never leave your machine; paste the .pub file "
            "(e.g. ~/.ssh/id_ed25519.pub) instead"
        )
    value = value.strip()
    lines = value.splitlines()
    if len(lines) > 1:
        raise _problem(
            "holds {count} lines; give one key, on one line: the .pub file's line",
            count=str(len(lines)),
        )
    parts = value.split()
    if not parts or parts[0] not in types:
        if types == azure.SSH_KEY_TYPES:
            raise _problem(
                "not an OpenSSH public key Azure accepts; give one line starting with "
                "ssh-ed25519 or ssh-rsa (Azure refuses ECDSA keys)"
            )
        raise _problem(
            "not an OpenSSH public key of a type the SFTP server takes; give one line starting "
            "with {kinds}",
            kinds=", ".join(types),
        )
    # Every key's base64 starts with AAAA: the length of its type name, a small number.
    if len(parts) < 2 or not parts[1].startswith("AAAA"):
        raise _problem(
            "has no key after {kind}; copy the whole line of the .pub file ({kind} AAAA… comment)",
            kind=parts[0],
        )
    fields = _ssh_key_fields(parts[1])
    if fields is None or fields[0] != parts[0].encode():
        raise _problem("the key is damaged or truncated; copy the .pub file again")
    if parts[0] == "ssh-ed25519":
        if len(fields) != 2:
            raise _problem("the key is damaged or truncated; copy the .pub file again")
        if len(fields[1]) != ED25519_KEY_BYTES:
            raise _problem(
                "the key is damaged: an ed25519 key is 32 bytes, this one has {size}; copy the "
                ".pub file again",
                size=str(len(fields[1])),
            )
    if parts[0] == "ssh-rsa":
        bits = int.from_bytes(fields[2], "big").bit_length() if len(fields) > 2 else 0
        if bits < azure.SSH_RSA_MIN_BITS:
            raise _problem(
                "is an RSA key of {bits} bits; at least 2048 are required: make a new one "
                "with ssh-keygen -t ed25519",
                bits=str(bits),
            )
    return value


# A partner's SFTP login key (users[].sshKeys): the types mod_sftp takes, RSA of 2048 bits or
# more (its SHA-2 signatures).
SFTP_USER_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)


def _sftp_user_key(value: str) -> str:
    return _ssh_public_key(value, SFTP_USER_KEY_TYPES)


SftpUserKey = Annotated[str, AfterValidator(_sftp_user_key)]


def _ssh_key_fields(body: str) -> list[bytes] | None:
    """The length-prefixed fields of an OpenSSH public key blob (RFC 4253 6.6), or None."""
    try:
        blob = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    fields, offset = [], 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            return None
        (length,) = struct.unpack(">I", blob[offset : offset + 4])
        offset += 4
        if offset + length > len(blob):
            return None
        fields.append(blob[offset : offset + length])
        offset += length
    return fields or None


SshPublicKey = Annotated[str, AfterValidator(_ssh_public_key)]


def _region(value: str) -> str:
    name = value.strip().lower().replace(" ", "")
    if name not in azure.REGIONS:
        import difflib

        close = difflib.get_close_matches(name, sorted(azure.REGIONS), n=1)
        hint = (
            f"did you mean {close[0]}?" if close else "use a name from `az account list-locations`"
        )
        raise _problem("is not an Azure region; {hint}", hint=hint)
    return name


Region = Annotated[str, AfterValidator(_region)]


def _vm_size(value: str) -> str:
    _trimmed(value)
    if not azure.VM_SIZE.fullmatch(value):
        raise _problem(
            "is not an Azure VM size; write it like Standard_B2s or Standard_D2s_v5 "
            "(`az vm list-sizes -l <region>` lists them)"
        )
    return value


VmSize = Annotated[str, AfterValidator(_vm_size)]


def _pattern(regex: re.Pattern[str], what: str, empty_ok: bool = False) -> AfterValidator:
    """A value that is all of `regex` (fullmatch: no trailing newline slips through)."""

    def check(value: str) -> str:
        _trimmed(value)
        if not (empty_ok and value == "") and not regex.fullmatch(value):
            raise _problem(what)
        return value

    return AfterValidator(check)


ResourceGroupName = Annotated[
    str,
    _pattern(
        azure.RESOURCE_GROUP_NAME,
        "Azure resource group names are 1-90 letters, digits, _ - . ( ) and can't end with a "
        "period",
        empty_ok=True,
    ),
]
DnsLabel = Annotated[
    str,
    _pattern(
        azure.DNS_LABEL,
        "a DNS label is 3-63 lower-case letters, digits and hyphens, starting with a letter "
        "and ending with a letter or digit (or empty for none)",
        empty_ok=True,
    ),
]
UserName = Annotated[
    str,
    _pattern(
        re.compile(r"[a-z_][a-z0-9_-]{0,31}"),
        "user names are 1-32 lower-case letters, digits, _ and -, starting with a letter or _",
    ),
]


def _admin_username(value: str) -> str:
    _trimmed(value)
    if not azure.ADMIN_USERNAME.fullmatch(value):
        raise _problem(
            "admin user names are 1-32 lower-case letters, digits, _ and -, starting with a "
            "letter or _"
        )
    if value in azure.RESERVED_ADMIN_USERNAMES or value in azure.SYSTEM_ACCOUNTS:
        raise _problem("is a name Azure or the Debian image reserves; choose e.g. ftpadmin")
    return value


AdminUsername = Annotated[str, AfterValidator(_admin_username)]


def _password(value: SecretStr) -> SecretStr:
    text = value.get_secret_value()
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        # FTP's PASS command is one line: a newline would end it early, and other control
        # characters are refused by clients or mangled on the way.
        raise _problem("contains a control character (a newline?); FTP's PASS is one line")
    return value


Password = Annotated[SecretStr, AfterValidator(_password)]


def _tag_name(value: str) -> str:
    problem = azure.tag_name_problem(value)
    if problem:
        raise _problem(problem)
    return value


TagName = Annotated[str, AfterValidator(_tag_name)]
TagValue = Annotated[str, Field(max_length=azure.TAG_VALUE_MAX)]

# An address an action group can mail: one `@`, a dotted domain, no spaces or separators (a
# pasted list of several is refused, not mailed as one).
_EMAIL = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>.]+")


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise _problem("is not one e-mail address; write each address as its own list item")
    return value


EmailAddress = Annotated[str, AfterValidator(_email)]
# `auto`: on in a production stack (`Settings.production`); `off`: an explicit opt-out.
Switch = Literal["auto", "on", "off"]
