"""Secret scrubbing: always on, independent of Presidio and of ``CHATOBS_PII``.

Two rules: a value that *looks* like a credential is replaced by ``<SECRET>`` wherever it appears (prose, code or
config pasted into a chat, tool arguments, exception text); and an attribute or JSON field whose *name* says it holds
a secret (``authorization``, ``api_key``, ``password``, ``token``, ``cookie``...) loses its whole value.

The rule set rests on Yelp's ``detect-secrets`` (Apache-2.0, pure Python; its dependencies, PyYAML and requests, are
ones chatobs already pins): the patterns of its regex plugins and the keyword list of its keyword plugin. Its scanning
API is not used: it runs every plugin plus two entropy scanners per line and costs 0.5-4 ms per line (measured on
1.5.0), and its entropy scanners flag ordinary words; chatobs runs the library's compiled patterns itself, behind a
cheap gate, one combined regex per candidate token. Evaluated and not chosen: ``betterleaks-py`` (gitleaks-style rules in a Go
library loaded with ctypes): fast and broad, but +24 MB resident and five Go threads in every app process, no wheel
for Linux on ARM, and it reports an AWS key pair written in prose as nothing at all.

Written here, because the library lacks them or its pattern does not cut the whole secret (it was made to flag a
line, not to redact a span): Anthropic keys; OpenAI project/service keys (the library's wants 20 letters or digits
on each side of the ``T3BlbkFJ`` marker, and misses keys with ``-`` or ``_`` there); GitHub fine-grained tokens;
Google API keys and OAuth tokens; Slack tokens (the library's stops at the first capital letter and leaves the rest
in clear); Stripe test/publishable/webhook keys; Hugging Face, Langfuse, npm; JWTs (the library's leaves the
signature); whole PEM blocks (the library matches only the header); passwords in URLs (the library's refuses
unencoded reserved characters); bearer/basic credentials; ``key = value`` assignments; and an AWS secret access key
next to an access key ID ("my key AKIA... with secret ..."), which neither rule set finds.
"""

from __future__ import annotations

import functools
import re

__all__ = ["SECRET_TOKEN", "is_secret_name", "might_hold_secret", "scrub", "warm"]

SECRET_TOKEN = "<SECRET>"

# A PEM block, whole or cut off (everything after BEGIN goes).
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)

# Provider key formats the library lacks or cuts short. Each has a fixed prefix and a long random tail, so it is safe
# on prose and code: a false positive costs one hidden token, a miss leaks a credential.
_OWN_KEYS = r"""
    \bsk-ant-[A-Za-z0-9_\-]{20,}                                       # Anthropic
  | \bsk-(?:proj-|svcacct-|admin-|lf-|or-v1-)?[A-Za-z0-9_\-]{20,}        # OpenAI, Langfuse, OpenRouter
  | \bpk-lf-[A-Za-z0-9_\-]{20,}                                        # Langfuse public key (pairs with sk-lf-)
  | \bgithub_pat_[A-Za-z0-9_]{22,}                                     # GitHub fine-grained
  | \bxox[abposre]-[A-Za-z0-9\-]{10,}                                  # Slack tokens
  | \bxapp-[0-9]-[A-Za-z0-9\-]{10,}
  | \bAIza[0-9A-Za-z_\-]{35}                                           # Google API key
  | \bya29\.[0-9A-Za-z_\-]{20,}                                        # Google OAuth access token
  | \b(?:sk|rk|pk|whsec)_(?:live|test)_[0-9A-Za-z]{16,}                # Stripe (the library: sk/rk live only)
  | \bhf_[A-Za-z0-9]{30,}                                              # Hugging Face
  | \bnpm_[A-Za-z0-9]{36}                                              # npm (the library: .npmrc lines only)
  | \beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}  # JWT with its signature
"""

# detect-secrets plugins whose patterns are used, and which group of a match is the secret (0: all of it). Not used:
# PrivateKey, JwtToken, Slack tokens (above, complete), ArtifactoryDetector (its ``AP[0-9A-F]...`` pattern matches
# identifiers such as ``APBackendServiceHandler``), the keyword-shaped Cloudant/IBM/Softlayer ones (the assignment
# rule below covers them), IPPublic (not a secret) and the entropy scanners.
_LIBRARY_PLUGINS: dict[str, dict[str, int]] = {
    "aws": {"AWSKeyDetector": 1},  # access key ID (no group: whole) and ``aws..key = "<40>"`` (group 1)
    "azure_storage_key": {"AzureStorageKeyDetector": 0},
    "discord": {"DiscordBotTokenDetector": 0},
    "github_token": {"GitHubTokenDetector": 0},  # its group 1 is the prefix
    "gitlab_token": {"GitLabTokenDetector": 0},
    "mailchimp": {"MailchimpDetector": 0},
    "npm": {"NpmDetector": 1},
    "openai": {"OpenAIDetector": 0},
    "pypi_token": {"PypiTokenDetector": 0},
    "sendgrid": {"SendGridDetector": 0},
    "slack": {"SlackDetector": 0},  # only its webhook pattern: see _library_patterns
    "square_oauth": {"SquareOAuthDetector": 0},
    "stripe": {"StripeDetector": 0},
    "telegram_token": {"TelegramBotTokenDetector": 0},
    "twilio": {"TwilioKeyDetector": 0},
}

