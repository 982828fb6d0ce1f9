"""Secret scrubbing: always on, independent of Presidio and of ``CHATOBS_PII``.

Two rules: a value that *looks* like a credential (API keys of the common providers, bearer/basic tokens, JWTs,
passwords inside URLs, ``password=...`` assignments, private-key blocks) is replaced by ``<SECRET>`` wherever it
appears; and an attribute or JSON field whose *name* says it holds a secret (``authorization``, ``api_key``,
``password``, ``token``, ``cookie``...) loses its whole value. Pure regex, no dependencies, cheap enough to run on
every string attribute of every span.
"""

from __future__ import annotations

import functools
import re

__all__ = ["SECRET_TOKEN", "scrub", "is_secret_name", "might_hold_secret"]

SECRET_TOKEN = "<SECRET>"

# Provider key formats. Each alternative is specific enough (fixed prefix plus a long random tail) to be safe on prose
# and code: a false positive here costs one hidden token, a miss leaks a credential.
_KEYS = re.compile(
    r"""
    \b(?:
        sk-ant-[A-Za-z0-9_\-]{20,}                           # Anthropic
      | sk-(?:proj-|svcacct-|admin-|lf-|or-v1-)?[A-Za-z0-9_\-]{20,}  # OpenAI, Langfuse, OpenRouter
      | gh[pousr]_[A-Za-z0-9]{30,}                           # GitHub tokens
      | github_pat_[A-Za-z0-9_]{22,}
      | (?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}                  # AWS access key id
      | xox[abposr]-[A-Za-z0-9\-]{10,}                       # Slack
      | xapp-[0-9]-[A-Za-z0-9\-]{10,}
      | AIza[0-9A-Za-z_\-]{35}                               # Google API key
      | ya29\.[0-9A-Za-z_\-]{20,}                            # Google OAuth access token
      | (?:sk|rk|pk|whsec)_(?:live|test)_[0-9A-Za-z]{16,}    # Stripe
      | hf_[A-Za-z0-9]{30,}                                  # Hugging Face
      | glpat-[A-Za-z0-9_\-]{20,}                            # GitLab
      | npm_[A-Za-z0-9]{36}                                  # npm
      | SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}           # SendGrid
      | eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}  # JWT
    )
    """,
    re.VERBOSE,
)

# "Authorization: Bearer xyz", "token abc..." -- keep the scheme word so the trace still says what it was.
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic|token|digest)(\s+)([A-Za-z0-9._~+/\-]{16,}=*)")

# scheme://user:password@host -- the password goes, the user and host stay.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@]+:)([^\s@/]+)(@)")

# password = "...", "api_key": "...", secret: ...  (code, .env files, JSON pasted as text)
_ASSIGNMENT = re.compile(
    r"""(?ix)
    \b((?:[a-z0-9]+[_\-])*(?:password|passwd|pwd|passphrase|secret|api[_\-]?key|apikey|access[_\-]?key|
        secret[_\-]?key|private[_\-]?key|auth[_\-]?token|access[_\-]?token|refresh[_\-]?token|client[_\-]?secret|token))
    (["']?\s*[:=]\s*["']?)
    ([^\s"',;}{)]{4,})
    """
)

_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)

# Cheap gate: every pattern above needs one of these substrings (case-insensitive), so most texts skip the regexes.
_GATE = re.compile(
    r"(?i)sk-|gh[pousr]_|github_pat|AKIA|ASIA|ABIA|ACCA|xox|xapp|AIza|ya29|_live_|_test_|hf_|glpat|npm_|SG\.|eyJ|bearer|basic|"
    r"token|digest|://|pass|pwd|secret|key|PRIVATE KEY"
)

_SECRET_NAME = re.compile(
    r"""(?x)^(?:
        authorization|proxy_authorization|www_authenticate|cookie|set_cookie|
        password|passwd|pwd|passphrase|secret|.*_secret|secret_.*|
        api_key|apikey|.*_api_key|x_api_key|.*_apikey|access_key|.*_access_key|private_key|.*_private_key|
        token|.*_token|credential|credentials|.*_credentials|session_key|signature
    )$"""
)


def is_secret_name(name: str) -> bool:
    """Whether an attribute or JSON field name says its value is a secret.

    Only the last dotted part counts (``http.request.header.authorization`` -> ``authorization``) and it must match as
    a whole word, so ``gen_ai.usage.input_tokens`` or ``max_tokens`` are not secrets but ``refresh_token`` is.
    """
    if len(name) <= 128:  # attribute and field names repeat on every span: remember the short ones
        return _is_secret_name_cached(name)
    return _is_secret_name(name)


@functools.lru_cache(maxsize=4096)  # 4,096 names of at most 128 characters
def _is_secret_name_cached(name: str) -> bool:
    return _is_secret_name(name)


def _is_secret_name(name: str) -> bool:
    last = name.rsplit(".", 1)[-1].strip().lower().replace("-", "_")
    return bool(_SECRET_NAME.match(last))


def might_hold_secret(text: str) -> bool:
    return _GATE.search(text) is not None


_SCRUB_CACHE_TEXT_MAX = 1024  # chat histories resend the same short texts every call: remember those, not documents


@functools.lru_cache(maxsize=4096)  # 4,096 texts of at most _SCRUB_CACHE_TEXT_MAX characters: ~4 MB at most
def _scrub_cached(text: str) -> str:
    return _scrub(text)


def scrub(text: str) -> str:
    """``text`` with every credential-looking value replaced by ``<SECRET>``."""
    if not text:
        return text
    if len(text) <= _SCRUB_CACHE_TEXT_MAX:
        return _scrub_cached(text)
    return _scrub(text)


def _scrub(text: str) -> str:
    if _GATE.search(text) is None:
        return text
    text = _PRIVATE_KEY.sub(SECRET_TOKEN, text)
    text = _KEYS.sub(SECRET_TOKEN, text)
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + SECRET_TOKEN + m.group(3), text)
    text = _AUTH_SCHEME.sub(lambda m: m.group(1) + m.group(2) + SECRET_TOKEN, text)
    text = _ASSIGNMENT.sub(_replace_assignment, text)
    return text


def _replace_assignment(m: re.Match[str]) -> str:
    sep, value = m.group(2), m.group(3)
    low = value.lower()
    if value == SECRET_TOKEN or value.startswith(("<", "$", "{")) or low in _NOT_SECRET_VALUES or low.startswith(_REFERENCES):
        # Already scrubbed, a placeholder, or a reference to where the secret lives: nothing to hide.
        return m.group(0)
    if "'" not in sep and '"' not in sep and _IDENTIFIER.match(value):
        # ``api_key=api_key`` in code names a variable; a literal secret is quoted or has digits/symbols in it.
        return m.group(0)
    return m.group(1) + sep + SECRET_TOKEN


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z_.\[\]()]*$")
_REFERENCES = ("os.environ", "os.getenv", "getenv", "process.env", "env(", "env[", "settings.", "config.", "self.")
_NOT_SECRET_VALUES = frozenset({"none", "null", "true", "false", "undefined", "required", "optional", "os.environ", "getenv"})