# The secret half of an AWS key pair: 40 characters of base64, mixed case (a git SHA is lowercase hex). Only looked
# for in a text that holds an access key ID (the library's pattern).
_AWS_SECRET = re.compile(
    r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]*[a-z])(?=[A-Za-z0-9/+]*[A-Z])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)

# scheme://user:password@host -- the password goes, the user and host stay. Not the library's BasicAuth pattern: it
# refuses unencoded reserved characters (``p@ss!word``), which is what people paste.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@]+:)([^\s@/]+)(@)")

# "Authorization: Bearer xyz", "token abc..." -- keep the scheme word so the trace still says what it was.
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic|token|digest)(\s+)([A-Za-z0-9._~+/\-]{16,}=*)")

# Names that say "secret" beyond detect-secrets' keyword list (tokens, access keys, passphrases).
_OWN_KEYWORDS = (r"token", r"access_?key", r"secret_?key", r"passphrase", r"client_?secret", r"credentials?")


def is_secret_name(name: str) -> bool:
    """Whether an attribute or JSON field name says its value is a secret.

    Only the last dotted part counts (``http.request.header.authorization`` -> ``authorization``) and it must match as
    a whole word, so ``gen_ai.usage.input_tokens`` or ``max_tokens`` are not secrets but ``refresh_token`` is.
    """
    if len(name) <= 128:  # attribute and field names repeat on every span: remember the short ones
        return _is_secret_name_cached(name)
    return _is_secret_name(name)


_SECRET_NAME = re.compile(
    r"""(?x)^(?:
        authorization|proxy_authorization|www_authenticate|cookie|set_cookie|
        password|passwd|pwd|passphrase|secret|.*_secret|secret_.*|
        api_key|apikey|.*_api_key|x_api_key|.*_apikey|access_key|.*_access_key|private_key|.*_private_key|
        token|.*_token|credential|credentials|.*_credentials|session_key|signature
    )$"""
)


@functools.lru_cache(maxsize=4096)  # 4,096 names of at most 128 characters
def _is_secret_name_cached(name: str) -> bool:
    return _is_secret_name(name)


def _is_secret_name(name: str) -> bool:
    last = name.rsplit(".", 1)[-1].strip().lower().replace("-", "_")
    return bool(_SECRET_NAME.match(last))


class _Rules:
    """The compiled rule set: built by ``warm()`` when the pipeline is built, or on first use; never on import."""

    def __init__(self) -> None:
        from detect_secrets.plugins.aws import AWSKeyDetector
        from detect_secrets.plugins.keyword import DENYLIST

        self.aws_key_id: re.Pattern[str] = AWSKeyDetector.denylist[0]

        token_parts = [f"(?P<own>(?x:{_OWN_KEYS}))"]
        text_parts: list[str] = []
        self.value_group: dict[str, int] = {"own": 0}
        for i, (pattern, group) in enumerate(_library_patterns()):
            name = f"lib{i}"
            flags = "(?i:" if pattern.flags & re.IGNORECASE else "(?:"
            # A pattern that can span spaces (``aws ... key = "..."``) runs on the whole text, the rest on tokens.
            spans_spaces = any(p in pattern.pattern for p in (".{", ".+", ".*", "\\s", " ", "[^"))
            (text_parts if spans_spaces else token_parts).append(f"(?P<{name}>{flags}{pattern.pattern}))")
            self.value_group[name] = group
        # One pass per token for every key format; the leftmost match wins, own rules first at a position.
        self.token_keys = re.compile("|".join(token_parts))
        self.text_keys = re.compile("|".join(text_parts))
        groups = {**self.token_keys.groupindex, **self.text_keys.groupindex}
        self.offsets = {name: groups[name] for name in self.value_group}
        keywords = "|".join(
            sorted({k.replace("_?", r"[_\-]?") for k in DENYLIST + _OWN_KEYWORDS}, key=len, reverse=True)
        )
        # The name of an assignment that holds a secret: ends with a keyword, after nothing or a ``_``/``-``.
        self.secret_key_name = re.compile(rf"(?i)(?:^|[_\-])(?:{keywords})$")

    def replace_key(self, m: re.Match[str]) -> str:
        name = m.lastgroup or "own"
        group = self.value_group.get(name, 0)
        if group == 0:
            return SECRET_TOKEN
        index = self.offsets[name] + group
        if m.group(index) is None:  # an alternative of the plugin without the value group (AWS key ID)
            return SECRET_TOKEN
        start, end = m.start(index) - m.start(), m.end(index) - m.start()
        whole = m.group(0)
        return whole[:start] + SECRET_TOKEN + whole[end:]

    def scrub_token(self, m: re.Match[str]) -> str:
        if m.start() >= 7 and m.string.startswith("base64,", m.start() - 7):
            # The payload of a data: URL (a pasted image) is file content, and scanning its kilobytes costs ~2 ms.
            return m.group(0)
        return self.token_keys.sub(self.replace_key, m.group(0))

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one instance per process; assignment names repeat
    def is_secret_key_name(self, name: str) -> bool:
        return self.secret_key_name.search(name) is not None


def _library_patterns() -> list[tuple[re.Pattern[str], int]]:
    import importlib

    out: list[tuple[re.Pattern[str], int]] = []
    for module_name, classes in _LIBRARY_PLUGINS.items():
        module = importlib.import_module(f"detect_secrets.plugins.{module_name}")
        for class_name, group in classes.items():
            for pattern in getattr(module, class_name).denylist:
                if module_name == "slack" and "hooks" not in pattern.pattern:
                    continue  # tokens: own rule above
                out.append((pattern, group if pattern.groups >= group else 0))
    return out


@functools.cache
def _rules() -> _Rules:
    return _Rules()


# A run of 15+ characters that a key can be made of: every key format is one (the shortest, a Slack token, has 15).
# The look-behind makes a search fail at once inside a word instead of re-scanning it from every letter.
_CANDIDATE = re.compile(r"(?<![\w\-+/=.:])[\w\-+/=.:]{15,}")

# Every other rule needs one of these (lowercase) words or signs; ``in`` on the lowered text is cheaper than a
# case-insensitive regex alternation.
_WORDS = (
    "key",
    "pass",
    "pwd",
    "secret",
    "token",
    "bearer",
    "basic",
    "digest",
    "credential",
    "contrase",
    "://",
    "-----begin",
)
_AUTH_WORDS = ("bearer", "basic", "token", "digest")


def warm() -> None:
    """Build the rule set (imports detect-secrets, compiles the patterns) ahead of the first span. Raises
    ``ConfigError`` when detect-secrets is missing: spans must not go out unscrubbed."""
    try:
        _rules()
    except ImportError as exc:
        from ..config import ConfigError

        raise ConfigError(
            "secret scrubbing needs the detect-secrets package, a dependency of chatobs "
            f"(pip install 'detect-secrets>=1.5'): {exc}"
        ) from exc


def might_hold_secret(text: str) -> bool:
    if _CANDIDATE.search(text) is not None:
        return True
    low = text.lower()
    return any(w in low for w in _WORDS)


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
    rules = _rules()
    has_token = _CANDIDATE.search(text) is not None
    low = text.lower()
    if not has_token and not any(w in low for w in _WORDS):
        return text
    if "-----begin" in low:
        text = _PRIVATE_KEY.sub(SECRET_TOKEN, text)
    if has_token:
        if rules.aws_key_id.search(text) is not None:
            text = _AWS_SECRET.sub(SECRET_TOKEN, text)
        text = _CANDIDATE.sub(rules.scrub_token, text)
        text = rules.text_keys.sub(rules.replace_key, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(_keep_user, text)
    if any(w in low for w in _AUTH_WORDS):
        text = _AUTH_SCHEME.sub(_keep_scheme, text)
    if "=" in text or ":" in text:
        text = _ASSIGNMENT.sub(functools.partial(_replace_assignment, rules), text)
    return text


def _keep_user(m: re.Match[str]) -> str:
    return m.group(1) + SECRET_TOKEN + m.group(3)


def _keep_scheme(m: re.Match[str]) -> str:
    return m.group(1) + m.group(2) + SECRET_TOKEN


# password = "...", "api_key": "...", export SECRET_TOKEN=..., DB_PASS: ... (code, .env, YAML, JSON as text). Any
# ``name <sep> value`` matches here (cheap: it needs the separator right after a word); the name is checked after.
_ASSIGNMENT = re.compile(r"""(?<![\w\-])([\w\-]+)(["']?\s*[:=]\s*["']?)([^\s"',;}{)]{4,})""")


def _replace_assignment(rules: _Rules, m: re.Match[str]) -> str:
    if not rules.is_secret_key_name(m.group(1)):
        return m.group(0)
    sep, value = m.group(2), m.group(3)
    low = value.lower()
    if (
        value.startswith(("<", "$", "{", "%", "/"))
        or low in _NOT_SECRET_VALUES
        or low.startswith(_REFERENCES)
        or "<SECRET>" in value
    ):
        # Already scrubbed, a placeholder, or a reference to where the secret lives: nothing to hide.
        return m.group(0)
    if sep.rstrip()[-1:] not in ("'", '"') and _IDENTIFIER.match(value):
        # ``api_key=api_key`` or ``{"password": password}`` in code names a variable; a literal secret is quoted or
        # has digits or symbols in it.
        return m.group(0)
    return m.group(1) + sep + SECRET_TOKEN


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z_.\[\]()]*$")
_REFERENCES = ("os.environ", "os.getenv", "getenv", "process.env", "env(", "env[", "settings.", "config.", "self.")
_NOT_SECRET_VALUES = frozenset(
    {
        "none",
        "null",
        "true",
        "false",
        "undefined",
        "required",
        "optional",
        "os.environ",
        "getenv",
        "changeme",
        "xxxx",
        "****",
        "redacted",
    }
)
